"""What may be stored in a job row's JSON and text columns, checked before it is written.

Every database takes ``json.dumps`` output, but PostgreSQL's ``jsonb`` and ``text``
refuse U+0000 and lone surrogates, and very deep nesting overflows Python's own
encoder (``RecursionError``). :func:`json_problem` finds these in one C-speed
``json.dumps`` call and walks the value in Python only when the dump shows a
suspicious escape or is long enough to hide deep nesting.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from .exceptions import SerializationError

#: Deepest nesting of lists and objects accepted in arguments and results.
MAX_JSON_DEPTH = 100

# json.dumps (ensure_ascii) writes NUL as \u0000 and a surrogate as \udXXX.
_SUSPICIOUS_ESCAPES = ("\\u0000", "\\ud")


def json_problem(value: Any) -> str | None:
    """Why ``value`` cannot be stored as JSON on every supported database; ``None`` if it can.

    The reason names where the problem is (``at [2]['name']``) so that a caller can
    say which argument is wrong.
    """
    try:
        dumped = json.dumps(value, allow_nan=False)
    except RecursionError:
        return f"is nested deeper than {MAX_JSON_DEPTH} levels"
    except (TypeError, ValueError) as exc:
        return f"cannot be stored as JSON ({exc})"
    if len(dumped) < 2 * MAX_JSON_DEPTH and not any(escape in dumped for escape in _SUSPICIOUS_ESCAPES):
        return None
    return _walk_for_problem(value)


def _walk_for_problem(value: Any) -> str | None:
    for path, depth, item in _items(value):
        if depth > MAX_JSON_DEPTH:
            return f"is nested deeper than {MAX_JSON_DEPTH} levels"
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return f"{problem} (at {_shown(path)})"
    return None


def _shown(path: str, limit: int = 80) -> str:
    if not path:
        return "the top"
    return path if len(path) <= limit else f"{path[:limit]}..."


def _items(value: Any) -> Iterator[tuple[str, int, Any]]:
    """Every value and object key inside ``value`` with its path and depth, without recursion."""
    stack: list[tuple[str, int, Any]] = [("", 0, value)]
    while stack:
        path, depth, item = stack.pop()
        yield path, depth, item
        if isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{path}[{key!r}]"
                yield child_path, depth + 1, str(key)
                stack.append((child_path, depth + 1, child))
        elif isinstance(item, list | tuple):
            stack.extend((f"{path}[{index}]", depth + 1, child) for index, child in enumerate(item))


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored in a text column on every supported database."""
    if "\x00" in text:
        return "contains a NUL character (\\x00), which PostgreSQL cannot store"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate character, which is not valid Unicode"
    return None


def check_json(value: Any, what: str) -> None:
    """Raise :class:`SerializationError` naming ``what`` if ``value`` cannot be stored as JSON."""
    problem = json_problem(value)
    if problem is not None:
        raise SerializationError(f"{what} {problem}.")


def storable_text(text: str) -> str:
    """``text`` with what a text column refuses replaced: NUL by ``\\x00``, lone surrogates by U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join("\ufffd" if "\ud800" <= char <= "\udfff" else char for char in text)
    return text
