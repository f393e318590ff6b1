"""The `eval` section: when evaluation outputs are written and how many.

:class:`EvalConfig` holds how often an epoch writes its evaluation outputs (every N epochs, or
the last only), a cap on the validation pairs they cover, and the rows of the per-epoch sample
grid. (The module is named ``evaluation`` rather than after the section: ``eval`` is a builtin.)
"""

from __future__ import annotations

from dataclasses import dataclass

from vunet_core.config.fields import check_fields, setting


@dataclass(frozen=True)
class EvalConfig:
    every_n_epochs: int = setting(1, "write eval outputs every N epochs (0 = last epoch only)", min=0)
    max_examples: int = setting(0, "limit eval outputs to the first N validation pairs (0 = all)", min=0)
    num_grid_examples: int = setting(6, "rows of the per-epoch sample grid", min=1)

    def __post_init__(self) -> None:
        check_fields(self)
