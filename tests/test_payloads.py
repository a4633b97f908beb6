"""What a job row can store: the checks behind SerializationError and stored messages."""

from __future__ import annotations

import pytest

from django_asyncjobs.payloads import MAX_JSON_DEPTH, json_problem, storable_text, text_problem


def nested(levels: int) -> list:
    top: list = []
    inner = top
    for _ in range(levels - 1):
        inner.append([])
        inner = inner[0]
    return top


@pytest.mark.parametrize(
    "value",
    [None, 1, 2.5, "text \\u0000 written out", {"a": [1, {"b": "é😀"}]}, nested(MAX_JSON_DEPTH), "x" * 10_000],
)
def test_values_every_database_stores_pass(value) -> None:
    assert json_problem(value) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("a\x00b", "NUL character"),
        ({"key\x00": 1}, "NUL character"),
        ([1, {"deep": ["\x00"]}], "(at [1]['deep'][0])"),
        ("\udc80", "lone surrogate"),
        (nested(MAX_JSON_DEPTH + 2), f"nested deeper than {MAX_JSON_DEPTH} levels"),
        (nested(10_000), f"nested deeper than {MAX_JSON_DEPTH} levels"),
        (float("nan"), "cannot be stored as JSON"),
        (object(), "cannot be stored as JSON"),
    ],
)
def test_what_some_database_refuses_is_found_and_located(value, reason) -> None:
    problem = json_problem(value)
    assert problem is not None and reason in problem


def test_storable_text_replaces_only_what_a_text_column_refuses() -> None:
    assert storable_text("plain é") == "plain é"
    cleaned = storable_text("a\x00b\ud800c")
    assert cleaned == "a\\x00b\ufffdc"
    assert text_problem(cleaned) is None
