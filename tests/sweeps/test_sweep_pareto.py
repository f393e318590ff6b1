"""A two-objective smoke sweep end to end (real Ray, Optuna, MLflow): the front, its confirmation,
the answer by the default rule, and what the parent run and the study hold."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from sweeps.pareto import Objective
from sweeps.selection import Confirmed, choose, default_rule
from tests.sweeps.test_sweep_cli import SMOKE, children, client_for, run_cli

pytestmark = pytest.mark.slow
L1, KL = Objective("val/transfer/l1", "min"), Objective("val/loss/KL", "min")


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    cwd = tmp_path_factory.mktemp("pareto")
    data = yaml.safe_load(SMOKE.read_text())
    data.update(
        name="pareto",
        metric=[{"name": L1.name, "mode": "min"}, {"name": KL.name, "mode": "min"}],
        num_samples=6,
        max_epochs=3,
        scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 2},
        confirm={"top_k": 2, "seeds": [1, 2], "max_seeds": 2},
    )
    (cwd / "pareto.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    out = run_cli([str(cwd / "pareto.yaml")], cwd)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return cwd, out


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_the_front_is_reported_plotted_and_logged(swept: tuple[Path, Any]) -> None:
    cwd, out = swept
    sweep_dir = cwd / "sweeps_out" / "pareto"
    rows = _rows(sweep_dir / "pareto.csv")
    assert len(rows) == 6 and {L1.name, KL.name, "on_front", "epochs"} <= set(rows[0])
    top = max(int(r["epochs"]) for r in rows)
    front = [r for r in rows if r["on_front"] == "true"]
    finalists = [r for r in rows if int(r["epochs"]) == top]
    assert front and all(int(r["epochs"]) == top for r in front)
    for r in finalists:  # on the front exactly when no finalist dominates it
        v = (float(r[L1.name]), float(r[KL.name]))
        beaten = any(
            float(o[L1.name]) <= v[0] and float(o[KL.name]) <= v[1] and (float(o[L1.name]), float(o[KL.name])) != v
            for o in finalists
        )
        assert (r["on_front"] == "true") == (not beaten), r
    assert (sweep_dir / "pareto.png").stat().st_size > 20_000
    assert "Pareto front of pareto:" in out.stdout and "hypervolume of the front per rung" in out.stdout
    parent, kids = children(client_for(cwd), "pareto")
    assert len([k for k in kids if k.data.tags.get("stage") == "search"]) == 6
    history = client_for(cwd).get_metric_history(parent.info.run_id, "pareto/hypervolume")
    assert sorted(m.step for m in history) == [1, 2, 3] and all(m.value > 0 for m in history)
    artifacts = {a.path for a in client_for(cwd).list_artifacts(parent.info.run_id)}
    assert {"pareto.csv", "pareto.png", "front", "best_config.yaml"} <= artifacts


def test_the_front_is_confirmed_per_objective_and_the_default_rule_picks_the_answer(swept: tuple[Path, Any]) -> None:
    cwd, out = swept
    sweep_dir = cwd / "sweeps_out" / "pareto"
    confirmed = _rows(sweep_dir / "confirm.csv")
    front_ids = [r["trial_id"] for r in _rows(sweep_dir / "pareto.csv") if r["on_front"] == "true"]
    assert confirmed[0]["candidate"] == "baseline" and 2 <= len(confirmed) <= 3
    assert all(r["search_trial_id"] in front_ids for r in confirmed[1:])  # front points, spread along it
    for r in confirmed:
        assert math.isfinite(float(r["mean"])) and math.isfinite(float(r[f"{KL.name}:mean"]))
    points = [
        Confirmed(
            r["candidate"],
            {L1.name: float(r["mean"]), KL.name: float(r[f"{KL.name}:mean"])},
            {L1.name: r["verdict"], KL.name: r[f"{KL.name}:verdict"]},
        )
        for r in confirmed
    ]
    chosen = choose(default_rule((L1, KL)), points[1:], points[0])
    record = json.loads((sweep_dir / "best_trial.json").read_text())
    assert record["confirmation"]["candidate"] == chosen.label
    assert "chosen by: minimize val/transfer/l1" in out.stdout
    # every confirmed front point can be taken instead: front/trial_<n>.yaml
    numbers = sorted(int(r["candidate"].split()[1]) for r in confirmed[1:])
    assert sorted(int(p.stem.split("_")[1]) for p in (sweep_dir / "front").glob("*.yaml")) == numbers


def test_the_study_has_two_directions_and_every_epochs_values(swept: tuple[Path, Any]) -> None:
    cwd, _ = swept
    storage = f"sqlite:///{cwd / 'sweeps_out' / 'pareto' / 'optuna.db'}"
    study = optuna.load_study(study_name="pareto", storage=storage)
    assert len(study.directions) == 2
    for t in study.trials:
        if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED):
            epochs = int(t.user_attrs["epochs"])
            assert all(set(t.user_attrs[f"epoch_{k}"]) == {L1.name, KL.name} for k in range(1, epochs + 1))
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.values == [t.user_attrs["epoch_3"][L1.name], t.user_attrs["epoch_3"][KL.name]]
