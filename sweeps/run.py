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

if __package__ in (None, ""):  # `python sweeps/run.py`: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sweeps.spec import TOP_KEYS, SpecError, load_spec  # noqa: E402
from sweeps.storage import Storage, claim, open_storage, sweep_storage  # noqa: E402
from sweeps.sweep_dir import (  # noqa: E402
    check_same_overrides,
    check_same_storage,
    create_sweep_dir,
    find_resumable,
    hold_sweep_lock,
    read_state,
    resume_tracking_uri,
    write_state,
)
from sweeps.tracking import TrackingError, bound_http_calls, tracking_uri  # noqa: E402
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
    out_dir = Path(args.out_dir).expanduser().resolve()
    try:
        overrides = parse_overrides(rest, bare_keys=TOP_KEYS)
        spec = load_spec(args.spec, overrides)
        if args.sync or args.resume:
            flag = "--sync" if args.sync else "--resume"
            sweep_dir = Path(args.sweep_dir).resolve() if args.sweep_dir else find_resumable(out_dir, spec.name, flag)
            state = read_state(sweep_dir)
            uri = resume_tracking_uri(state, os.environ.get("MLFLOW_TRACKING_URI", "").strip())
            check_same_overrides(state, overrides)
            given = args.storage or spec.storage
            check_same_storage(state, open_storage(given).uri if given else None)
            cwd = Path(state.get("cwd") or Path.cwd())
            storage: Storage | None = sweep_storage(state, sweep_dir)
        else:
            uri, cwd = tracking_uri(), Path.cwd()
            where = args.storage or spec.storage
            storage = open_storage(where) if where else None
        from sweeps.driver import preflight, sync
        from sweeps.gpu import resolve_gpu

        if (args.sync or args.resume) and not args.dry_run:
            hold_sweep_lock(sweep_dir)
        if args.sync:
            return sync(spec, sweep_dir)
        base_tree = preflight(spec, cwd, uri, storage)
        spec, packing = resolve_gpu(spec, base_tree)  # resources/gpu auto: measured before Ray starts
        if packing is not None:
            print(packing.line, flush=True)
        if not (args.resume or args.dry_run):
            sweep_dir = create_sweep_dir(out_dir, spec.name)
            hold_sweep_lock(sweep_dir)
            state = {
                "tracking_uri": uri,
                "cwd": str(cwd),
                "spec": str(Path(args.spec).resolve()),
                "overrides": overrides,
            }
            if storage is not None:  # this sweep's own folder there, recorded for --resume
                try:
                    mine = claim(storage, sweep_dir.name, sweep_dir)
                except SpecError:
                    shutil.rmtree(sweep_dir, ignore_errors=True)  # nothing started: leave no sweep behind
                    raise
                state.update(storage=storage.uri, storage_name=mine.path.rsplit("/", 1)[-1])
            write_state(sweep_dir, state)
            storage = sweep_storage(state, sweep_dir)
    except (SpecError, ConfigError, PathsError, TrackingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        from sweeps.dry_run import dry_run

        return dry_run(spec, base_tree)
    from sweeps.driver import run_sweep

    return run_sweep(
        spec,
        base_tree,
        uri,
        sweep_dir,
        storage or sweep_storage({}, sweep_dir),
        resume=args.resume,
        address=args.address,
        num_cpus=args.num_cpus,
        verbose=args.verbose,
    )


if __name__ == "__main__":
    raise SystemExit(main())
