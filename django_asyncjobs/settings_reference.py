"""The settings reference of docs/settings.md: the declaration of :mod:`.conf`, printed.

``python -m django_asyncjobs.conf --write docs/settings.md`` rewrites it (tests/test_settings.py
keeps it in step). Foundation layer: imports only :mod:`.conf`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from .conf import SETTINGS

REFERENCE_START = (
    "<!-- Generated from django_asyncjobs/conf.py by `python -m django_asyncjobs.conf --write docs/settings.md`:"
    " edit the declaration there, not this table. -->"
)
REFERENCE_END = "<!-- End of the generated settings reference. -->"


def literal(value: object) -> str:
    """``value`` as Python source, strings in double quotes (as ruff writes them)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        items = ", ".join(literal(item) for item in value)
        return f"({items},)" if len(value) == 1 else f"({items})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def reference() -> str:
    """The generated part of docs/settings.md: every default as code, then the table of keys."""
    lines = [REFERENCE_START, "", "```python", "ASYNCJOBS = {"]
    for name, key in SETTINGS.items():
        line = f"    {literal(name)}: {literal(key.default)},"
        if len(line) > 88 and isinstance(key.default, tuple):  # one item a line, as ruff format would
            line = (
                f"    {literal(name)}: (\n" + "".join(f"        {literal(item)},\n" for item in key.default) + "    ),"
            )
        lines.append(line)
    lines += ["}", "```", "", "| key | must be | default | meaning |", "|---|---|---|---|"]
    for name, key in SETTINGS.items():
        default = f"`{literal(key.default)}`" + (f" ({key.note})" if key.note else "")
        lines.append(f"| `{name}` | {key.rule.expected} | {default} | {key.doc} |")
    return "\n".join([*lines, "", REFERENCE_END])


def with_reference(page: str) -> str:
    """``page`` (docs/settings.md) with its generated part replaced by :func:`reference`."""
    start, end = page.find(REFERENCE_START), page.find(REFERENCE_END)
    if start < 0 or end < start:
        raise ValueError("the page has no generated settings reference (its start and end comments)")
    return page[:start] + reference() + page[end + len(REFERENCE_END) :]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m django_asyncjobs.conf", description="Print the settings reference of docs/settings.md."
    )
    parser.add_argument("--write", metavar="PAGE", help="rewrite the reference inside PAGE instead")
    args = parser.parse_args(argv)
    if args.write is None:
        print(reference())
        return 0
    with open(args.write, encoding="utf-8") as page:
        text = page.read()
    with open(args.write, "w", encoding="utf-8") as page:
        page.write(with_reference(text))
    return 0
