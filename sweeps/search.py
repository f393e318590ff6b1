"""How the search proposes trials, and what a trial's configuration is.

Optuna samples a define-by-run space (:class:`SpaceFunction`: each active parameter by
its `/`-path, conditional ones only when their parent takes the given values), the
sampler is seeded TPE or random search (:func:`make_sampler`), and the base config is the
first trial (:func:`baseline_point`). Ray hands a trial its sampled values as a nested
dict (the searchers nest the `/`-path names), plus one `sweep` entry that is not a config
value: the trial's stage (`search` or `confirm`), whether it is the baseline and, in
confirmation, its candidate and seed. A trial's config is the resolved base tree with
those leaves set (:func:`trial_cfg`; an unknown path is a ConfigError naming it). The base
tree is resolved once in the driver and shipped with the trainable, so workers on other
machines never read the sweep's YAML files.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sweeps.space import Distribution
from vunet_core import Config, apply_overrides, config_from_tree, flat_config, flatten, unflatten

if TYPE_CHECKING:
    import optuna

    from sweeps.spec import SweepSpec

META = "sweep"  # the trial config's entry about the trial itself (never a config path)


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{`/`-path: value} -> the nested dict Tune shows and hands to the trial."""
    return unflatten(flat)


@dataclass(frozen=True)
class TrialMeta:
    """What a trial config says about the trial itself (its `sweep` entry): written by the
    searchers (search trials) and the confirmation stage, read everywhere else through
    :func:`trial_meta`. Travels as a plain dict inside Tune's config (:meth:`as_entry`)."""

    stage: str = "search"  # "search" or "confirm"
    baseline: bool = False  # trains the base configuration
    number: int | None = None  # the sweep's trial number (search trials; 0 = the baseline)
    candidate: str = ""  # confirmation: "baseline" or "trial N"
    seed: int | None = None  # confirmation: the fresh training/seed
    search_trial: str = ""  # confirmation: the Tune id of the candidate's search trial

    @property
    def confirming(self) -> bool:
        return self.stage == "confirm"

    def as_entry(self) -> dict[str, Any]:
        """The dict stored under the trial config's `sweep` key (unset fields left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None and v != ""}


def trial_meta(config: Mapping[str, Any] | None) -> TrialMeta:
    """The :class:`TrialMeta` of a trial config (defaults when it has none)."""
    entry = (config or {}).get(META)
    if not isinstance(entry, Mapping):
        return TrialMeta()
    known = {k: entry[k] for k in TrialMeta.__dataclass_fields__ if k in entry}
    return TrialMeta(**known)


def with_meta(sampled: Mapping[str, Any], meta: TrialMeta) -> dict[str, Any]:
    """A Tune trial config: the nested sampled values plus the trial's `sweep` entry."""
    config = nest(sampled)
    config[META] = meta.as_entry()
    return config


def sampled_flat(sampled: Mapping[str, Any]) -> dict[str, Any]:
    """Nested or flat sampled values -> {`/`-path: value}, without the `sweep` entry."""
    return flatten({k: v for k, v in sampled.items() if k != META})


def trial_tree(base_tree: Mapping[str, Any], sampled: Mapping[str, Any]) -> dict[str, Any]:
    """Full nested config tree of a trial: `base_tree` with the sampled leaves set.

    `sampled` may be nested (as Ray passes it) or flat. Leaves are set on the *resolved*
    tree, so setting a `weight` never drops a ramp (and the baseline trial equals the base).
    """
    return apply_overrides(base_tree, sampled_flat(sampled))


def trial_cfg(base_tree: Mapping[str, Any], sampled: Mapping[str, Any]) -> Config:
    """The validated Config of a trial (ConfigError for an unknown path or an invalid value)."""
    return config_from_tree(trial_tree(base_tree, sampled))


def trial_flat_config(base_tree: Mapping[str, Any], sampled: Mapping[str, Any]) -> dict[str, Any]:
    """Every resolved config value of the trial under its `/`-path name."""
    return flat_config(trial_cfg(base_tree, sampled))


class SpaceFunction:
    """Define-by-run space for the searcher. A class, not a closure: Ray checkpoints the
    searcher (and so this) with plain pickle."""

    def __init__(self, parameters: dict[str, Distribution], base_values: dict[str, Any]) -> None:
        self.parameters = dict(parameters)
        self.base_values = dict(base_values)  # base values of `when` parents only

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        env = dict(self.base_values)
        constants: dict[str, Any] = {}
        for path, dist in self.parameters.items():
            if dist.kind == "constant":
                constants[path] = dist.value
            elif dist.active(env):
                env[path] = _suggest(trial, path, dist)
        return constants  # the searcher merges these into the trial config


def _suggest(trial: optuna.Trial, path: str, dist: Distribution) -> Any:
    low, high = dist.low, dist.high
    if dist.kind == "categorical":
        return trial.suggest_categorical(path, list(dist.values))
    assert low is not None and high is not None
    if dist.kind.startswith("int"):
        return trial.suggest_int(path, int(low), int(high), step=int(dist.step or 1), log=dist.log)
    return trial.suggest_float(path, float(low), float(high), step=dist.step, log=dist.log)


def define_by_run(spec: SweepSpec) -> Callable[[optuna.Trial], dict[str, Any] | None]:
    """The searcher's define-by-run space: suggests each active parameter by its path, returns the constants."""
    base = flatten(spec.base_tree())
    parents = {p for d in spec.parameters.values() for p in d.when}
    return SpaceFunction(spec.parameters, {p: base[p] for p in parents})


def baseline_point(spec: SweepSpec) -> dict[str, Any]:
    """{path: base value} of every searched parameter active under the base values
    (the searcher enqueues it as Optuna trial 0)."""
    base = flatten(spec.base_tree())
    return {p: base[p] for p, d in spec.parameters.items() if d.kind != "constant" and d.active(base)}


def make_sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    """TPE seeded from the spec (`sampler: random`: Optuna's random search; `sampler: nsga2`:
    Optuna's NSGA-II with a population of `max(4, num_samples // 4)`; same seed). With several
    objectives TPE is Optuna's multi-objective TPE (chosen by the study's directions). TPE's
    random start-up trials scale with the budget (Optuna's default 10 would make a short
    sweep pure random search); grouped multivariate TPE when the space is conditional
    (Optuna's advice for define-by-run spaces)."""
    import optuna

    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed)
    if spec.sampler == "nsga2":
        from sweeps.searcher import NSGAII

        return NSGAII(population_size=max(4, spec.num_samples // 4), seed=spec.seed)
    grouped = any(d.when for d in spec.parameters.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=spec.seed, n_startup_trials=min(10, max(2, spec.num_samples // 4)), group=grouped
        )
