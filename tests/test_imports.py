"""Every module of both packages imports in a fresh interpreter (catches undeclared dependencies).

One subprocess imports them all, so modules already imported by other tests cannot
hide a failure, and the check sees exactly what a new virtual environment installed
from pyproject.toml provides.
"""

from __future__ import annotations

import ast
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


def _vunet_core_imports(path: Path) -> list[tuple[int, str, str]]:
    """(line, module, name) of every import of vunet_core in a file; name '*' for whole-module imports."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "vunet_core":
            found += [(node.lineno, node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name, "*") for a in node.names if a.name.split(".")[0] == "vunet_core"]
    return found


def test_sweeps_uses_only_what_vunet_core_exports() -> None:
    """DESIGN.md's boundary: `sweeps` imports names from `vunet_core`'s __init__, never its submodules."""
    import vunet_core

    exported = set(vunet_core.__all__)
    assert all(hasattr(vunet_core, name) for name in exported)
    problems = []
    for path in sorted((ROOT / "sweeps").rglob("*.py")):
        for line, module, name in _vunet_core_imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if module != "vunet_core":
                problems.append(f"{where} imports {module} (a submodule; export what it needs from vunet_core)")
            elif name != "*" and name not in exported:
                problems.append(f"{where} imports {name}, which vunet_core/__init__.py does not export")
    assert problems == [], "\n".join(problems)


def test_the_contract_check_sees_a_submodule_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from vunet_core.training import lr_at\nimport vunet_core.model\nfrom vunet_core import Config\n")
    assert _vunet_core_imports(bad) == [
        (1, "vunet_core.training", "lr_at"),
        (2, "vunet_core.model", "*"),
        (3, "vunet_core", "Config"),
    ]
