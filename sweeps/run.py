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
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # `python sweeps/run.py`: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sweeps.spec import SpecError, load_spec  # noqa: E402
from sweeps.tracking import TrackingError  # noqa: E402
from vunet_core import ConfigError, PathsError, parse_overrides  # noqa: E402

DEFAULT_OUT = "sweeps_out"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vunet-sweep", description="Hyperparameter sweep of a VUNet on Ray Tune + Optuna.")
    p.add_argument("spec", help="search-space YAML (e.g. search_spaces/kl_ramp.yaml)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted sweep in the output directory")
    p.add_argument("--dry-run", action="store_true", help="validate, build a few sampled models, time a step, exit")
    p.add_argument("--address", default=os.environ.get("RAY_ADDRESS"), help="existing Ray cluster (default: local)")
    p.add_argument("--out-dir", default=DEFAULT_OUT, help=f"parent of the sweep directory (default: ./{DEFAULT_OUT})")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    args, rest = build_parser().parse_known_args(sys.argv[1:] if argv is None else argv)
    try:
        spec = load_spec(args.spec, parse_overrides(rest))
        sweep_dir = choose_sweep_dir(Path(args.out_dir).resolve(), spec.name, args.resume)
        from sweeps.driver import preflight

        base_tree, uri = preflight(spec)
    except (SpecError, ConfigError, PathsError, TrackingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        from sweeps.dry_run import dry_run

        return dry_run(spec, base_tree)
    from sweeps.driver import run_sweep

    return run_sweep(spec, base_tree, uri, sweep_dir, resume=args.resume, address=args.address, num_cpus=args.num_cpus)


def choose_sweep_dir(out_dir: Path, name: str, resume: bool) -> Path:
    """`<out>/<name>`, or `<name>-2`, `-3`, ... when earlier sweeps of that name are there.

    A new sweep never touches an earlier one's directory; `--resume` continues the newest.
    """
    taken = [out_dir / name] if (out_dir / name).exists() else []
    n = 2
    while (out_dir / f"{name}-{n}").exists():
        taken.append(out_dir / f"{name}-{n}")
        n += 1
    if not resume:
        return out_dir / (name if not taken else f"{name}-{n}")
    from sweeps.tuner import can_resume

    if not taken or not can_resume(taken[-1]):
        raise SpecError(f"--resume: no interrupted sweep {name} in {out_dir}; run without --resume to start one")
    return taken[-1]


if __name__ == "__main__":
    raise SystemExit(main())
