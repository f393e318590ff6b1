"""What a finished sweep leaves behind: the report, the answer and the parent run's last entries.

:func:`close_finished` writes the search report (tables, Optuna plots), with several
objectives the Pareto front (`pareto.csv`, `pareto.png`, the hypervolume per rung, a config per
front point under `front/`), the contact sheets, the confirmation's table and plot,
`best_config.yaml` (the point the sweep's rule picks from the confirmed ones, or the search's
best) with `best_trial.json` linking it to its MLflow run, logs all of it on the parent run,
finishes that run, prints the summary and drops the optimizer state of every trial but the
answer's.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweeps import confirm, contact, front, storage
from sweeps.files import BEST_CONFIG, BEST_TRIAL, STUDY_FILE
from sweeps.outbox import Outbox
from sweeps.report import SweepReport, TrialRow, print_report, write_report
from sweeps.search import trial_cfg
from sweeps.searcher import epoch_values
from sweeps.session import PARENT, SweepSession
from sweeps.tracking import redact
from vunet_core import one_line, render_config

RUN_ID_WAIT_S = 20.0  # for best_trial.json's run id, when the answer's run is still being created


@dataclass
class _ParentEntries:
    """What a finished sweep logs on its parent run."""

    files: list[Path] = field(default_factory=list)  # artifacts at the run's root
    folders: dict[str, list[Path]] = field(default_factory=dict)  # artifact folder -> files
    metrics: dict[str, float] = field(default_factory=dict)
    series: list[tuple[str, float, int]] = field(default_factory=list)  # (key, value, step), e.g. per rung
    tags: dict[str, str] = field(default_factory=lambda: {"sweep_state": "finished"})


def close_finished(
    session: SweepSession, outbox: Outbox, report: SweepReport, confirmation: confirm.Confirmation | None
) -> None:
    """Write and log the report (tables, the answer, plots), finish the parent run, print the end."""
    entries = _ParentEntries(files=write_report(report, session.sweep_dir))
    pareto = _front(session, report, confirmation, entries) if session.spec.multi else None
    sheets = _contact_sheets(session, report, pareto)
    best = report.best
    if confirmation is not None:
        best = confirmation.winner.row
        _confirmation_outputs(session.sweep_dir, confirmation, entries)
    if best is not None:
        _write_answer(session, outbox, best, confirmation, entries)
    _log_on_parent(outbox, entries, sheets)
    print_report(report)
    if pareto is not None:
        front.print_front(pareto)
    if confirmation is not None:
        confirm.print_summary(confirmation)
        print(f"sweep {session.spec.name} done in {report.wall_s + confirmation.wall_s:.0f} s (search + confirmation)")
    _publish(session, [*entries.files, *sheets, *(f for fs in entries.folders.values() for f in fs)])
    print(_slim(session, best))
    _print_reuse(session, best)


def _contact_sheets(session: SweepSession, report: SweepReport, pareto: front.Front | None) -> list[Path]:
    """The contact sheets at ASHA's rungs and the last epoch."""
    spec = session.spec
    sched = spec.scheduler
    epochs = contact.milestones(spec.max_epochs, sched.type == "asha", sched.grace_period, sched.reduction_factor)
    return contact.write_sheets(session.sweep_dir, contact.sheet_columns(report, front=pareto), epochs)


def _front(
    session: SweepSession, report: SweepReport, confirmation: confirm.Confirmation | None, entries: _ParentEntries
) -> front.Front:
    """Several objectives: the front (pareto.csv, pareto.png with the confirmed means, the
    hypervolume per rung) and one config per front point under `front/`."""
    spec, sweep_dir = session.spec, session.sweep_dir
    sched = spec.scheduler
    rungs = contact.milestones(spec.max_epochs, True, sched.grace_period, sched.reduction_factor)
    pareto = front.build_front(report, epoch_values(spec, sweep_dir), rungs)
    points = pareto.members
    if confirmation is not None:
        for c in [confirmation.baseline, *confirmation.candidates]:
            stats = {o.name: confirmation.stats(c, o.name) for o in spec.objectives}
            pareto.confirmed.append((c.label, stats))
        points = [c.row for c in confirmation.candidates]  # the confirmed front points
    entries.files += [front.write_csv(pareto, sweep_dir / "pareto.csv"), front.plot(pareto, sweep_dir / "pareto.png")]
    entries.series += front.parent_metrics(pareto)
    entries.tags["pareto_reference"] = front.reference_text(pareto)
    folder = sweep_dir / front.FRONT_DIR
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for row in points:
        path = folder / f"trial_{row.number}.yaml"
        path.write_text(render_config(trial_cfg(session.base_tree, row.sampled)))
        entries.folders.setdefault(front.FRONT_DIR, []).append(path)
    return pareto


