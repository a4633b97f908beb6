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
