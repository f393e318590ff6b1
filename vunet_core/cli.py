"""`vunet-train`: single training and evaluation from the command line (seed-compatible).

    vunet-train -b configs/cpu_32.yaml [more.yaml ...] [--PATH VALUE ...] -t   # train a new run
    vunet-train -p runs/<run> -t [--training/num_epochs 20]                   # continue a run
    vunet-train -p runs/<run> [--PATH VALUE ...]                               # evaluate only

The resolved config is printed first. A new run lives in `runs/<time>_<name>/`
(config.yaml, checkpoints/, samples/, eval/, metrics.jsonl). A bad config path or
value (including .nan/.inf and integers beyond 64 bits), an unknown option, a config
file that is not readable YAML, a missing or corrupt dataset, an architecture change
against the `-p` checkpoint or a `--runs-dir` that cannot be created is one line on
stderr and exit code 2, before any compute or run directory. Ctrl-C during training
saves a checkpoint (resume with `-p RUN -t`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vunet_core import metrics as m
from vunet_core.checkpoint import check_same_architecture, checkpoint_config, find_checkpoint, read_checkpoint
from vunet_core.config import (
    Config,
    ConfigError,
    config_from_tree,
    config_to_tree,
    known_paths,
    render_config,
    resolve_config,
)
from vunet_core.paths import PathsError, apply_overrides, check_writable_dir, parse_overrides, split_config_files

SUMMARY_KEYS = (m.train_loss(m.TOTAL), m.val_loss(m.TOTAL), m.TRANSFER_L1, m.transfer("ssim"), m.EPOCH_S)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vunet-train", description="Train or evaluate a Variational U-Net.")
    p.add_argument("-b", "--base", nargs="+", default=[], metavar="YAML", help="config files, later ones win")
    p.add_argument("-t", "--train", action="store_true", help="train (without it: evaluate the run given by -p)")
    p.add_argument("-p", "--project", metavar="RUN", help="existing run directory or checkpoint file")
    p.add_argument("--runs-dir", default="runs", help="where new run directories are created (default: runs)")
    return p


def split_args(argv: Sequence[str]) -> tuple[argparse.Namespace, dict[str, Any]]:
    """Parse flags; everything else is `PATH VALUE` overrides (a leading `--` accepted)."""
    args, rest = build_parser().parse_known_args(argv)
    # `-b a.yaml b.yaml losses/KL/weight 1` : nargs="+" swallows the overrides; give them back.
    args.base, swallowed = split_config_files(args.base, known_paths())
    return args, parse_overrides(swallowed + rest)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args, overrides = split_args(sys.argv[1:] if argv is None else argv)
        return _dispatch(args, overrides)
    except (ConfigError, PathsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint was saved", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    from vunet_core.training import check_inputs

    if args.project is None and not args.train:
        raise ConfigError("nothing to do: give -t to train, or -p RUN to evaluate a run")
    if args.project is not None:
        ckpt = find_checkpoint(Path(args.project))
        saved = checkpoint_config(read_checkpoint(ckpt))
        cfg = (
            config_from_tree(apply_overrides(config_to_tree(saved), overrides))
            if not args.base
            else resolve_config(args.base, overrides)
        )
        check_same_architecture(cfg, saved, ckpt)
    else:
        ckpt = None
        cfg = resolve_config(args.base, overrides)
        check_writable_dir(Path(args.runs_dir), "--runs-dir")
    check_inputs(cfg)
    print(render_config(cfg), flush=True)
    if not args.train:
        assert ckpt is not None
        return _evaluate(cfg, ckpt)
    run_dir = ckpt.parent.parent if ckpt is not None else _new_run_dir(Path(args.runs_dir), cfg)
    return _train(cfg, run_dir, ckpt)


def _new_run_dir(root: Path, cfg: Config) -> Path:
    run_dir = root / f"{time.strftime('%Y%m%d-%H%M%S')}_{cfg.training.name}"
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
    except OSError as exc:  # e.g. a read-only file system, or a run of the same name this second
        raise PathsError(f"--runs-dir {root}: cannot create {run_dir.name} ({exc.strerror or exc})") from None
    return run_dir.resolve()


def _train(cfg: Config, run_dir: Path, resume: Path | None) -> int:
    from vunet_core.training import train_epochs

    print(f"run directory: {run_dir}", flush=True)
    for result in train_epochs(cfg, run_dir, resume=resume):
        shown = ", ".join(f"{k} {result.metrics[k]:.4g}" for k in SUMMARY_KEYS if k in result.metrics)
        print(f"epoch {result.epoch}/{cfg.training.num_epochs} step {result.step}: {shown}", flush=True)
    print(f"done: {run_dir}", flush=True)
    return 0


def _evaluate(cfg: Config, ckpt: Path) -> int:
    from vunet_core.training import evaluate_checkpoint

    out_dir, metrics = evaluate_checkpoint(cfg, ckpt)
    print(json.dumps(metrics, indent=1))
    print(f"eval outputs: {out_dir}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