def _confirmation_outputs(sweep_dir: Path, confirmation: confirm.Confirmation, entries: _ParentEntries) -> None:
    """confirm.csv, confirm.png and the confirm/* metrics and tags."""
    entries.files += [
        confirm.write_csv(confirmation, sweep_dir / "confirm.csv"),
        confirm.plot(confirmation, sweep_dir / "confirm.png"),
    ]
    entries.metrics.update(confirm.parent_metrics(confirmation))
    top = confirmation.top
    entries.tags.update(confirm_winner=confirmation.winner.label, confirm_verdict=top.verdict if top else "-")


def _write_answer(
    session: SweepSession,
    outbox: Outbox,
    best: TrialRow,
    confirmation: confirm.Confirmation | None,
    entries: _ParentEntries,
) -> None:
    """best_config.yaml (the answer's complete config) and best_trial.json (where it comes from)."""
    spec, sweep_dir = session.spec, session.sweep_dir
    record: dict[str, Any] = {
        "sweep": spec.name,
        "tracking_uri": redact(session.tracking_uri),
        "experiment_id": session.experiment_id,
        "parent_run_id": session.parent_id,
        "trial_id": best.trial_id,
        # the child run's creation may still be queued: wait for it (briefly) rather than write ""
        "run_id": outbox.wait_for_run(best.trial_id, RUN_ID_WAIT_S),
        "metric": spec.metric,
        "value": best.metric,
        "epochs": best.epochs,
    }
    if confirmation is not None:
        win = confirmation.winner
        record["confirmation"] = {
            "candidate": win.label,
            "mean": win.mean,
            "values": {str(k): v for k, v in win.values.items()},
            "summary": confirm.summary(confirmation),
        }
    best_config = sweep_dir / BEST_CONFIG
    best_config.write_text(render_config(trial_cfg(session.base_tree, best.sampled)))
    meta = sweep_dir / BEST_TRIAL
    meta.write_text(json.dumps(record, indent=1))
    entries.files += [best_config, meta]
    entries.tags.update(best_trial_id=best.trial_id, best_run_id=str(record["run_id"]))
    entries.metrics[f"best/{spec.metric}"] = best.metric


def _log_on_parent(outbox: Outbox, entries: _ParentEntries, sheets: list[Path]) -> None:
    """Queue the parent run's artifacts, metrics and tags, then finish it."""
    for sheet in sheets:
        outbox.put("log_artifact", PARENT, files={"file": sheet}, artifact_path=contact.SHEET_DIR)
    for f in entries.files:
        outbox.put("log_artifact", PARENT, files={"file": f})
    for folder, files in entries.folders.items():
        for f in files:
            outbox.put("log_artifact", PARENT, files={"file": f}, artifact_path=folder)
    now = int(time.time() * 1000)
    points = [[k, v, now, 0] for k, v in entries.metrics.items()] + [[k, v, now, s] for k, v, s in entries.series]
    if points:
        outbox.put("log_batch", PARENT, metrics=points)
    outbox.put("log_batch", PARENT, tags=[[k, v] for k, v in entries.tags.items()])
    outbox.put("set_status", PARENT, status="FINISHED")


def _print_reuse(session: SweepSession, best: TrialRow | None) -> None:
    if best is None:
        print("no trial finished with a finite objective; nothing to reuse")
        return
    path = session.sweep_dir / BEST_CONFIG
    print(f"best config: {path}")
    print(f"reuse it:    python sweeps/train_best.py {path} training/num_epochs {10 * session.spec.max_epochs}")


def _publish(session: SweepSession, files: list[Path]) -> None:
    """With a storage of its own, the sweep's report files (and a copy of the Optuna study) go to
    its `report/` too; a storage that fails now costs the copy, never the local answer."""
    if not session.separate_storage:
        return
    study = session.sweep_dir / STUDY_FILE
    try:
        storage.publish(session.tune_storage, [*files, *([study] if study.is_file() else [])], session.sweep_dir)
    except OSError as exc:
        print(
            f"storage: could not copy the report to {session.tune_storage.shown()}/report ({one_line(str(exc))[:200]})"
        )
        return
    print(f"report files copied to {session.tune_storage.child('report').shown()}")


def _slim(session: SweepSession, best: TrialRow | None) -> str:
    """Keep a whole checkpoint (model + optimizer) for the answer only; say what the sweep takes on disk."""
    from sweeps.tuner import TUNE_DIR_NAME, confirm_dir, dir_size

    keep = {best.trial_id} if best is not None else set()
    rounds = session.spec.confirm.rounds if session.spec.confirm else 0
    names = [TUNE_DIR_NAME, *(confirm_dir(k) for k in range(1, rounds + 1))]
    stages = [session.tune_storage.child(name) for name in names]
    slimmed = sum(storage.slim_checkpoints(stage, keep)[0] for stage in stages)
    whole = f"trial {best.number} keeps model + optimizer state (to continue it); " if best is not None else ""
    size = f"sweep directory: {dir_size(session.sweep_dir) / 1e6:.0f} MB"
    if session.separate_storage:
        size += f", storage: {storage.tree_size(session.tune_storage) / 1e6:.0f} MB"
    return f"{size}; {whole}{slimmed} other trials keep model weights only (their sample grids and eval outputs are in MLflow)"
