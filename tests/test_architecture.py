"""The package's layering (docs/architecture.md) checked on its source.

Lower layers never import upper ones, packages of one layer do not import each other,
and an import inside a function carries a ``# lazy: <reason>`` comment (on its line or the line above).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "django_asyncjobs"

# Lowest layer first; a layer holds groups of modules (dotted names relative to
# django_asyncjobs, "" being its __init__, the public API). A module belongs to the group
# whose prefix matches it. A group may import its own modules and any group of a lower
# layer; groups of one layer do not import each other.
LAYERS: list[list[tuple[str, ...]]] = [
    [
        (
            "exceptions",
            "conf",
            "settings_reference",
            "validators",
            "logs",
            "signals",
            "payloads",
            "times",
            "client",
            "tracing",
            "links",
        )
    ],
    [("models",)],
    [("engine",)],
    [("aggregations",)],
    [("scheduling",)],
    [("worker",), ("offloading", "urls"), ("tasks", "backends"), ("metrics",)],
    [("middleware",)],
    [("admin", "templatetags")],
    [("apps", "checks", "management", "testing", "")],
]


#: The only imports upwards: inside functions (lazy), each explained where it is made.
#: ``Job.cancel()``, ``Job.set_progress()`` and ``Schedule.clean()`` are shortcuts to the engine.
LAZY_SHORTCUTS = {("models", "engine")}


@dataclass(frozen=True)
class Import:
    module: str  # importing module, relative to the package ("engine.broker")
    target: str  # imported module, relative to the package
    line: int
    in_function: bool
    comment: str


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def source_files() -> Iterator[Path]:
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" not in path.parts:
            yield path


def group_of(module: str) -> tuple[int, tuple[str, ...]]:
    for layer, groups in enumerate(LAYERS):
        for group in groups:
            for prefix in group:
                if module == prefix or (prefix and module.startswith(prefix + ".")):
                    return layer, group
    raise AssertionError(f"{module!r} is in no layer of tests/test_architecture.py: add it")


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                for inner in ast.walk(child):
                    if hasattr(inner, "lineno"):
                        lines.add(inner.lineno)
    return lines


def imports_of(path: Path) -> Iterator[Import]:
    text = path.read_text()
    lines = text.splitlines()
    tree = ast.parse(text)
    me = module_name(path)
    type_only = _type_checking_lines(tree)
    function_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    function_lines.add(inner.lineno)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom) or node.lineno in type_only:
            continue
        line = lines[node.lineno - 1]
        comment = line.split("#", 1)[1].strip() if "#" in line else ""
        if not comment.startswith("lazy:"):
            # the comment block above this import and the imports just above it
            index = node.lineno - 2
            while index >= 0 and lines[index].strip().startswith(("from ", "import ")):
                index -= 1
            while index >= 0 and lines[index].strip().startswith("#"):
                if lines[index].strip().lstrip("#").strip().startswith("lazy:"):
                    comment = lines[index].strip().lstrip("#").strip()
                index -= 1
        in_function = node.lineno in function_lines
        for target in _targets(node, me, is_package(path)):
            yield Import(me, target, node.lineno, in_function, comment)


def _targets(node: ast.Import | ast.ImportFrom, me: str, package: bool) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    if node.level == 0:
        base = node.module or ""
    else:
        parts = me.split(".") if me else []
        if not package:
            parts = parts[:-1]
        parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
        base = ".".join([*parts, node.module] if node.module else parts)
        base = f"django_asyncjobs.{base}" if base else "django_asyncjobs"
    if not node.module and node.level:
        # ``from . import x``: each name may be a module
        for alias in node.names:
            yield f"{base}.{alias.name}"
    else:
        yield base


def package_imports() -> list[Import]:
    found = []
    for path in source_files():
        for item in imports_of(path):
            if item.target == "django_asyncjobs" or item.target.startswith("django_asyncjobs."):
                target = item.target.removeprefix("django_asyncjobs").removeprefix(".")
                found.append(Import(item.module, target, item.line, item.in_function, item.comment))
    return found


def _resolve(target: str) -> str:
    """``from ..engine import broker`` names the module ``engine.broker`` if it exists."""
    path = PACKAGE.joinpath(*target.split(".")) if target else PACKAGE
    if path.with_suffix(".py").exists() or (path / "__init__.py").exists():
        return target
    return target.rpartition(".")[0]


def test_every_module_is_in_a_layer() -> None:
    for path in source_files():
        group_of(module_name(path))


def test_lower_layers_never_import_upper_ones() -> None:
    wrong = []
    for item in package_imports():
        target = _resolve(item.target)
        my_layer, my_group = group_of(item.module)
        its_layer, its_group = group_of(target)
        if item.in_function and (my_group[0], its_group[0]) in LAZY_SHORTCUTS:
            continue
        if its_layer > my_layer or (its_layer == my_layer and its_group != my_group):
            wrong.append(f"{item.module}:{item.line} imports {target} ({its_group} is not below {my_group})")
    assert not wrong, "\n".join(wrong)


def test_module_level_imports_have_no_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for item in package_imports():
        if not item.in_function:
            graph.setdefault(item.module, set()).add(_resolve(item.target))
    cycle = _find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            # a package's __init__ importing its own modules is not a cycle of concern
            if nxt == node or (node == "" and nxt):
                continue
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if state.get(nxt) is None and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if state.get(node) is None and (found := visit(node)):
            return found
    return None


def test_imports_inside_functions_say_why() -> None:
    unexplained = []
    for path in source_files():
        for item in imports_of(path):
            if item.in_function and not item.comment.startswith("lazy:"):
                unexplained.append(f"{item.module}:{item.line} imports {item.target}")
    assert not unexplained, "an import inside a function needs '# lazy: <reason>':\n" + "\n".join(unexplained)


@pytest.mark.parametrize("path", list(source_files()), ids=module_name)
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= 420, f"{module_name(path)} has {lines} lines: split it"


def test_the_public_api_is_usable_while_apps_load() -> None:
    """``@job`` and ``@aggregation`` in a module imported before the app registry is ready
    (an app's ``__init__``, a models module): declaring jobs imports no model. (``@offload``
    decorates views, which URLconfs import once apps are ready.)"""
    code = (
        "import django_asyncjobs as aj\n"
        "from django_asyncjobs import Call, JobFunction, QueueFull, aggregation, job\n"
        "@job\n"
        "def early(x): return x\n"
        "@aggregation(every='1h')\n"
        "def hourly(start, end): return None\n"
        "import django\n"
        "django.setup()\n"
        "from django_asyncjobs.engine.registry import registered\n"
        "assert registered(early.name) is early\n"
        "print('ok')\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=PACKAGE.parent)
    assert done.stdout.strip() == "ok", done.stderr


def test_the_architecture_page_names_every_transition_and_every_key() -> None:
    import inspect

    from django_asyncjobs.engine import states
    from django_asyncjobs.engine.broker import keys

    page = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    transitions = [
        name
        for name, function in vars(states).items()
        if inspect.isfunction(function) and function.__module__ == states.__name__ and not name.startswith("_")
    ]
    transitions += ["claim_many", "commit", "release"]
    assert [name for name in transitions if name not in states.HELPERS and f"`{name}`" not in page] == []
    schema = [line.split("``")[1] for line in (keys.__doc__ or "").splitlines() if line.startswith("``")]
    assert schema
    assert [key for key in schema if f"| `{key}` |" not in page] == []
    for path in sorted(PACKAGE.iterdir()):
        if (path / "__init__.py").exists() and path.name not in {"migrations", "management", "templatetags"}:
            assert f"`{path.name}/`" in page, f"docs/architecture.md does not place {path.name}/"
