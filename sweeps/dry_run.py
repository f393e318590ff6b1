"""`--dry-run`: sample a few configurations, build each model, time one training step.

Prints, per sampled configuration, the searched values, the model's parameter count,
the measured seconds per step and the estimated seconds per epoch and per trial, so a
user sees what a sweep will cost before starting it. Nothing is written but the
generated dataset (made once if missing); Ray is not started.
"""

from __future__ import annotations

from typing import Any

import optuna

from sweeps.search import baseline_point, define_by_run, make_sampler, sampled_flat, trial_cfg
from sweeps.spec import SweepSpec
from vunet_core import config_from_tree

NUM_SAMPLES = 3


def sample_points(spec: SweepSpec, n: int) -> list[dict[str, Any]]:
    """The baseline point and TPE's first suggestions (in-memory study, same seed)."""
    study = optuna.create_study(sampler=make_sampler(spec))
    space = define_by_run(spec)
    points = [baseline_point(spec)] if spec.baseline else []
    while len(points) < n:
        trial = study.ask()
        constants = space(trial) or {}
        points.append({**trial.params, **constants})
        study.tell(trial, 0.0)
    return points[:n]


def dry_run(spec: SweepSpec, base_tree: dict[str, Any]) -> int:
    from vunet_core import prepare_data, probe_step, steps_per_epoch

    prepare_data(config_from_tree(base_tree), progress=True)  # generate once, with progress
    print(
        f"dry run of {spec.name}: {spec.num_samples} trials x up to {spec.max_epochs} epochs, "
        + ", ".join(f"{'metric' if i == 0 else 'and'} {o.name} ({o.mode})" for i, o in enumerate(spec.objectives))
    )
    for i, point in enumerate(sample_points(spec, min(NUM_SAMPLES, spec.num_samples))):
        cfg = trial_cfg(base_tree, point)
        trial_splits = prepare_data(cfg, progress=False)  # reuses the cache when data settings match
        probe = probe_step(cfg, trial_splits)
        step_s, params = probe.seconds, probe.num_parameters
        steps = steps_per_epoch(cfg, len(trial_splits.train))
        shown = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sampled_flat(point).items()
        )
        print(f"[{i}] {'baseline ' if i == 0 and spec.baseline else ''}{shown or '(no searched values)'}")
        print(
            f"    {params / 1e6:.2f} M params, {step_s:.3f} s/step, {steps} steps/epoch -> ~{step_s * steps:.0f} s/epoch (training only), ~{step_s * steps * spec.max_epochs:.0f} s per full trial"
        )
    if spec.confirm is not None:
        c = spec.confirm
        runs, worst = (1 + c.top_k) * len(c.seeds), (1 + c.top_k) * c.max_seeds
        picked = f"up to {c.top_k} points spread along the front" if spec.multi else f"top {c.top_k}"
        print(
            f"then confirmation: baseline + {picked} x seeds {list(c.seeds)} = {runs} trials of "
            f"{spec.max_epochs} epochs, {spec.max_concurrent_trials} at a time; undecided candidates get more "
            f"fresh seeds up to {c.max_seeds} (margin {c.margin}): at worst {worst} trials in {c.rounds} rounds"
        )
    if spec.multi:
        print(f"the answer: {spec.rule}")
    print("dry run ok: nothing was started")
    return 0
