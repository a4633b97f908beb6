"""Settings declared once (django_asyncjobs.conf): typed access, reading lazily and again after
``setting_changed``, each key's rule through ``manage.py check``, and docs/settings.md in step."""

from __future__ import annotations

import subprocess
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_asyncjobs import conf, settings_reference
from django_asyncjobs.conf import DEFAULTS, SETTINGS, AppSettings, app_settings
from django_asyncjobs.validators import require_count

SETTINGS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "settings.md"

# One value per key that its rule refuses, with the words the error must use for what is wrong.
BAD_VALUES: list[tuple[str, object, str]] = [
    ("DEFAULT_QUEUE", "", "empty"),
    ("DEFAULT_QUEUE", 3, "an int, not a string"),
    ("MAX_ATTEMPTS", 0, "less than 1"),
    ("MAX_ATTEMPTS", True, "a bool, not an integer"),
    ("MAX_ATTEMPTS", "3", "a str, not an integer"),
    ("TIMEOUT", 1.5, "a float, not an integer"),
    ("RETRY_BACKOFF", -1, "below 0"),
    ("RETRY_BACKOFF_MAX", "1h", "a str, not a number"),
    ("RETRY_JITTER", "yes", "a str, not a bool"),
    ("PROGRESS_INTERVAL", None, "None, not a number"),
    ("ATOMIC_WARN_AFTER", -1, "below 0"),
    ("STRICT_ENQUEUE", 1, "an int, not a bool"),
    ("MESSAGE_TTL", 0, "less than 1"),
    ("SCHEDULE_POLL_INTERVAL", 0, "not above 0"),
    ("QUEUE_LIMITS", {"default": {"MAX_DEPTH": 0}}, "MAX_DEPTH of 'default' is 0"),
    ("QUEUE_LIMITS", {"default": {"MAX_SIZE": 10}}, "'default' has an unknown key 'MAX_SIZE'"),
    ("QUEUE_LIMITS", {"default": {"MAX_AGE": -1}}, "MAX_AGE of 'default' is -1"),
    ("QUEUE_LIMITS", {"default": 10}, "'default' maps to an int, not a dict"),
    ("QUEUE_LIMITS", ["default"], "a list, not a dict"),
    ("BACKPRESSURE_CACHE_SECONDS", -1, "below 0"),
    ("RETRY_AFTER_MIN", -0.5, "below 0"),
    ("RETRY_AFTER_MAX", 0, "not above 0"),
    ("BACKPRESSURE_PATHS", {"^/upload/(": "default"}, "'^/upload/(' does not compile"),
    ("BACKPRESSURE_PATHS", {"^/upload/": 3}, "is not a pair of strings"),
    ("OFFLOAD_HEADERS", "HTTP_ACCEPT", "a single string, not a list of them"),
    ("OFFLOAD_HEADERS", ["HTTP_ACCEPT", 3], "3 is not a string"),
    ("OFFLOAD_MAX_UPLOAD_SIZE", 0, "less than 1"),
    ("OFFLOAD_STORAGE", None, "None, not a string"),
    ("OFFLOAD_INLINE_RESPONSE_SIZE", -1, "below 0"),
    ("AUTODISCOVER", ["jobs", 3], "3 is not a string"),
    ("SCHEDULES", ["nightly"], "a list, not a dict"),
    ("SCHEDULE_TIMEZONE", "Mars/Olympus", "an unknown time zone"),
    ("SCHEDULE_TIMEZONE", 1, "an int, not a string"),
    ("METRICS_TOKEN", "short", "shorter than 16 characters"),
    ("METRICS_TOKEN", 12345678901234567, "an int, not a string"),
    ("METRICS_ALLOWED_IPS", ["10.0.0.0/8", "not-an-ip"], "'not-an-ip' is not an IP address or network"),
    ("METRICS_ALLOWED_IPS", "10.0.0.1", "a str, not a list"),
    ("MISFIRE_GRACE", -1, "below 0"),
    ("RECOVERY_INTERVAL", 0, "not above 0"),
    ("RECOVERY_GRACE", "soon", "a str, not a number"),
    ("HEARTBEAT_INTERVAL", 0, "not above 0"),
    ("HEARTBEAT_TIMEOUT", -5, "not above 0"),
    ("WORKER_CONN_MAX_AGE", -1, "below 0"),
    ("WORKER_CONN_MAX_AGE", "600", "a str, not a number"),
    ("UNKNOWN_JOB_TIMEOUT", -1, "below 0"),
    ("WORKER_PREFETCH", 0, "less than 1"),
    ("WORKER_PREFETCH", 2.5, "a float, not an integer"),
    ("WORKER_THREADS", 0, "less than 1"),
    ("WORKER_HEALTH_FILE", "", "empty"),
    ("WORKER_HEALTH_FILE", 1, "an int, not a string"),
    ("WORKER_THREADS", "4", "a str, not an integer"),
    ("WORKER_BATCH_WINDOW", -1, "below 0"),
    ("WORKER_BATCH_HOLD", "soon", "a str, not a number"),
    ("AGGREGATION_MAX_CATCH_UP", 0, "less than 1"),
    ("STATS_RETENTION", "forever", "not a positive duration"),
    ("STATS_RETENTION", 0, "not a positive duration"),
    ("OPENTELEMETRY", "yes", "a str, not True, False or 'auto'"),
    ("OPENTELEMETRY", 1, "an int, not True, False or 'auto'"),
]


