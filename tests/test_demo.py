"""``make demo`` end to end: example_project/demo.py in a subprocess, driven over HTTP.

The demo starts its own private Redis (as on a machine without one), a worker, the scheduler and
runserver on a fresh SQLite file. The test posts a tweet, follows its fan-out (a group of jobs,
one per chunk of followers) to every follower's timeline and its callback recording the
delivery, sees the scheduler's aggregation count its hashtag, stops the demo with SIGINT
(Ctrl-C) and checks that no process it started is left.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from django_asyncjobs.testing import die_with_parent

from .conftest import alive, wait_for

DEMO = Path(__file__).resolve().parent.parent / "example_project" / "demo.py"

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds leftover processes in /proc")


class Browser:
    """A logged-in session: cookies, and Django's CSRF token on every POST."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def request(self, path: str, data: dict[str, str] | None = None, **headers: str) -> tuple[int, str]:
        body = None
        if data is not None:
            body = urllib.parse.urlencode({**data, "csrfmiddlewaretoken": self.csrf_token()}).encode()
        request = urllib.request.Request(urllib.parse.urljoin(self.base_url, path), data=body, headers=headers)
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def csrf_token(self) -> str:
        token = next((cookie.value for cookie in self.cookies if cookie.name == "csrftoken"), None)
        assert token, "no csrftoken cookie: GET a page with a form first"
        return token

    def log_in(self, username: str, password: str) -> None:
        self.request("/accounts/login/")
        status, page = self.request("/accounts/login/", {"username": username, "password": password})
        assert status == 200 and "Log out" in page, f"could not log in as {username}: {status} {page[:500]}"


def demo_processes(marker: str) -> list[int]:
    """Pids of live processes whose environment carries ``marker`` (the demo's children inherit it)."""
    needle = f"ASYNCJOBS_DEMO_TEST={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:  # gone meanwhile, or not ours
                continue
    return found


