"""Several objectives in the sweep file (`metric` as a list, `select`) and the rule that picks the answer."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sweeps.pareto import Objective
from sweeps.selection import Bound, Confirmed, SelectRule, choose, default_rule
from sweeps.spec import SpecError, load_spec
from sweeps.verdict import BETTER, EQUIVALENT, UNDECIDED, WORSE

ROOT = Path(__file__).resolve().parents[2]
L1, KL = Objective("val/transfer/l1", "min"), Objective("val/loss/KL", "min")
TWO = [{"name": L1.name, "mode": "min"}, {"name": KL.name, "mode": "min"}]
BASE = Confirmed("baseline", {L1.name: 0.075, KL.name: 40.0})


def point(label: str, l1: float, kl: float, v_l1: str, v_kl: str) -> Confirmed:
    return Confirmed(label, {L1.name: l1, KL.name: kl}, {L1.name: v_l1, KL.name: v_kl})


# --------------------------------------------------------------------------- the rule


def test_default_rule_takes_the_best_primary_among_points_not_worse_on_the_others() -> None:
    rule = default_rule((L1, KL))
    low_rate = point("trial 3", 0.074, 38.0, BETTER, EQUIVALENT)
    high_rate = point("trial 7", 0.072, 440.0, BETTER, WORSE)  # best L1, but worse on the rate
    assert choose(rule, [high_rate, low_rate], BASE).label == "trial 3"
    assert "not confirmed worse than the baseline on val/loss/KL" in str(rule) and "default rule" in str(rule)


def test_no_point_qualifies_and_the_answer_is_the_baseline() -> None:
    rule = default_rule((L1, KL))
    points = [
        point("trial 7", 0.072, 440.0, BETTER, WORSE),
        point("trial 2", 0.074, 30.0, UNDECIDED, BETTER),  # not confirmed better on the primary
        point("trial 5", 0.080, 20.0, WORSE, BETTER),
    ]
    assert choose(rule, points, BASE) is BASE
    assert choose(rule, [], BASE) is BASE


def test_a_stated_rule_bounds_the_rate_by_its_ratio_to_the_baseline() -> None:
    rule = SelectRule(L1, (Bound(KL.name, max_ratio=2.0),))
    points = [
        point("trial 7", 0.072, 440.0, BETTER, WORSE),  # 11x the rate
        point("trial 11", 0.073, 79.0, BETTER, WORSE),  # 1.98x: within the bound, though worse on the rate
        point("trial 4", 0.0735, 60.0, BETTER, WORSE),
    ]
    assert choose(rule, points, BASE).label == "trial 11"
    assert choose(SelectRule(L1, (Bound(KL.name, max_ratio=1.9),)), points, BASE).label == "trial 4"
    assert choose(SelectRule(L1, (Bound(KL.name, max=50.0),)), points, BASE) is BASE
    assert "val/loss/KL <= 2x the baseline's" in str(rule)


def test_a_max_objective_is_maximised() -> None:
    gain = Objective("val/transfer/appearance_gain", "max")
    rule = SelectRule(gain, ())
    a = Confirmed("a", {gain.name: 0.02}, {gain.name: BETTER})
    b = Confirmed("b", {gain.name: 0.03}, {gain.name: BETTER})
    assert choose(rule, [a, b], Confirmed("baseline", {gain.name: 0.01})).label == "b"


# --------------------------------------------------------------------------- the sweep file


def smoke(**changes: Any) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "search_spaces" / "smoke.yaml").read_text())
    data = copy.deepcopy(data)
    data.update(changes)
    return data


def load(tmp_path: Path, data: dict[str, Any]) -> Any:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_spec(path)


def test_a_list_metric_gives_objectives_with_the_first_as_primary(tmp_path: Path) -> None:
    rule = {"minimize": L1.name, "subject_to": {KL.name: {"max_ratio_to_baseline": 2, "min": 1}}}
    spec = load(tmp_path, smoke(metric=TWO, select=rule))
    assert spec.objectives == (L1, KL) and spec.multi
    assert (spec.metric, spec.mode) == (L1.name, "min")
    assert spec.rule == SelectRule(L1, (Bound(KL.name, max_ratio=2.0, min=1.0),))
    single = load(tmp_path, smoke())
    assert single.objectives == (L1,) and not single.multi and single.select is None


BAD = {
    "repeated name": ({"metric": [TWO[0], TWO[0]]}, "metric: val/transfer/l1 is named 2 times"),
    "bad mode": ({"metric": [TWO[0], {"name": KL.name, "mode": "lowest"}]}, "metric[1]/mode: got 'lowest'"),
    "unknown metric": ({"metric": [TWO[0], {"name": "val/loss/kl"}]}, "metric[1]/name: val/loss/kl is not reported"),
    "four objectives": (
        {
            "metric": [
                *TWO,
                {"name": "val/transfer/appearance_gain", "mode": "max"},
                {"name": "val/loss/total", "mode": "min"},
            ]
        },
        "metric: names 4 objectives; at most 3",
    ),
    "select on one objective": (
        {"select": {"minimize": L1.name}},
        "select: chooses between objectives; this sweep has one",
    ),
    "select names no objective": (
        {"metric": TWO, "select": {"minimize": "val/transfer/perceptual"}},
        "select/minimize: 'val/transfer/perceptual' is not an objective",
    ),
    "select against the direction": (
        {"metric": TWO, "select": {"maximize": L1.name}},
        "select/maximize: val/transfer/l1 is a min objective",
    ),
    "subject_to names no objective": (
        {"metric": TWO, "select": {"minimize": L1.name, "subject_to": {"val/loss/total": {"max": 1}}}},
        "select/subject_to/val/loss/total: 'val/loss/total' is not an objective",
    ),
    "impossible bound": (
        {"metric": TWO, "select": {"minimize": L1.name, "subject_to": {KL.name: {"min": 50, "max": 10}}}},
        "select/subject_to/val/loss/KL/min: 50 is above the max 10",
    ),
    "ratio not positive": (
        {"metric": TWO, "select": {"minimize": L1.name, "subject_to": {KL.name: {"max_ratio_to_baseline": 0}}}},
        "max_ratio_to_baseline: got 0, expected a finite number > 0",
    ),
    "unknown bound": (
        {"metric": TWO, "select": {"minimize": L1.name, "subject_to": {KL.name: {"max_ratio": 2}}}},
        "select/subject_to/val/loss/KL/max_ratio: unknown bound; did you mean max_ratio_to_baseline?",
    ),
}


@pytest.mark.parametrize("changes,message", BAD.values(), ids=BAD.keys())
def test_each_bad_objective_or_rule_is_one_line(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as info:
        load(tmp_path, smoke(**changes))
    assert len(info.value.problems) == 1 and message in info.value.problems[0], info.value.problems


def test_overriding_a_list_metric_from_the_command_line_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(smoke(metric=TWO), sort_keys=False))
    with pytest.raises(SpecError) as info:
        load_spec(path, {"metric/name": "val/loss/total"})
    assert info.value.problems == [f"{path}: override metric/name: metric is a list in the sweep file; change it there"]


def test_a_bad_rule_exits_2_before_anything_is_written(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    bad = smoke(metric=TWO, select={"minimize": L1.name, "subject_to": {"val/loss/total": {"max": 1}}})
    path.write_text(yaml.safe_dump(bad, sort_keys=False))
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "sweeps" / "run.py"), str(path), "--out-dir", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "is not an objective" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not out.exists() and not (tmp_path / "mlruns").exists()
