"""The data package's user-facing error.

A :class:`DataError` is a :class:`~vunet_core.config.ConfigError`, so every entry
point that already turns configuration mistakes into one clear line and a
non-zero exit code handles missing, corrupt or malformed data the same way. Its
message names the file or the ``/``-path setting and says what to fix.
"""

from __future__ import annotations

from vunet_core.config import ConfigError


class DataError(ConfigError):
    """Missing, corrupt or malformed data; the message names the file or setting to fix."""
