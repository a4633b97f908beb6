"""Rules for configuration values: what a value must be, and what is wrong with one that is not.

Every ``ASYNCJOBS`` key is declared with one :class:`Rule` (see :mod:`django_asyncjobs.conf`);
``manage.py check`` reports a value its rule refuses. :func:`require_count` is the one
"integer >= 1" test, shared by the settings, ``@job()``, ``enqueue()``, ``@offload()``,
pruning and the worker's arguments.

Foundation layer: imports nothing of the package but :mod:`.times.durations`.
"""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeGuard

from .times.durations import parse_duration
from .times.rates import RateLimit


@dataclass(frozen=True)
class Rule:
    """What a setting's value must be (``expected``, read in error messages and in the docs),
    and ``problem(value)``: what is wrong with ``value``, or ``None`` when it is fine."""

    expected: str
    problem: Callable[[object], str | None]


def kind(value: object) -> str:
    """``value``'s type in words: "a str", "an int", "None"."""
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def is_count(value: object, minimum: int = 1) -> TypeGuard[int]:
    """Whether ``value`` is an ``int`` (not a ``bool``) of at least ``minimum``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def count_problem(value: object, minimum: int = 1) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{kind(value)}, not an integer"
    return None if value >= minimum else f"less than {minimum}"


def require_count(value: object, name: str, *, expected: str = "an integer >= 1") -> int:
    """``value`` when it is an integer >= 1; ``ValueError("{name} must be {expected}, got ...")``."""
    if not is_count(value):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return value


# Rule factories. Each ``expected`` text appears as is in E004 and in docs/settings.md.


def count(expected: str = "an integer >= 1") -> Rule:
    return Rule(expected, count_problem)


def number(*, unit: str, positive: bool = False) -> Rule:
    """A number (int or float, not bool) of ``unit``: ``> 0`` when ``positive``, else ``>= 0``."""

    def problem(value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{kind(value)}, not a number"
        if positive and value <= 0:
            return "not above 0"
        return "below 0" if value < 0 else None

    return Rule(f"a number of {unit} {'> 0' if positive else '>= 0'}", problem)


def number_or_none(*, unit: str) -> Rule:
    """``None``, or a number (int or float, not bool) of ``unit`` ``>= 0``."""
    number_rule = number(unit=unit)
    return Rule(f"None or {number_rule.expected}", lambda value: None if value is None else number_rule.problem(value))


def boolean() -> Rule:
    return Rule("True or False", lambda value: None if isinstance(value, bool) else f"{kind(value)}, not a bool")


def boolean_or(word: str) -> Rule:
    """``True``, ``False`` or the string ``word`` (e.g. ``"auto"``)."""

    def problem(value: object) -> str | None:
        if isinstance(value, bool) or value == word:
            return None
        return f"{kind(value)}, not True, False or {word!r}"

    return Rule(f"True, False or {word!r}", problem)


def non_empty_string(expected: str) -> Rule:
    """A non-empty string."""

    def problem(value: object) -> str | None:
        if not isinstance(value, str):
            return f"{kind(value)}, not a string"
        return None if value else "empty"

    return Rule(expected, problem)


def string_or_none(expected: str) -> Rule:
    """``None``, or a non-empty string."""
    string_rule = non_empty_string(expected)
    return Rule(f"None or {expected}", lambda value: None if value is None else string_rule.problem(value))


def strings(expected: str, *, one_string_allowed: bool = False) -> Rule:
    """A list or tuple of strings (or, with ``one_string_allowed``, a single string)."""

    def problem(value: object) -> str | None:
        if isinstance(value, str):
            return None if one_string_allowed else "a single string, not a list of them"
        if not isinstance(value, list | tuple):
            return f"{kind(value)}, not a list"
        wrong = [item for item in value if not isinstance(item, str)]
        return f"{wrong[0]!r} is not a string" if wrong else None

    return Rule(expected, problem)


def mapping(expected: str) -> Rule:
    return Rule(expected, lambda value: None if isinstance(value, dict) else f"{kind(value)}, not a dict")


def _one_queue_limits(queue: object, limits: object) -> str | None:
    if not isinstance(limits, dict):
        return f"{queue!r} maps to {kind(limits)}, not a dict"
    unknown = sorted(str(key) for key in limits if key not in ("MAX_DEPTH", "MAX_AGE", "RATE"))
    if unknown:
        return f"{queue!r} has an unknown key {unknown[0]!r}"
    if "MAX_DEPTH" in limits and not is_count(limits["MAX_DEPTH"]):
        return f"MAX_DEPTH of {queue!r} is {limits['MAX_DEPTH']!r}"
    age = limits.get("MAX_AGE", 1)
    if isinstance(age, bool) or not isinstance(age, int | float) or age <= 0:
        return f"MAX_AGE of {queue!r} is {age!r}"
    if "RATE" in limits:
        try:
            RateLimit.parse(limits["RATE"])
        except ValueError:
            return f'RATE of {queue!r} is {limits["RATE"]!r}, not a rate such as "100/m"'
    return None


def queue_limits() -> Rule:
    def problem(value: object) -> str | None:
        if not isinstance(value, dict):
            return f"{kind(value)}, not a dict"
        return next(filter(None, (_one_queue_limits(queue, limits) for queue, limits in value.items())), None)

    return Rule("a dict of queue name to {'MAX_DEPTH': int >= 1, 'MAX_AGE': seconds > 0, 'RATE': '100/m'}", problem)


def path_patterns() -> Rule:
    def problem(value: object) -> str | None:
        if not isinstance(value, dict):
            return f"{kind(value)}, not a dict"
        for pattern, queue in value.items():
            if not isinstance(pattern, str) or not isinstance(queue, str):
                return f"{pattern!r}: {queue!r} is not a pair of strings"
            try:
                re.compile(pattern)
            except re.error as exc:
                return f"{pattern!r} does not compile: {exc}"
        return None

    return Rule("a dict of path regex (that compiles) to queue name", problem)


def time_zone_or_none() -> Rule:
    def problem(value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            return f"{kind(value)}, not a string"
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return "an unknown time zone"
        return None

    return Rule("None or an IANA time zone name, e.g. 'Europe/Paris'", problem)


def duration() -> Rule:
    def problem(value: object) -> str | None:
        try:
            parse_duration(value)
        except ValueError:
            return "not a positive duration"
        return None

    return Rule('a duration such as "7d" or a number of seconds > 0', problem)


def secret_or_none(*, min_length: int) -> Rule:
    """``None``, or a string of at least ``min_length`` characters (a shared secret)."""

    def problem(value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            return f"{kind(value)}, not a string"
        return None if len(value) >= min_length else f"shorter than {min_length} characters"

    return Rule(f"None or a string of at least {min_length} characters", problem)


def ip_networks() -> Rule:
    """A list of IP addresses or networks (CIDR), e.g. ``["10.0.0.0/8", "127.0.0.1"]``."""

    def problem(value: object) -> str | None:
        if not isinstance(value, list | tuple):
            return f"{kind(value)}, not a list"
        for item in value:
            if not isinstance(item, str):
                return f"{item!r} is not a string"
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                return f"{item!r} is not an IP address or network"
        return None

    return Rule('a list of IP addresses or networks, e.g. ["10.0.0.0/8", "::1"]', problem)
