"""Tune searchers: Optuna over ask/tell for the search stage, a fixed list for confirmation.

:class:`StudySearcher` is a thin :class:`ray.tune.search.Searcher` over Optuna's public
ask/tell API and the sweep's SQLite study (`<sweep dir>/optuna.db`), so the study tells
the truth about every trial (what Ray's stock OptunaSearch does not):

- every epoch's objective is an intermediate value (`trial.report(value, epoch)`); with several
  objectives (a multi-objective study, one direction each), which Optuna keeps no intermediate
  values for, every epoch's values are the user attribute `epoch_<k>` ({objective: value});
- a trial that ran all `max_epochs` is COMPLETE with its last value;
- one the scheduler stopped early (or the time budget ended) is PRUNED; Optuna keeps
  its last intermediate value, and TPE ranks it below the completed ones;
- a diverged trial is FAIL with `diverged_step`/`diverged_term`, a crashed one FAIL;
- the baseline point (the base config's values) is enqueued first and marked in the
  trial config's `sweep` entry (never when `baseline: false`).

Define-by-run (:class:`sweeps.search.SpaceFunction`) and conditional parameters work
as before. A trial's number is the sweep's (user attribute `trial`: 0, 1, 2, ... in the
order proposed), the one shown everywhere. Optuna trials cannot be reopened: a sweep
resumed after an interrupt or a kill ends the study's RUNNING trials as FAIL
(:func:`fail_running_trials`), and a Tune trial that continues gets a new Optuna trial
with the same parameters, the same `trial` number and the intermediate values so far
(`resumed_from_trial`: the Optuna number it continues).

A resumed search continues, it does not start over: the sampler (its random state, TPE's
start-up draws included) is saved with the searcher's state and restored with it. No two
trials of a sweep share a configuration: a proposal equal to an earlier trial's is told
FAIL (`duplicate_of`) and drawn again; after `MAX_REDRAWS` such draws the space is taken
as exhausted and the search ends with the trials it has (and says so).
"""

from __future__ import annotations

import base64
import json
import logging
import math
import pickle
import threading
import warnings
from pathlib import Path
from typing import Any

import optuna
from ray.tune.search import Searcher

from sweeps.files import STUDY_FILE, study_url
from sweeps.pareto import Objective
from sweeps.search import TrialMeta, baseline_point, define_by_run, make_sampler, with_meta
from sweeps.spec import SweepSpec
from sweeps.trial_info import TrialState, end_state

StudyState = optuna.trial.TrialState
NUMBER_ATTR = "trial"  # the sweep's trial number, on each Optuna trial behind it
EPOCH_ATTR = "epoch_"  # + k: a multi-objective trial's values at epoch k
MAX_REDRAWS = 100  # proposals in a row equal to earlier trials before the space counts as exhausted
log = logging.getLogger(__name__)


def load_study(spec: SweepSpec, sweep_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name=spec.name, storage=optuna.storages.RDBStorage(study_url(sweep_dir)))


def fail_running_trials(spec: SweepSpec, sweep_dir: Path) -> int:
    """End the study's RUNNING trials as FAIL (interrupted or killed sweep); returns how many."""
    if not (sweep_dir / STUDY_FILE).is_file():
        return 0
    try:
        study = load_study(spec, sweep_dir)
    except KeyError:  # the file exists but the study was never created
        return 0
    running = study.get_trials(deepcopy=False, states=(StudyState.RUNNING,))
    for t in running:
        study.tell(t.number, state=StudyState.FAIL)
    if running:
        earlier = list(study.user_attrs.get("interrupted_trials", []))
        study.set_user_attr("interrupted_trials", earlier + [t.number for t in running])
    return len(running)


class NSGAII(optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II, picklable: Tune pickles the searcher and :meth:`StudySearcher.save` its
    sampler, and Optuna's NSGA-II holds a thread lock (recreated on unpickling)."""

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_thread_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _thread_lock=threading.Lock())


def epoch_values(spec: SweepSpec, sweep_dir: Path) -> dict[str, dict[int, dict[str, float]]]:
    """Each Tune trial's values of every objective per epoch, from the study (one query):
    {tune trial id: {epoch: {objective: value}}}; empty without a study."""
    if not (sweep_dir / STUDY_FILE).is_file():
        return {}
    out: dict[str, dict[int, dict[str, float]]] = {}
    for t in load_study(spec, sweep_dir).get_trials(deepcopy=False):
        tune_id = t.user_attrs.get("tune_trial_id")
        if tune_id is None:
            continue
        epochs = out.setdefault(str(tune_id), {})
        for key, value in t.user_attrs.items():
            if key.startswith(EPOCH_ATTR) and isinstance(value, dict):
                epochs[int(key[len(EPOCH_ATTR) :])] = {k: float(v) for k, v in value.items()}
        for step, value in t.intermediate_values.items():
            epochs.setdefault(int(step), {})[spec.metric] = float(value)
    return out