def test_every_key_has_a_bad_value_case() -> None:
    assert set(SETTINGS) - {key for key, _, _ in BAD_VALUES} == set()


@pytest.mark.parametrize(("key", "value", "problem"), BAD_VALUES)
def test_a_refused_value_is_e004_naming_key_value_problem_and_rule(settings, key, value, problem) -> None:
    settings.ASYNCJOBS = {key: value}
    errors = [m for m in run_checks(tags=["compatibility"]) if m.id == "asyncjobs.E004"]
    assert [m.msg for m in errors] == [
        f"ASYNCJOBS[{key!r}] is {value!r} ({SETTINGS[key].problem(value)}); it must be {SETTINGS[key].rule.expected}."
    ]
    assert problem in errors[0].msg


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("AUTODISCOVER", "jobs"),
        ("AUTODISCOVER", []),
        ("RETRY_AFTER_MIN", 0),
        ("OFFLOAD_INLINE_RESPONSE_SIZE", 0),
        ("QUEUE_LIMITS", {"default": {}}),
        ("STATS_RETENTION", timedelta(hours=1)),
        ("STATS_RETENTION", 3600),
        ("SCHEDULE_TIMEZONE", "Europe/Paris"),
        ("MAX_ATTEMPTS", 5),
        ("RETRY_BACKOFF", 2),
        ("OPENTELEMETRY", "auto"),
        ("OPENTELEMETRY", True),  # the dev extra installs opentelemetry-api: no E015
    ],
)
def test_an_accepted_value_raises_nothing(settings, key, value) -> None:
    settings.ASYNCJOBS = {key: value}
    # W004: the test settings install BackpressureMiddleware without QUEUE_LIMITS (tests/test_checks.py).
    found = [m.id for m in run_checks(tags=["compatibility"]) if m.id.startswith("asyncjobs.")]
    assert [found_id for found_id in found if found_id != "asyncjobs.W004"] == []


def test_manage_py_check_stops_on_a_refused_value(settings) -> None:
    settings.ASYNCJOBS = {"MAX_ATTEMPTS": 0}
    with pytest.raises(SystemCheckError) as caught:
        call_command("check", tags=["compatibility"])
    assert "asyncjobs.E004" in str(caught.value)
    assert "ASYNCJOBS['MAX_ATTEMPTS'] is 0 (less than 1); it must be an integer >= 1." in str(caught.value)


def test_an_unknown_key_is_w001_with_the_closest_known_one(settings) -> None:
    settings.ASYNCJOBS = {"HEARTBEAT_INTREVAL": 5}
    (warning,) = [m for m in run_checks(tags=["compatibility"]) if m.id == "asyncjobs.W001"]
    assert "'HEARTBEAT_INTREVAL'" in warning.msg
    assert "Did you mean 'HEARTBEAT_INTERVAL'?" in warning.hint


def test_a_refused_value_is_not_checked_against_other_keys(settings) -> None:
    """E008 (and E005, E007, E010) compare valid values only: a bad one is E004 alone."""
    settings.ASYNCJOBS = {"RETRY_AFTER_MIN": "600", "QUEUE_LIMITS": {"gone": {"MAX_DEPTH": 0}}}
    ids = [m.id for m in run_checks(tags=["compatibility"]) if m.id.startswith("asyncjobs.E")]
    assert ids == ["asyncjobs.E004", "asyncjobs.E004"]


@pytest.mark.parametrize("value", [0, -1, True, 1.0, "2", None])
def test_require_count_refuses_what_is_not_an_integer_of_at_least_one(value) -> None:
    with pytest.raises(ValueError, match=rf"^workers must be an integer >= 1, got {value!r}$"):
        require_count(value, "workers")


def test_require_count_returns_the_integer() -> None:
    assert require_count(3, "workers") == 3


# Reading


def test_a_key_left_out_reads_its_default(settings) -> None:
    settings.ASYNCJOBS = {}
    assert {name: getattr(app_settings, name) for name in SETTINGS} == DEFAULTS


def test_override_settings_is_seen_and_undone() -> None:
    default = app_settings.MAX_ATTEMPTS
    with override_settings(ASYNCJOBS={**django_settings.ASYNCJOBS, "MAX_ATTEMPTS": default + 6}):
        assert app_settings.MAX_ATTEMPTS == default + 6
    assert app_settings.MAX_ATTEMPTS == default