class Demo:
    """``demo.py`` running in a subprocess, its output in a file."""

    def __init__(self, workdir: Path) -> None:
        self.marker = uuid.uuid4().hex
        env = {key: value for key, value in os.environ.items() if key not in {"REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
        env.update(ASYNCJOBS_DEMO_TEST=self.marker, DEMO_TRENDING_EVERY="4s", DEMO_SLOW_SECONDS="0.01")
        self.log = workdir / "demo.log"
        self.db = workdir / "demo.sqlite3"
        command = [sys.executable, str(DEMO), "--port", "0", "--db", str(self.db)]
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [*command, "--users", "3", "--tweets", "20"],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=die_with_parent,
            )
        self.url: str = wait_for(self._announced_url, 180, "the demo's URL")

    def output(self) -> str:
        return self.log.read_text()

    def _announced_url(self) -> str | None:
        assert self.process.poll() is None, f"the demo exited early:\n{self.output()[-3000:]}"
        found = re.search(r"The demo is running at (\S+)", self.output())
        return found.group(1) if found else None

    def stop(self) -> int:
        """Ctrl-C, as in a terminal; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    running = Demo(tmp_path_factory.mktemp("demo"))
    try:
        yield running
    finally:
        running.stop()


def test_prints_the_site_and_the_logins(demo: Demo) -> None:
    assert "Admin and job dashboard" in demo.output()
    assert "login 'admin', password 'admin'" in demo.output()
    admin = Browser(demo.url)
    admin.request("/admin/login/")
    status, page = admin.request("/admin/login/?next=/admin/", {"username": "admin", "password": "admin"})
    assert status == 200 and "Site administration" in page
    status, page = admin.request("/admin/django_asyncjobs/schedule/")
    assert status == 200 and "social.trending_hashtags" in page and "social.daily_counts" in page


def test_prints_where_the_metrics_are_and_serves_them_with_its_token(demo: Demo) -> None:
    found = re.search(r"Prometheus metrics: (\S+) .*?Bearer (\S+)' ", demo.output(), re.S)
    assert found, demo.output()[-2000:]
    url, token = found.groups()
    assert url == demo.url + "metrics/"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read().decode()
    assert 'asyncjobs_queue_workers{queue="default"}' in body
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(url, timeout=30)
    assert denied.value.code == 401


def test_prints_the_terminal_status_and_health_commands_and_they_answer(demo: Demo) -> None:
    lines = re.findall(r"^ +(\(cd example_project && .*\))$", demo.output(), re.M)
    status = next(line for line in lines if "asyncjobs_status" in line).replace("--watch", "--json")
    health = next(line for line in lines if "asyncjobs_health" in line)
    root = Path(__file__).resolve().parent.parent
    answered = subprocess.run(status, shell=True, cwd=root, capture_output=True, text=True, timeout=120)
    assert answered.returncode in (0, 1), answered.stderr  # 1: a queue unhealthy, e.g. the flood queue full
    assert {queue["name"] for queue in json.loads(answered.stdout)["queues"]} >= {"default", "fanout"}
    alive = subprocess.run(health, shell=True, cwd=root, capture_output=True, text=True, timeout=120)
    assert alive.returncode == 0, alive.stdout + alive.stderr


def test_a_tweet_is_fanned_out_and_its_hashtag_aggregated(demo: Demo) -> None:
    # Every user follows every other one (3 users, up to 10 follows each): user2 and user3 follow user1.
    author, followers = Browser(demo.url), [Browser(demo.url), Browser(demo.url)]
    author.log_in("user1", "password")
    followers[0].log_in("user2", "password")
    followers[1].log_in("user3", "password")
    tag = "demo" + uuid.uuid4().hex[:8]
    text = f"Hello from the demo test #{tag}"

    status, body = author.request("/post/", {"text": text}, Accept="application/json")
    assert status == 202, body
    posted = json.loads(body)
    assert posted["tweet"]["text"] == text  # the optimistic response, before the worker ran
    assert text in author.request("/")[1]  # on the author's own timeline at once

    progress: list[int] = []

    def poll(url: str, done: Callable[[dict[str, Any]], bool]) -> Callable[[], dict[str, Any] | None]:
        def check() -> dict[str, Any] | None:
            state = json.loads(author.request(url, Accept="application/json")[1])
            assert state["status"] not in {"failed", "cancelled"}, state
            progress.append(state["progress"])
            return state if done(state) else None

        return check

    post = wait_for(poll(posted["status_url"], lambda state: state["status"] == "succeeded"), 60, "the post job")
    fan_out = json.loads(author.request(post["result_url"], Accept="application/json")[1])
    progress.clear()
    group = wait_for(poll(fan_out["group_status_url"], lambda state: state["finished"]), 60, "the fan-out")
    assert (group["status"], group["progress"], group["size"]) == ("succeeded", 100, 1)  # 2 followers: 1 chunk
    assert group["counts"]["succeeded"] == 1 and progress[-1] == 100
    assert group["callback"]["status"] == "succeeded"
    delivery = json.loads(author.request(group["callback"]["result_url"], Accept="application/json")[1])
    assert delivery["followers"] == 2
    for follower in followers:
        assert text in follower.request("/")[1]  # put on every follower's timeline by the group's job
    assert "delivered to 2 followers" in author.request("/")[1]  # recorded by the callback, once:
    with sqlite3.connect(demo.db) as db:
        callbacks = db.execute(
            "SELECT status, attempts FROM django_asyncjobs_job WHERE name = ? AND args LIKE ?",
            ("social.jobs.record_delivery", f'["{group["id"]}"%'),
        ).fetchall()
    assert callbacks == [("succeeded", 1)]

    # Without JavaScript, an invalid tweet: the home page again, with the server's error, nothing queued.
    status, page = author.request("/post/", {"text": "   "})
    assert status == 400 and "This field is required." in page

    trending_item = re.compile(rf"<li>#{tag} <span")
    wait_for(
        lambda: trending_item.search(followers[0].request("/")[1]), 60, "the trending aggregation to count the tag"
    )


def test_the_pages_scripts_in_a_browser(demo: Demo, page: Any) -> None:
    """The JavaScript of the home, export and flood pages, in headless Chromium."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(demo.url + "accounts/login/")
    page.fill("input[name=username]", "user3")
    page.fill("input[name=password]", "password")
    page.click("form button[type=submit]")
    page.wait_for_url(demo.url)

    page.fill("#post-form [name=text]", "Posted from a browser #browser")
    page.click("#post-form button")
    page.wait_for_selector(".tweet.pending")  # optimistic: on the timeline before the fan-out ran
    page.wait_for_function("document.getElementById('fanout-message').textContent.startsWith('delivered')")
    assert page.locator(".tweet.pending").count() == 0
    assert page.evaluate("document.getElementById('fanout-bar').value") == 100  # the group's progress

    page.fill("#post-form [name=text]", "")  # the browser lets it through (novalidate): the server says why not
    page.click("#post-form button")
    page.wait_for_function("document.getElementById('post-error').textContent.length > 0")
    assert page.text_content("#post-error") == "This field is required."

    page.goto(demo.url + "export/")
    page.click("#export-form button")
    page.wait_for_selector("#export-download:not([hidden])")
    with page.expect_download() as download:
        page.click("#export-download")
    assert Path(download.value.path()).read_text().startswith("id,created_at,text")

    page.goto(demo.url + "flood/")
    page.fill("input[name=count]", "10")
    page.click("#flood-form button")
    page.wait_for_function(
        "document.getElementById('flood-summary').textContent.startsWith('10 done')", timeout=120_000
    )
    assert errors == []


def test_ctrl_c_stops_every_process(demo: Demo) -> None:
    # Redis rewrites its process title over its environment: its pid comes from the log.
    started = [int(pid) for pid in re.findall(r"\(.*pid (\d+)\)", demo.output())]
    assert len(started) == 4  # Redis, worker, scheduler, runserver
    assert all(alive(pid) for pid in started)
    assert demo.process.pid in demo_processes(demo.marker)

    assert demo.stop() == 0, demo.output()[-3000:]
    assert "Stopped the private Redis." in demo.output()
    assert [pid for pid in started if alive(pid)] == []
    assert demo_processes(demo.marker) == []
