"""The documentation names everything public: exported names, settings, commands, check ids."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import django_asyncjobs
from django_asyncjobs import checks
from django_asyncjobs.conf import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
COMMANDS = ROOT / "django_asyncjobs" / "management" / "commands"


def docs_text() -> str:
    return "\n".join(page.read_text() for page in sorted(DOCS.glob("*.md")))


def mentions(name: str, text: str) -> bool:
    """``name`` appears in ``text`` as a whole identifier (not as part of a longer name or dotted path)."""
    return re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", text) is not None


@pytest.mark.parametrize("name", django_asyncjobs.__all__)
def test_every_exported_name_is_documented(name: str) -> None:
    assert mentions(name, docs_text()), f"django_asyncjobs.{name} appears nowhere in docs/"


@pytest.mark.parametrize("key", sorted(DEFAULTS))
def test_every_setting_is_in_the_settings_reference(key: str) -> None:
    assert mentions(key, (DOCS / "settings.md").read_text()), f"ASYNCJOBS[{key!r}] is missing from docs/settings.md"


@pytest.mark.parametrize("command", sorted(path.stem for path in COMMANDS.glob("asyncjobs_*.py")))
def test_every_command_is_in_the_commands_page(command: str) -> None:
    assert mentions(command, (DOCS / "commands.md").read_text()), f"{command} is missing from docs/commands.md"


def test_every_check_id_is_in_the_checks_page() -> None:
    ids = set(re.findall(r"asyncjobs\.[EW]\d{3}", Path(checks.__file__).read_text()))
    assert ids, "no check ids found in checks.py"
    listed = set(re.findall(r"asyncjobs\.[EW]\d{3}", (DOCS / "checks.md").read_text()))
    assert ids - listed == set(), "check ids missing from docs/checks.md"


def test_every_page_is_in_the_site_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    missing = [page.name for page in DOCS.glob("*.md") if f": {page.name}" not in nav]
    assert missing == []


# The published site: no assets from elsewhere; links to it from the code


def test_the_site_loads_no_asset_from_a_cdn() -> None:
    """highlight.js would come from a CDN: code is coloured at build time with a local stylesheet."""
    text = (ROOT / "mkdocs.yml").read_text()  # read as text: PyYAML comes only with the docs extra
    assert re.search(r"^  highlightjs: false$", text, re.M)
    listed = re.findall(r"^extra_(?:css|javascript):\n((?:  - .*\n)+)", text, re.M)
    assets = [line.removeprefix("  - ").strip() for block in listed for line in block.splitlines()]
    assert assets and all(not re.match(r"(https?:)?//", path) for path in assets)
    assert all((DOCS / path).is_file() for path in assets)


def test_the_built_site_links_no_script_or_stylesheet_elsewhere(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (make docs installs it)")
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    pages = sorted((tmp_path / "site").glob("*.html"))
    assert pages
    remote = re.compile(r"<(?:script|link|img)\b[^>]*\b(?:src|href)=\"(?:https?:)?//", re.IGNORECASE)
    for page in pages:
        assert not remote.search(page.read_text()), f"{page.name} loads an asset from elsewhere"
    assert 'class="highlight"' in (tmp_path / "site" / "jobs.html").read_text()


def test_hints_and_messages_link_to_the_published_docs() -> None:
    """No string of the package (docstrings aside) points at a docs/*.md file of the source
    tree: a user reading a hint has the published site, at links.DOCS_URL."""
    import ast

    from django_asyncjobs.links import DOCS_URL, see

    found = []
    for path in sorted((ROOT / "django_asyncjobs").rglob("*.py")):
        if "migrations" in path.parts or path.name == "settings_reference.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        found += [
            f"{path.name}:{node.lineno}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and "docs/" in node.value
        ]
    assert found == []
    assert see("checks") == f"See {DOCS_URL}checks.html."
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'Documentation = "{DOCS_URL}"' in pyproject
