"""asyncjobs.js in a real headless Chromium, against a live server and a real worker.

Needs Debian's ``chromium`` (or ``ASYNCJOBS_CHROMIUM``) and the ``playwright``
package; skipped, saying why, when either is missing. ``.ci/run`` installs both.
"""

from __future__ import annotations

import re

import pytest

from django_asyncjobs import enqueue_group
from django_asyncjobs.engine.capacity import forget_states
from django_asyncjobs.offloading.access import group_status_url
from tests.testapp.jobs import add, group_done, noop, raises

pytestmark = pytest.mark.django_db(transaction=True)

SUBMIT = """([url, pollMin]) => {
  window.events = {accepted: 0, busy: [], progress: [], done: 0};
  window.run = AsyncJobs.submit(url, {
    headers: {"X-CSRFToken": csrf()},
    pollMin: pollMin, baseDelay: 100,
    onAccepted: () => window.events.accepted++,
    onBusy: (e) => window.events.busy.push(e),
    onProgress: (job) => window.events.progress.push(job.status),
    onDone: () => window.events.done++,
  }).then(async (r) => ({status: r.response.status, body: await r.response.json(), job: r.job.status}));
}"""


def test_submit_retries_503_then_polls_to_the_result(settings, live_server, start_worker, redis, page) -> None:
    settings.ASYNCJOBS = {
        **settings.ASYNCJOBS,
        "QUEUE_LIMITS": {"default": {"MAX_DEPTH": 1}},
        "BACKPRESSURE_CACHE_SECONDS": 0,
        "RETRY_AFTER_MIN": 1,
        "RETRY_AFTER_MAX": 1,
    }
    forget_states()
    noop.enqueue()  # the queue is now full: the page's submit gets 503 + Retry-After
    page.goto(f"{live_server.url}/client-page/")
    page.evaluate(SUBMIT, ["/echo/5/", 50])
    page.wait_for_function("window.events.busy.length > 0")
    first_busy = page.evaluate("window.events.busy[0]")
    assert first_busy["attempt"] == 1
    assert first_busy["delay"] >= 1000  # never sooner than Retry-After

    start_worker("default")  # drains the queue; the retried submit is accepted and runs
    outcome = page.evaluate("window.run")
    assert outcome["status"] == 201
    assert outcome["job"] == "succeeded"
    assert outcome["body"]["kwargs"] == {"number": "5"}
    events = page.evaluate("window.events")
    assert events["accepted"] == 1 and events["done"] == 1
    assert events["progress"][-1] == "succeeded"

    failed = page.evaluate(
        """async () => {
          const seen = [];
          try {
            await AsyncJobs.submit("/uses-session/", {method: "GET", pollMin: 50, onFailed: (job) => seen.push(job)});
            return {rejected: false};
          } catch (error) {
            return {rejected: true, name: error.name, status: seen[0].status, detail: seen[0].error};
          }
        }"""
    )
    assert failed["rejected"] and failed["name"] == "JobFailed" and failed["status"] == "failed"
    assert "request.session is not available" in failed["detail"]


def test_helpers(page, live_server) -> None:
    page.goto(f"{live_server.url}/client-page/")
    delays = page.evaluate("[0, 1, 2, 3, 20].map((n) => AsyncJobs.backoff(n, 500, 30000))")
    for attempt, delay in zip([0, 1, 2, 3], delays, strict=False):
        ceiling = 500 * 2**attempt
        assert ceiling / 2 <= delay <= ceiling
    assert 15000 <= delays[-1] <= 30000
    parsed = page.evaluate(
        "[AsyncJobs.retryAfterMs(new Response('', {headers: {'Retry-After': '7'}})),"
        " AsyncJobs.retryAfterMs(new Response(''))]"
    )
    assert parsed == [7000, None]


POLL_GROUP = """async (url) => {
  const seen = [];
  try {
    const options = {pollMin: 50, pollMax: 200, onProgress: (g) => seen.push(g.progress)};
    const {group} = await AsyncJobs.pollGroup(url, options);
    return {group: group, seen: seen};
  } catch (error) {
    return {error: error.name, group: error.group || null, seen: seen};
  }
}"""


def test_poll_group_follows_a_group_and_its_callback(live_server, start_worker, page) -> None:
    group = enqueue_group(add, [(n, n) for n in range(4)], then=group_done.s("browser"))
    failing = enqueue_group(raises, [("boom",)], then=group_done.s("never"))
    missing = group_status_url(group).replace(str(group.pk)[:8], "00000000")
    page.goto(f"{live_server.url}/client-page/")
    start_worker("default")
    done = page.evaluate(POLL_GROUP, group_status_url(group))
    assert done["group"]["finished"] and done["group"]["callback"]["status"] == "succeeded"
    assert done["seen"][-1] == 100
    failed = page.evaluate(POLL_GROUP, group_status_url(failing))
    assert failed["error"] == "GroupFailed" and failed["group"]["callback"]["status"] == "cancelled"
    assert page.evaluate(POLL_GROUP, missing)["error"] == "GroupFailed"  # 404


def test_the_fallback_pages_without_javascript(page, live_server, start_worker) -> None:
    """Offloaded views opened by a browser without JavaScript: the 202 page, the status page it
    moves to, then the result, or a failed job's page; nothing is loaded from another origin.
    The pages refresh themselves, so the checks retry (``expect``) until a page has settled."""
    from playwright.sync_api import expect

    plain = page.context.browser.new_context(java_script_enabled=False).new_page()
    plain.set_viewport_size({"width": 1280, "height": 800})
    loaded: list[str] = []
    plain.on("request", lambda request: loaded.append(request.url))

    accepted = plain.goto(f"{live_server.url}/maybe-cheap/")
    assert accepted is not None and accepted.status == 202
    assert "<h1>Your request is being processed</h1>" in accepted.text()
    expect(plain.locator("h1")).to_have_text("Queued", timeout=15_000)  # after the meta refresh
    expect(plain.locator('[role="progressbar"]')).to_be_visible()
    expect(plain.locator("main")).to_contain_text("Next in line.")
    expect(plain.locator("main")).to_contain_text("refreshes every")

    start_worker("default")
    plain.wait_for_url(re.compile("/result/"), timeout=30_000)  # the status page's refresh, then 303
    expect(plain.locator("body")).to_have_text("computed")

    plain.goto(f"{live_server.url}/uses-session/")  # fails on the worker: its page stops refreshing
    expect(plain.locator("h1")).to_have_text("Failed", timeout=30_000)
    expect(plain.locator(".alert")).to_contain_text("request.session is not available")
    style = plain.eval_on_selector(
        "main", "el => ({font: getComputedStyle(document.body).fontFamily, radius: getComputedStyle(el).borderRadius})"
    )
    assert "Times" not in style["font"] and style["radius"] != "0px"  # the page's own style, not the browser's
    bar = plain.locator('[role="progressbar"]').bounding_box()
    assert bar is not None and bar["width"] > 100 and bar["height"] > 0
    assert loaded and all(url.startswith(live_server.url) for url in loaded)
