"""The Pareto front of a two-objective search and its confirmation, on hand-made trials (no Ray)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from sweeps import confirm, front, verdict
from sweeps.report import SweepReport, TrialRow
from sweeps.search import TrialMeta, with_meta
from sweeps.trial_info import TrialState
from tests.sweeps.test_confirm import collect, result
from tests.sweeps.test_space import make_spec

L1, KL = "val/transfer/l1", "val/loss/KL"
TWO = [{"name": L1, "mode": "min"}, {"name": KL, "mode": "min"}]


def row(number: int, l1: float, kl: float, epochs: int = 4, state: str = "completed") -> TrialRow:
    sampled = with_meta({"optimizer/lr": 1e-3 * (number + 1)}, TrialMeta(baseline=number == 0, number=number))
    return TrialRow(f"t{number}", number, TrialState(state), epochs, l1, sampled, 10.0, {L1: l1, KL: kl})


def two_objective_report(tmp_path: Path, select: dict | None = None) -> SweepReport:
    extra = {"select": select} if select else {}
    spec = make_spec(tmp_path, max_epochs=4, metric=TWO, confirm={"top_k": 2, "seeds": [1, 2, 3]}, **extra)
    rows = [
        row(0, 0.075, 40.0),  # the baseline: on the front (lowest rate of the finalists)
        row(1, 0.072, 440.0),  # best L1, 11x the rate: on the front
        row(2, 0.074, 80.0),  # between them: on the front
        row(3, 0.076, 90.0),  # dominated by 0 and 2
        row(4, 0.070, 30.0, epochs=2, state="early_stopped"),  # measured early: not comparable
    ]
    rep = SweepReport(spec, rows, 100.0)
    rep.baseline, rep.best = rows[0], rows[1]
    return rep


def test_the_front_compares_finalists_and_spreads_its_points(tmp_path: Path) -> None:
    rep = two_objective_report(tmp_path)
    per_epoch = {
        f"t{i}": {2: {L1: 0.09 + i / 100, KL: 500.0}, 4: {L1: r.values[L1], KL: r.values[KL]}}
        for i, r in enumerate(rep.rows)
    }
    pareto = front.build_front(rep, per_epoch, [2, 4])
    assert [m.number for m in pareto.members] == [1, 0, 2]  # best L1, then the far end, then the middle
    assert pareto.top_epoch == 4 and not pareto.on_front(rep.rows[4])
    assert 0 < pareto.hypervolume[2] < pareto.hypervolume[4]  # the later epoch dominates more
    rows = list(csv.DictReader(front.write_csv(pareto, tmp_path / "pareto.csv").read_text().splitlines()))
    assert [(r["trial"], r["on_front"]) for r in rows] == [
        ("1", "true"), ("0", "true"), ("2", "true"), ("4", "false"), ("3", "false")
    ]  # fmt: skip
    table = front.format_table(pareto)
    assert "no (dominated)" in table and "- (early_stopped at epoch 2)" in table
    assert front.plot(pareto, tmp_path / "pareto.png").stat().st_size > 20_000
    keys = [(k, step) for k, _, step in front.parent_metrics(pareto)]
    assert keys == [("pareto/hypervolume", 2), ("pareto/hypervolume", 4), ("pareto/front_size", 4)]


def _confirm(rep: SweepReport, kl_trial1: tuple[float, ...]) -> confirm.Confirmation:
    picked = confirm.pick_candidates(rep, top_k=2)
    assert [c.label for c in picked] == ["baseline", "trial 1", "trial 2"]  # spread along the front
    values = {
        "baseline": ((0.075, 0.0755, 0.0745), (40.0, 41.0, 39.0)),
        "trial 1": ((0.0700, 0.0705, 0.0702), kl_trial1),
        "trial 2": ((0.0720, 0.0722, 0.0718), (78.0, 80.0, 79.0)),
    }
    results = [
        result(label, seed, l1s[i], **{KL: kls[i]})
        for label, (l1s, kls) in values.items()
        for i, seed in enumerate((1, 2, 3))
    ]
    return collect(rep.spec, picked, results)


def test_each_point_is_judged_on_each_objective_and_the_default_rule_weighs_the_rate(tmp_path: Path) -> None:
    conf = _confirm(two_objective_report(tmp_path), (430.0, 450.0, 440.0))
    trial1, trial2 = conf.candidates
    assert trial1.verdict == verdict.BETTER and trial1.others_judged[KL].word == verdict.WORSE
    assert trial2.verdict == verdict.BETTER and trial2.others_judged[KL].word == verdict.WORSE
    assert conf.winner is conf.baseline  # both better on L1, both worse on the rate
    assert "no confirmed point qualifies" in confirm.summary(conf)
    assert f"{KL}" in confirm.format_table(conf) and "delta %" in confirm.format_table(conf)
    rows = list(csv.DictReader(confirm.write_csv(conf, tmp_path / "confirm.csv").read_text().splitlines()))
    assert rows[1][f"{KL}:verdict"] == "worse" and float(rows[1][f"{KL}:mean"]) == pytest.approx(440.0)


def test_a_stated_rule_takes_the_best_point_within_its_bound(tmp_path: Path) -> None:
    rule = {"minimize": L1, "subject_to": {KL: {"max_ratio_to_baseline": 2.5}}}
    conf = _confirm(two_objective_report(tmp_path, select=rule), (430.0, 450.0, 440.0))
    assert conf.winner.label == "trial 2"  # trial 1 has the best L1 but 11x the rate
    line = confirm.summary(conf)
    assert line.startswith("trial 2: val/transfer/l1 -4.0 % [") and "val/loss/KL 2x the baseline's (worse)" in line
    assert "chosen by: minimize val/transfer/l1" in line and "<= 2.5x the baseline's" in line
    metrics = confirm.parent_metrics(conf)
    assert metrics[f"confirm/chosen_mean/{KL}"] == pytest.approx(79.0)
