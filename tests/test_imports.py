"""Every module of both packages imports in a fresh interpreter (catches undeclared dependencies).

One subprocess imports them all, so modules already imported by other tests cannot
hide a failure, and the check sees exactly what a new virtual environment installed
from pyproject.toml provides.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import importlib, json, pkgutil, traceback
failed, seen = {}, []
for top in ("vunet_core", "sweeps"):
    package = importlib.import_module(top)
    names = [top] + [i.name for i in pkgutil.walk_packages(package.__path__, prefix=top + ".")]
    for name in names:
        seen.append(name)
        try:
            importlib.import_module(name)
        except BaseException:
            failed[name] = traceback.format_exc(limit=3)
print(json.dumps({"seen": seen, "failed": failed}))
"""


def test_every_module_of_both_packages_imports() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"vunet_core.training", "vunet_core.data.loader", "sweeps.run", "sweeps.tuner"} <= set(result["seen"])
    assert result["failed"] == {}, "\n".join(f"{k}:\n{v}" for k, v in result["failed"].items())
