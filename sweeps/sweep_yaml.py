"""Reading a sweep file: safe YAML with each key's line, and the collector of problem lines.

:func:`read_sweep_yaml` reads numbers such as `1e-3` as numbers (YAML 1.1 does not) and
rejects duplicate keys; :class:`Problems` turns `(key, message)` into one line each,
``FILE[:LINE]: KEY: message``, with the line of the nearest key that has one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from vunet_core import PathsError, binary_text_problem, one_line, read_yaml_text


class SpecError(ValueError):
    """Problems of a sweep file, one line each (the CLI prints them and exits 2)."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class Problems:
    """Collects one line per problem, with the YAML line of the key when known."""

    def __init__(self, file: str, lines: dict[str, int]) -> None:
        self.file, self.lines = file, lines
        self.problems: list[str] = []

    def add(self, key: str, msg: str) -> None:
        parts = re.sub(r"\[\d+\]", "", key).split("/")
        line = next((self.lines[k] for i in range(len(parts), 0, -1) if (k := "/".join(parts[:i])) in self.lines), 0)
        where = f"{self.file}:{line}" if line else self.file
        self.problems.append(f"{where}: {key}: {msg}")


class _Loader(yaml.SafeLoader):
    """Safe YAML that reads `1e-3` as a number (YAML 1.1 does not) and rejects duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def read_sweep_yaml(src: Path) -> tuple[str, dict[str, Any], dict[str, int]]:
    if not src.exists():
        raise SpecError([f"{src}: no such sweep file"])
    try:
        text = read_yaml_text(src, "a sweep YAML file (e.g. search_spaces/smoke.yaml)")
    except PathsError as exc:
        raise SpecError([str(exc)]) from None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{src}:{mark.line + 1}" if mark else str(src)
        raise SpecError([f"{where}: malformed YAML: {exc.problem or exc.context}"]) from None
    except yaml.reader.ReaderError as exc:
        raise SpecError([f"{src}: {binary_text_problem(exc)}"]) from None
    except yaml.YAMLError as exc:
        raise SpecError([f"{src}: malformed YAML: {one_line(str(exc))}"]) from None
    if not isinstance(data, dict):
        raise SpecError([f"{src}: expected a mapping of sweep settings (name, parameters, metric, ...)"])
    return text, data, _key_lines(node, "")


def _key_lines(node: Any, prefix: str) -> dict[str, int]:
    """`/`-joined key -> 1-based line, so each problem can point at its line."""
    out: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            out[key] = key_node.start_mark.line + 1
            out.update(_key_lines(value_node, key + "/"))
    return out
