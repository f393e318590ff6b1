"""`python sweeps/run.py SPEC.yaml [PATH VALUE ...]`: run (or resume) a VUNet sweep.

Everything is validated before Ray starts: the search space, the base config with
the overrides, the dataset, the VGG weights and the MLflow store. A problem is one
line on stderr and exit code 2, with nothing started or written. Then the default
generated dataset is made if missing, local Ray starts (or `--address` joins a
cluster), Optuna proposes, ASHA stops bad trials, every trial is tracked in MLflow
from this process, and the end prints the top trials, `best_config.yaml` and the
command that reuses it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python sweeps/run.py`: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sweeps.spec import TOP_KEYS, SpecError, SweepSpec, load_spec  # noqa: E402
from sweeps.storage import claim, open_storage  # noqa: E402
from sweeps.sweep_dir import (  # noqa: E402
    SweepState,
    Target,
    check_same_overrides,
    check_same_storage,
    create_sweep_dir,
    find_resumable,
    hold_sweep_lock,
    read_state,
    resume_tracking_uri,
    write_state,
)
from sweeps.tracking import PASSWORD_ENV, TrackingError, bound_http_calls, tracking_uri  # noqa: E402
from vunet_core import ConfigError, PathsError, parse_overrides  # noqa: E402

DEFAULT_OUT = "sweeps_out"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vunet-sweep", description="Hyperparameter sweep of a VUNet on Ray Tune + Optuna.")
    p.add_argument("spec", help="search-space YAML (e.g. search_spaces/kl_ramp.yaml)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted sweep in the output directory")
    p.add_argument("--sync", action="store_true", help="send the MLflow calls a sweep could not send, then exit")
    p.add_argument("--sweep-dir", default=None, help="with --resume/--sync: that sweep directory (default: the newest)")
    p.add_argument("--dry-run", action="store_true", help="validate, build a few sampled models, time a step, exit")
    p.add_argument("--address", default=os.environ.get("RAY_ADDRESS"), help="existing Ray cluster (default: local)")
    p.add_argument(
        "--storage",
        default=None,
        help="Tune state and checkpoints: a shared path or s3://bucket/prefix (default: the sweep directory)",
    )
    p.add_argument("--out-dir", default=DEFAULT_OUT, help=f"parent of the sweep directory (default: ./{DEFAULT_OUT})")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    p.add_argument(
        "--verbose", action="store_true", help="also show Ray Tune's status tables and the libraries' logs here"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    args, rest = build_parser().parse_known_args(sys.argv[1:] if argv is None else argv)
    bound_http_calls()
    if not args.address:
        # A local Ray instance binds its servers to 127.0.0.1 only (read when Ray is imported).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        return _main(args, rest)
    except KeyboardInterrupt:  # before the sweep started: nothing to save
        print("interrupted before the sweep started; nothing was run", file=sys.stderr)
        return 130


def _main(args: argparse.Namespace, rest: list[str]) -> int:
    try:
        overrides = parse_overrides(rest, bare_keys=TOP_KEYS)
        spec = load_spec(args.spec, overrides)
        target = open_sweep(args, spec, overrides)
        from sweeps.driver import preflight, sync
        from sweeps.gpu import resolve_gpu

        if args.sync:
            assert target.sweep_dir is not None  # open_sweep found it
            return sync(spec, target.sweep_dir)
        base_tree = preflight(spec, Path(target.state.cwd), target.state.tracking_uri, target.storage)
        spec, packing = resolve_gpu(spec, base_tree)  # resources/gpu auto: measured before Ray starts
        if packing is not None:
            print(packing.line, flush=True)
        if args.dry_run:
            from sweeps.dry_run import dry_run

            return dry_run(spec, base_tree)
        if not args.resume:
            target = claim_new(target, Path(args.out_dir).expanduser().resolve(), spec.name)
    except (SpecError, ConfigError, PathsError, TrackingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from sweeps.driver import RunOptions, run_sweep

    options = RunOptions(resume=args.resume, address=args.address, num_cpus=args.num_cpus, verbose=args.verbose)
    return run_sweep(spec, base_tree, target, options)


def open_sweep(args: argparse.Namespace, spec: SweepSpec, overrides: dict[str, Any]) -> Target:
    """Where this command's sweep runs, the same way on every path. `--resume`/`--sync`: the
    sweep directory found and locked, its recorded state checked against the command. A new
    sweep (and a dry run): the state it will record; its directory is claimed only after the
    checks (:func:`claim_new`), so a refused sweep leaves nothing behind."""
    given = args.storage or spec.storage
    if not (args.sync or args.resume):
        state = SweepState(
            tracking_uri=tracking_uri(),
            cwd=str(Path.cwd()),
            spec=str(Path(args.spec).resolve()),
            overrides=overrides,
            storage=open_storage(given).uri if given else "",
        )
        return Target(None, state)
    flag = "--sync" if args.sync else "--resume"
    out_dir = Path(args.out_dir).expanduser().resolve()
    sweep_dir = Path(args.sweep_dir).resolve() if args.sweep_dir else find_resumable(out_dir, spec.name, flag)
    state = read_state(sweep_dir)
    env_uri, env_password = os.environ.get("MLFLOW_TRACKING_URI", "").strip(), os.environ.get(PASSWORD_ENV, "")
    state = state.but(tracking_uri=resume_tracking_uri(state, env_uri, env_password))
    check_same_overrides(state, overrides)
    check_same_storage(state, open_storage(given).uri if given else None)
    state = state.but(cwd=state.cwd or str(Path.cwd()))
    if not args.dry_run:
        hold_sweep_lock(sweep_dir)
    return Target(sweep_dir, state)


def claim_new(target: Target, out_dir: Path, name: str) -> Target:
    """Create the new sweep's directory (and its folder in `--storage`), lock it, record its state."""
    sweep_dir = create_sweep_dir(out_dir, name)
    hold_sweep_lock(sweep_dir)
    state = target.state
    if state.storage:  # this sweep's own folder there, recorded for --resume
        try:
            mine = claim(open_storage(state.storage), sweep_dir.name, sweep_dir)
        except SpecError:
            shutil.rmtree(sweep_dir, ignore_errors=True)  # nothing started: leave no sweep behind
            raise
        state = state.but(storage_name=mine.path.rsplit("/", 1)[-1])
    write_state(sweep_dir, state)
    return Target(sweep_dir, state)


if __name__ == "__main__":
    raise SystemExit(main())