class StudySearcher(Searcher):
    """Optuna ask/tell behind Tune's Searcher interface (see the module docstring)."""

    def __init__(self, spec: SweepSpec, sweep_dir: Path) -> None:
        super().__init__(metric=spec.metric, mode=spec.mode)
        self.study_name = spec.name
        self.study_url = study_url(sweep_dir)
        self.objectives = spec.objectives or (Objective(spec.metric, spec.mode),)
        self.directions = [
            optuna.study.StudyDirection.MINIMIZE if o.mode == "min" else optuna.study.StudyDirection.MAXIMIZE
            for o in self.objectives
        ]
        self.sampler = make_sampler(spec)
        self.space = define_by_run(spec)
        self.max_epochs = spec.max_epochs
        self.points = [baseline_point(spec)] if spec.baseline and baseline_point(spec) else []
        self.numbers: dict[str, int] = {}  # Tune trial id -> Optuna trial number
        self.next_number = 0  # the sweep's number of the next proposed trial
        self.exhausted = False
        self.finished: set[str] = set()
        self._study: optuna.Study | None = None
        self._live: dict[str, optuna.Trial] = {}  # this process's open Optuna trials
        self._steps: dict[str, set[int]] = {}  # epochs reported to each open trial
        self._seen: dict[str, int] | None = None  # the sweep's configurations so far -> trial number

    # ----------------------------------------------------------------- state

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_study"], state["_live"], state["_steps"], state["_seen"] = None, {}, {}, None  # read again
        return state

    def save(self, checkpoint_path: str) -> None:
        """Tune saves this with its experiment state, so a resumed sweep's searcher (and its
        sampler's random state) matches the trials Tune restores."""
        state = {
            "points": self.points,
            "numbers": self.numbers,
            "next_number": self.next_number,
            "finished": sorted(self.finished),
            "sampler": base64.b64encode(pickle.dumps(self.sampler)).decode("ascii"),
        }
        Path(checkpoint_path).write_text(json.dumps(state))

    def restore(self, checkpoint_path: str) -> None:
        state = json.loads(Path(checkpoint_path).read_text())
        self.points, self.numbers, self.finished = state["points"], state["numbers"], set(state["finished"])
        self.next_number = int(state["next_number"])
        self.sampler = pickle.loads(base64.b64decode(state["sampler"]))  # written by save() above
        self._study, self._live, self._steps, self._seen = None, {}, {}, None

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            self._study = optuna.create_study(
                study_name=self.study_name,
                storage=optuna.storages.RDBStorage(self.study_url),
                sampler=self.sampler,
                directions=self.directions,
                load_if_exists=True,
            )
        return self._study

    # ----------------------------------------------------------------- Tune calls

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.exhausted:
            return Searcher.FINISHED  # type: ignore[return-value]  # Tune's "no more trials" marker
        baseline = bool(self.points)
        if baseline:
            self.study.enqueue_trial(self.points.pop(0), user_attrs={"baseline": True})
        proposed = self._new_proposal()
        if proposed is None:
            self.exhausted = True
            print(
                f"search space exhausted: {MAX_REDRAWS} proposals in a row repeated earlier trials; "
                f"the search ends with {self.next_number} trials",
                flush=True,
            )
            return Searcher.FINISHED  # type: ignore[return-value]
        trial, constants = proposed
        number, self.next_number = self.next_number, self.next_number + 1
        trial.set_user_attr(NUMBER_ATTR, number)
        trial.set_user_attr("tune_trial_id", trial_id)
        if self._seen is not None:
            self._seen.setdefault(_key(trial.params), number)
        self.numbers[trial_id] = trial.number
        self._live[trial_id], self._steps[trial_id] = trial, set()
        return with_meta({**trial.params, **constants}, TrialMeta(baseline=baseline, number=number))

    def _new_proposal(self) -> tuple[optuna.Trial, dict[str, Any]] | None:
        """An Optuna trial whose parameters no earlier trial of the sweep had (a repeat is told
        FAIL with `duplicate_of` and drawn again); None when none came in MAX_REDRAWS draws.
        Redraws are random (seeded by the trial's number and the attempt, so a resumed sweep draws
        the same): TPE, once it has settled, would propose the same point again and again."""
        sampler = self.study.sampler
        try:
            for attempt in range(MAX_REDRAWS):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # an enqueued base value off the search grid is run as is
                    trial = self.study.ask()
                    constants = self.space(trial) or {}
                twin = self._twin(trial.params)
                if twin is None:
                    return trial, constants
                trial.set_user_attr("duplicate_of", twin)
                self.study.tell(trial, state=StudyState.FAIL)
                self.study.sampler = optuna.samplers.RandomSampler(seed=self.next_number * MAX_REDRAWS + attempt)
            return None
        finally:
            self.study.sampler = sampler

    def _twin(self, params: dict[str, Any]) -> int | None:
        """The number of an earlier trial of the sweep with these parameters, if any. The trial
        about to be numbered `next_number` itself does not count: a resumed sweep proposes again
        what a killed driver had proposed but Tune never recorded. A dict lookup: the study is read
        once per process (then kept up to date by `suggest`), not once per proposal."""
        if self._seen is None:
            self._seen = {}
            for t in self.study.get_trials(deepcopy=False):
                number = t.user_attrs.get(NUMBER_ATTR)
                if number is not None:
                    self._seen.setdefault(_key(t.params), int(number))
        number = self._seen.get(_key(params))
        return number if number is not None and number != self.next_number else None

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        trial = self._open(trial_id)
        step = result.get("training_iteration")
        if trial is None or not isinstance(step, int) or step in self._steps[trial_id]:
            return
        values = {o.name: float(result[o.name]) for o in self.objectives if _finite(result.get(o.name))}
        if len(self.objectives) > 1:
            if values:
                trial.set_user_attr(f"{EPOCH_ATTR}{step}", values)
                self._steps[trial_id].add(step)
        elif self.metric in values:
            trial.report(values[self.metric], step)
            self._steps[trial_id].add(step)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        trial = self._open(trial_id)
        if trial is None:
            return
        result = result or {}
        trial.set_user_attr("epochs", int(result.get("training_iteration", 0) or 0))
        # Tune hands a trial's last result (the one its scheduler stopped it on) only to this call.
        self.on_trial_result(trial_id, result)
        state = end_state(result, error=error, max_epochs=self.max_epochs, metric=self.metric)
        trial.set_user_attr("trial_state", str(state))
        if state == TrialState.DIVERGED:
            trial.set_user_attr("diverged_step", result.get("diverged_step"))
            trial.set_user_attr("diverged_term", result.get("diverged_term"))
        if state.failed:
            self.study.tell(trial, state=StudyState.FAIL)
        elif state == TrialState.EARLY_STOPPED:
            self.study.tell(trial, state=StudyState.PRUNED)  # Optuna keeps the last intermediate value
        else:
            self.study.tell(trial, [float(result.get(o.name, math.nan)) for o in self.objectives])
        self.finished.add(trial_id)
        self._live.pop(trial_id, None)
        self._steps.pop(trial_id, None)

    def _open(self, trial_id: str) -> optuna.Trial | None:
        """The open Optuna trial of a Tune trial; a new one with the same values when the
        sweep was resumed (the old one was ended as FAIL). None once the trial finished."""
        if trial_id in self.finished or trial_id not in self.numbers:
            return None
        if trial_id in self._live:
            return self._live[trial_id]
        old = self.study.trials[self.numbers[trial_id]]
        if not old.state.is_finished():  # left RUNNING by a driver that died: it cannot be continued
            self.study.tell(old.number, state=StudyState.FAIL)
        user_attrs = {**old.user_attrs, "resumed_from_trial": old.number}
        self.study.enqueue_trial(old.params, user_attrs=user_attrs)
        trial = self.study.ask(fixed_distributions=old.distributions)
        for step, value in sorted(old.intermediate_values.items()):
            trial.report(value, step)
        self.numbers[trial_id] = trial.number
        epochs = {int(k[len(EPOCH_ATTR) :]) for k in old.user_attrs if k.startswith(EPOCH_ATTR)}
        self._live[trial_id], self._steps[trial_id] = trial, set(old.intermediate_values) | epochs
        return trial


class FixedPoints(Searcher):
    """Suggests a fixed list of trial configs, in order (the confirmation stage)."""

    def __init__(self, configs: list[dict[str, Any]], metric: str, mode: str) -> None:
        super().__init__(metric=metric, mode=mode)
        self.configs = list(configs)
        self.next = 0

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.next >= len(self.configs):
            return Searcher.FINISHED  # type: ignore[return-value]  # Tune's "no more trials" marker
        self.next += 1
        return self.configs[self.next - 1]

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        pass

    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_text(json.dumps({"next": self.next}))

    def restore(self, checkpoint_path: str) -> None:
        self.next = int(json.loads(Path(checkpoint_path).read_text())["next"])


def _key(params: dict[str, Any]) -> str:
    """A configuration as a dict key (JSON of the sorted values: floats compare as Optuna stores them)."""
    return json.dumps(params, sort_keys=True, default=str)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
