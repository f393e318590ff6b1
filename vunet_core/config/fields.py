"""The building blocks every config section shares: its errors and how its fields are declared and checked.

A setting is a dataclass field made by :func:`setting` (or :func:`schedule_setting` for a
point of a step schedule): a default, a one-line doc (``metadata["doc"]``) and optional
``min``/``max``/``choices`` limits. Each section calls :func:`check_fields` from its
``__post_init__`` so a section that exists is within its limits; a section's own rules raise
:class:`FieldError`, which :func:`~vunet_core.config.config_from_tree` re-names from the top of
the config. :class:`ConfigError` is the user-fixable problem every config entry point reports.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any


class ConfigError(ValueError):
    """A user-fixable configuration problem; the message names the path."""


class FieldError(ConfigError):
    """A config dataclass rejected its own values: `field` is the `/`-path inside that dataclass
    ("" for the dataclass as a whole); :func:`config_from_tree` prefixes the section's path."""

    def __init__(self, field: str, message: str) -> None:
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}" if field else message)

    def under(self, section: str) -> FieldError:
        """The same problem, named from the enclosing section (`losses/KL` + `weight`)."""
        return FieldError("/".join(p for p in (section, self.field) if p), self.message)


def check_fields(obj: Any) -> None:
    """Each leaf field of one config dataclass against its `min`/`max`/`choices` metadata (nested
    dataclasses checked themselves when they were built)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        meta = f.metadata
        if dataclasses.is_dataclass(value):
            continue
        if "choices" in meta and value not in meta["choices"]:
            raise FieldError(f.name, f"got {value!r}, expected one of {', '.join(meta['choices'])}")
        if value is None or isinstance(value, (str, list, bool)):
            continue
        if "min" in meta and value < meta["min"]:
            raise FieldError(f.name, f"got {value!r}, expected >= {meta['min']}")
        if "max" in meta and value > meta["max"]:
            raise FieldError(f.name, f"got {value!r}, expected <= {meta['max']}")


def setting(default: Any, doc: str, **limits: Any) -> Any:
    """A dataclass field with a doc line and optional min/max/choices limits."""
    meta = {"doc": doc, **limits}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def schedule_setting(default: float | None, doc: str) -> Any:
    """A point of a step schedule: a fraction of the run's steps or a step (`training/schedule_units`)."""
    return setting(
        default,
        f"{doc}: fraction of the run's steps, or a step with training/schedule_units steps",
        min=0,
        schedule=True,
    )
