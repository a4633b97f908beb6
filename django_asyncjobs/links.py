"""Where the documentation is published: the one base URL that hints and error messages link to.

The pages are those of ``docs/`` built by MkDocs (``mkdocs.yml``: ``use_directory_urls``
is off, so ``docs/checks.md`` is ``checks.html``). ``pyproject.toml``'s
``[project.urls]`` names the same address.
"""

from __future__ import annotations

#: The published documentation (``make docs`` builds the same pages into build/docs).
DOCS_URL = "https://django-asyncjobs.readthedocs.io/en/latest/"


def docs_url(page: str, anchor: str = "") -> str:
    """The published address of ``docs/<page>.md`` (``page`` without ``.md``), at ``anchor``."""
    return f"{DOCS_URL}{page}.html" + (f"#{anchor}" if anchor else "")


def see(page: str, anchor: str = "") -> str:
    """``"See <url>."``, the end of a hint or an error message."""
    return f"See {docs_url(page, anchor)}."
