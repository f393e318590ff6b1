"""`python sweeps/train_best.py best_config.yaml [PATH VALUE ...]`: one long, tracked training.

Runs the core single training (`vunet_core.train_epochs`) on a config file, usually
a sweep's `best_config.yaml`, and tracks it as an MLflow run: in the source sweep's
experiment with tags linking the sweep and trial when `best_trial.json` lies beside
the config, else in an experiment named after `training/name`. Params are the
resolved config under `/`-path names, metrics are logged per epoch, the sample grid
as an image series and eval outputs as artifacts. The final checkpoint is stored once: in
the run directory (tag `checkpoint`) when the artifact store is this machine's disk, or
uploaded to it when it is a shared store (a tracking server's or an object store).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python sweeps/train_best.py`: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sweeps.files import BEST_TRIAL  # noqa: E402
from sweeps.tracking import (  # noqa: E402
    TrackingError,
    bound_http_calls,
    check_tracking,
    ensure_experiment,
    log_epoch_outputs,
    log_metrics,
    log_params,
    redact,
    set_tags,
    tracking_uri,
)
from vunet_core import (  # noqa: E402
    TRANSFER_L1,
    Config,
    ConfigError,
    PathsError,
    check_writable_dir,
    flat_config,
    parse_overrides,
    render_config,
    resolve_config,
    schedule_mapping,
    total_steps,
    val_loss,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vunet-train-best", description="Train one VUNet from a config, tracked in MLflow."
    )
    p.add_argument("config", help="config YAML, e.g. sweeps_out/kl_ramp/best_config.yaml")
    p.add_argument("--runs-dir", default="runs", help="where the run directory is created (default: runs)")
    p.add_argument(
        "--experiment", default=None, help="MLflow experiment (default: the source sweep's, else training/name)"
    )
    return p


def source_record(config_path: Path) -> dict[str, Any]:
    """best_trial.json beside the config (written by the sweep), or {}."""
    meta = config_path.resolve().parent / BEST_TRIAL
    return json.loads(meta.read_text()) if meta.is_file() else {}


def main(argv: Sequence[str] | None = None) -> int:
    args, rest = build_parser().parse_known_args(sys.argv[1:] if argv is None else argv)
    bound_http_calls()
    try:
        cfg = resolve_config([args.config], {"training/progress": True, **parse_overrides(rest)})
        from vunet_core import check_inputs

        check_inputs(cfg)
        check_writable_dir(Path(args.runs_dir), "--runs-dir")
        uri = tracking_uri()
        check_tracking(uri)
    except (ConfigError, PathsError, TrackingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in reuse_notes(resolve_config([args.config], {}), cfg, source_record(Path(args.config))):
        print(line, flush=True)
    return train_tracked(cfg, Path(args.config), Path(args.runs_dir), uri, args.experiment)


def reuse_notes(source: Config, cfg: Config, record: dict[str, Any]) -> list[str]:
    """What the run keeps from the config file (threads, seed) and where its schedules land at the new length."""
    where = f"trial {record['trial_id']}" if record.get("trial_id") else "the config file"
    lines = []
    for key, label in (("num_threads", "torch threads (0 = every core)"), ("seed", "seed")):
        now, was = getattr(cfg.training, key), getattr(source.training, key)
        same = "as in" if now == was else f"overridden; {was} in"
        lines.append(f"training/{key} {now}: {label}, {same} {where}")
    if source.training.steps_per_epoch and cfg.training.steps_per_epoch:  # lengths known without the data
        before, after = total_steps(source, 0), total_steps(cfg, 0)
        if before != after:
            lines += [f"schedule {m}" for m in schedule_mapping(source, before, cfg, after)]
    return lines


def artifacts_on_this_disk(client: Any, experiment_id: str) -> bool:
    """Whether the experiment's artifacts are plain files on this machine (a local store)."""
    location = str(client.get_experiment(experiment_id).artifact_location)
    return location.startswith(("file:", "/")) or "://" not in location


def train_tracked(cfg: Config, config_path: Path, runs_dir: Path, uri: str, experiment: str | None) -> int:
    from mlflow import MlflowClient

    from vunet_core import train_epochs

    record = source_record(config_path)
    client = MlflowClient(uri)
    experiment_id = ensure_experiment(client, experiment or record.get("sweep") or cfg.training.name)
    tags = {"role": "single_training", "config_file": str(config_path.resolve())}
    if record:
        tags.update(
            {"source_sweep": record["sweep"], "source_trial_id": record["trial_id"], "source_run_id": record["run_id"]}
        )
    run_dir = (runs_dir / f"{time.strftime('%Y%m%d-%H%M%S')}_{cfg.training.name}").resolve()
    run_id = str(client.create_run(experiment_id, tags=tags, run_name=f"train {cfg.training.name}").info.run_id)
    log_params(client, run_id, flat_config(cfg))
    client.log_text(run_id, render_config(cfg), "config.yaml")
    print(render_config(cfg), flush=True)
    print(f"run directory: {run_dir}\nMLflow: {redact(uri)} run {run_id}", flush=True)
    status = "FAILED"
    try:
        for result in train_epochs(cfg, run_dir):
            log_metrics(client, run_id, result.metrics, result.epoch)
            log_epoch_outputs(client, run_id, result.epoch, result.sample_grid, result.eval_dir)
            shown = ", ".join(
                f"{k} {result.metrics[k]:.4g}" for k in (TRANSFER_L1, val_loss("total")) if k in result.metrics
            )
            print(f"epoch {result.epoch}/{cfg.training.num_epochs}: {shown}", flush=True)
        if artifacts_on_this_disk(client, experiment_id):
            # The run directory already holds it on this disk: one copy, named by a tag.
            set_tags(client, run_id, {"checkpoint": str(result.checkpoint)})
        else:  # a shared store (tracking server, object store): the team gets the model there
            client.log_artifact(run_id, str(result.checkpoint), artifact_path="checkpoints")
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        print(f"interrupted; continue with: vunet-train -p {run_dir} -t", file=sys.stderr)
        return 130
    finally:
        set_tags(client, run_id, {"run_dir": str(run_dir)})
        client.set_terminated(run_id, status=status)
    print(f"done: {run_dir}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    raise SystemExit(main())
