"""A threaded worker's slots (django_asyncjobs/worker/slots.py): an exception raised in another
thread rises inside the job function's window, never in the claim or the outcome around it."""

from __future__ import annotations

import random
import threading
import time

import pytest

from django_asyncjobs.exceptions import JobInterrupted, JobTimeout
from django_asyncjobs.worker.slots import Interrupted, Slot, Watchdog


def _spin(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


def test_interrupts_at_random_moments_rise_only_inside_the_window() -> None:
    slot = Slot(0, Watchdog())
    rounds = 3000
    results = {"interrupted": 0, "completed": 0, "stray": 0}
    started = threading.Event()

    def executor() -> None:
        slot.ident = threading.get_ident()
        started.set()
        for index in range(rounds):
            job_id = f"job-{index}"
            try:  # the claim, outside the window
                slot.begin(job_id)
                _spin(random.random() * 0.0001)
            except JobInterrupted:
                results["stray"] += 1
            try:
                with slot.guard(60, job_id):
                    _spin(random.random() * 0.0002)
                results["completed"] += 1
            except JobInterrupted:  # inside the function, or as it started (asked during the claim)
                results["interrupted"] += 1
            try:  # the outcome write, outside the window
                _spin(random.random() * 0.0002)
                slot.end()
            except JobInterrupted:
                results["stray"] += 1
                slot.end()

    thread = threading.Thread(target=executor)
    thread.start()
    started.wait()
    while thread.is_alive():
        job_id = slot.job_id
        if job_id is not None:
            slot.interrupt(job_id)
        time.sleep(random.random() * 0.0003)
    thread.join()
    assert results["stray"] == 0, results
    assert results["interrupted"] + results["completed"] == rounds
    assert results["interrupted"] > 0, results
    # Recorded as the public exception, as a single-thread worker records it.
    assert (Interrupted.__module__, Interrupted.__qualname__) == ("django_asyncjobs.exceptions", "JobInterrupted")


def test_the_watchdog_times_out_a_job_function_and_nothing_else() -> None:
    watchdog = Watchdog()
    slot = Slot(0, watchdog)
    watchdog.slots = [slot]
    watchdog.start()
    slot.ident = threading.get_ident()
    try:
        slot.begin("slow")
        timeout = pytest.raises(JobTimeout, match=r"Task exceeded maximum timeout value \(1 seconds\)")
        with timeout, slot.guard(1, "slow"):
            _spin(5)
        slot.end()
        _spin(1.5)  # past where the deadline was: nothing rises outside the window
        slot.begin("quick")
        with slot.guard(1, "quick"):
            pass
        slot.end()
        _spin(1.5)
    finally:
        watchdog.stop()
        watchdog.join(5)


def test_a_cancel_before_the_function_starts_interrupts_it_as_it_starts() -> None:
    slot = Slot(0, Watchdog())
    slot.ident = threading.get_ident()
    slot.begin("claimed")
    assert slot.interrupt("another") is False
    assert slot.interrupt("claimed") is True
    with pytest.raises(JobInterrupted), slot.guard(60, "claimed"):
        raise AssertionError("the function must not start")
    slot.end()
    assert slot.interrupt("claimed") is False