def test_values_are_read_once_until_setting_changed_names_them(settings) -> None:
    """The value is kept (no settings lookup per access); ``setting_changed`` for ASYNCJOBS
    (which override_settings sends) drops it, one for another setting does not."""
    settings.ASYNCJOBS = {"TIMEOUT": 10}
    assert app_settings.TIMEOUT == 10
    # Changed behind Django's back (no signal): the kept value is still served...
    object.__setattr__(django_settings._wrapped, "ASYNCJOBS", {"TIMEOUT": 20})
    assert app_settings.TIMEOUT == 10
    settings.TIME_ZONE = "Europe/Paris"  # ... also after another setting changed...
    assert app_settings.TIMEOUT == 10
    settings.ASYNCJOBS = {"TIMEOUT": 30}  # ... and read again once ASYNCJOBS changes.
    assert app_settings.TIMEOUT == 30


def test_rq_queues_are_read_again_when_they_change(settings) -> None:
    assert "default" in app_settings.rq_queues
    settings.RQ_QUEUES = {"only": {"URL": "redis://127.0.0.1:1/0"}}
    assert list(app_settings.rq_queues) == ["only"]
    settings.RQ_QUEUES = "not a dict"
    assert app_settings.rq_queues == {}


def test_asyncjobs_that_is_not_a_dict_reads_the_defaults(settings) -> None:
    settings.ASYNCJOBS = ["MAX_ATTEMPTS"]
    assert app_settings.MAX_ATTEMPTS == DEFAULTS["MAX_ATTEMPTS"]


def test_an_undeclared_attribute_is_an_error() -> None:
    with pytest.raises(AttributeError, match="NOPE"):
        app_settings.NOPE  # type: ignore[attr-defined]  # noqa: B018


# Typed access: what mypy is told (the Setting[...] annotation) is what call sites get.


def _runtime_types(hint: object) -> tuple[type, ...]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(t for arg in typing.get_args(hint) for t in _runtime_types(arg))
    if hint is float:
        return (int, float)  # an int is a float to mypy
    origin = typing.get_origin(hint) or hint
    return (type(None),) if origin is None else (origin,)  # type: ignore[return-value]


def _declared_types() -> dict[str, object]:
    hints = typing.get_type_hints(AppSettings, vars(conf))
    return {name: typing.get_args(hints[name])[0] for name in SETTINGS}


def test_every_key_is_annotated() -> None:
    assert set(_declared_types()) == set(SETTINGS)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_every_default_has_its_declared_type(name: str) -> None:
    assert isinstance(getattr(app_settings, name), _runtime_types(_declared_types()[name]))


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_every_default_follows_its_rule(name: str) -> None:
    assert SETTINGS[name].problem(DEFAULTS[name]) is None


def test_the_declared_types_are_precise() -> None:
    """No key is typed Any or object: call sites need no cast and no conversion."""
    declared = _declared_types()
    assert declared["MAX_ATTEMPTS"] is int
    assert declared["SCHEDULE_TIMEZONE"] == str | None
    assert typing.get_origin(declared["QUEUE_LIMITS"]) is Mapping
    assert typing.get_origin(declared["OFFLOAD_HEADERS"]) is Sequence
    assert all(hint not in (typing.Any, object) for hint in declared.values())


# docs/settings.md


def test_the_settings_page_is_in_step_with_the_declaration() -> None:
    page = SETTINGS_PAGE.read_text()
    assert settings_reference.with_reference(page) == page, (
        "docs/settings.md is out of step with django_asyncjobs/conf.py: "
        "run `python -m django_asyncjobs.conf --write docs/settings.md`"
    )


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("| `MAX_ATTEMPTS` | an integer >= 1 | `1` |", "| `MAX_ATTEMPTS` | an integer >= 1 | `2` |"),
        ("| `TIMEOUT` | a whole number of seconds >= 1 |", "| `TIMEOUT` | seconds |"),
        ("Cap of one retry delay.", "Cap of a retry delay."),
        ('    "STATS_RETENTION": "7d",\n', ""),
    ],
)
def test_the_step_test_fails_on_a_changed_table(old: str, new: str) -> None:
    page = SETTINGS_PAGE.read_text()
    assert old in page
    assert settings_reference.with_reference(page.replace(old, new)) != page.replace(old, new)


def test_the_page_keeps_its_prose_around_the_reference() -> None:
    page = SETTINGS_PAGE.read_text()
    before, after = page.split(settings_reference.REFERENCE_START)[0], page.split(settings_reference.REFERENCE_END)[1]
    assert before.startswith("# Settings\n") and "## `RQ_QUEUES`" in after


def test_the_generator_writes_the_page(tmp_path: Path) -> None:
    copy = tmp_path / "settings.md"
    copy.write_text(SETTINGS_PAGE.read_text().replace("Cap of one retry delay.", "stale"))
    subprocess.run([sys.executable, "-m", "django_asyncjobs.conf", "--write", str(copy)], check=True)
    assert copy.read_text() == SETTINGS_PAGE.read_text()
