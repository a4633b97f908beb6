"""A dependency-free client for ``@offload`` endpoints (standard library only).

``submit()`` sends a request; on ``503`` it waits ``Retry-After`` (or a jittered
exponential backoff when there is none) and retries, up to ``max_retries``; on
``202`` it polls the status URL from ``Location``, honouring the status
endpoint's ``Retry-After``, until the job has finished, and returns the job's
result. The same policy as the JavaScript helper (``asyncjobs.js``). ``wait_group()``
polls a group's status URL (``enqueue_group``) the same way until the group and its
callback have finished.

    client = AsyncJobsClient("https://example.com", headers={"Authorization": "Token ..."})
    result = client.submit("/reports/", data={"month": "2026-11"})
    result.json()
"""

from __future__ import annotations

import http.client
import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Any

__all__ = [
    "AsyncJobsClient",
    "Busy",
    "ClientError",
    "GroupFailed",
    "JobFailed",
    "Response",
    "Timeout",
    "backoff_delay",
    "retry_after_seconds",
]


class ClientError(Exception):
    """Base of the client's errors."""


class Busy(ClientError):
    """The server stayed saturated (503) through every retry."""

    def __init__(self, url: str, attempts: int, retry_after: float | None) -> None:
        self.url, self.attempts, self.retry_after = url, attempts, retry_after
        super().__init__(f"{url} answered 503 {attempts} times; giving up.")


class Timeout(ClientError):
    """The job had not finished within the client's ``timeout``; ``job`` is its last status
    document, and ``wait(job["status_url"])`` resumes waiting."""

    def __init__(self, job: dict[str, Any], timeout: float) -> None:
        self.job = job
        super().__init__(f"Job {job.get('id')} still {job.get('status')} after {timeout}s.")


class JobFailed(ClientError):
    """The job ended ``failed`` or ``cancelled``; ``job`` is its last status document."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        super().__init__(f"Job {job.get('id')} ended {job.get('status')}: {job.get('error', '')}".rstrip(": "))


class GroupFailed(ClientError):
    """The group ended ``failed`` (a job of it failed or was cancelled), or its callback ended
    ``failed`` or ``cancelled``; ``group`` is its last status document."""

    def __init__(self, group: dict[str, Any]) -> None:
        self.group = group
        callback = group.get("callback") or {}
        detail = f"; its callback {callback.get('status')}" if callback.get("status") in _FAILED else ""
        super().__init__(f"Group {group.get('id')} ended {group.get('status')}{detail}.")


_FAILED = ("failed", "cancelled")


@dataclass
class Response:
    status: int
    #: Case-insensitive, as HTTP header names are.
    headers: Message
    body: bytes
    #: The job's last status document, when the request was offloaded.
    job: dict[str, Any] | None = field(default=None)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def backoff_delay(attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with "equal jitter": between half and all of ``min(cap, base * 2**attempt)``."""
    ceiling = min(cap, base * 2.0**attempt)
    return ceiling / 2 + rand() * ceiling / 2


class AsyncJobsClient:
    def __init__(
        self,
        base_url: str = "",
        *,
        headers: Mapping[str, str] | None = None,
        max_retries: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        poll_min: float = 0.25,
        poll_max: float = 10.0,
        timeout: float = 300.0,
        request_timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url
        self.headers = dict(headers or {})
        self.max_retries, self.base_delay, self.max_delay = max_retries, base_delay, max_delay
        self.poll_min, self.poll_max, self.timeout = poll_min, poll_max, timeout
        self.request_timeout = request_timeout
        self.sleep = sleep

    def submit(
        self,
        url: str,
        *,
        method: str = "POST",
        data: Mapping[str, Any] | bytes | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        on_busy: Callable[[int, float], None] | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> Response:
        """Send the request, retrying on 503; if offloaded (202), wait for the job and return its result."""
        body, content_type = _encode(data, json_body)
        extra = {"Content-Type": content_type} if content_type else {}
        response = self._with_retries(url, method, body, {**extra, **(headers or {})}, on_busy)
        if response.status != 202 or "Location" not in response.headers:
            return response
        return self.wait(response.headers["Location"], on_busy=on_busy, on_progress=on_progress)

    def wait(
        self,
        status_url: str,
        *,
        on_busy: Callable[[int, float], None] | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> Response:
        """Poll ``status_url`` until the job finishes; return its result or raise :class:`JobFailed`."""
        job = self._poll(status_url, lambda job: job["status"] in ("succeeded", *_FAILED), on_busy, on_progress)
        if job["status"] in _FAILED:
            raise JobFailed(job)
        result = self._with_retries(job["result_url"], "GET", None, {}, on_busy)
        result.job = job
        return result

    def wait_group(
        self,
        status_url: str,
        *,
        on_busy: Callable[[int, float], None] | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll a group's ``status_url`` until the group and its callback finished; return the last
        status document, or raise :class:`GroupFailed` if a job of it or its callback did not succeed."""
        group = self._poll(status_url, lambda group: bool(group["finished"]), on_busy, on_progress)
        callback = group.get("callback") or {}
        if group["status"] == "failed" or callback.get("status") in _FAILED:
            raise GroupFailed(group)
        return group

    def _poll(
        self,
        status_url: str,
        finished: Callable[[dict[str, Any]], bool],
        on_busy: Callable[[int, float], None] | None,
        on_progress: Callable[[dict[str, Any]], None] | None,
    ) -> dict[str, Any]:
        """GET ``status_url`` until its document is ``finished``, waiting as ``Retry-After`` says."""
        deadline = time.monotonic() + self.timeout
        attempt = 0
        while True:
            response = self._with_retries(status_url, "GET", None, {}, on_busy)
            if response.status != 200:
                raise ClientError(f"{status_url} answered {response.status}: {response.body[:200]!r}")
            try:
                document: dict[str, Any] = response.json()
            except ValueError as error:
                raise ClientError(f"{status_url} did not answer JSON: {response.body[:200]!r}") from error
            if on_progress:
                on_progress(document)
            if finished(document):
                return document
            if time.monotonic() > deadline:
                raise Timeout(document, self.timeout)
            hint = retry_after_seconds(response.headers.get("Retry-After"))
            delay = hint if hint is not None else self.poll_min * 2**attempt
            self.sleep(min(self.poll_max, max(self.poll_min, delay)))
            attempt += 1

    def _with_retries(
        self,
        url: str,
        method: str,
        body: bytes | None,
        headers: Mapping[str, str],
        on_busy: Callable[[int, float], None] | None,
    ) -> Response:
        for attempt in range(self.max_retries + 1):
            response = self._send(url, method, body, headers)
            if response.status != 503:
                return response
            hint = retry_after_seconds(response.headers.get("Retry-After"))
            if attempt == self.max_retries:
                raise Busy(url, attempt + 1, hint)
            delay = max(hint or 0.0, backoff_delay(attempt, self.base_delay, self.max_delay))
            if on_busy:
                on_busy(attempt + 1, delay)
            self.sleep(delay)
        raise AssertionError("unreachable")

    def _send(self, url: str, method: str, body: bytes | None, headers: Mapping[str, str]) -> Response:
        full_url = urllib.parse.urljoin(self.base_url, url)
        request = urllib.request.Request(
            full_url, data=body, method=method, headers={"Accept": "application/json", **self.headers, **headers}
        )
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=self.request_timeout) as reply:
                return Response(reply.status, reply.headers, reply.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, error.headers, error.read())
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            raise ClientError(f"{method} {full_url} failed: {error}") from error


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """202 + Location is not a redirect to follow; 3xx are returned to the caller as they are."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _encode(data: Mapping[str, Any] | bytes | None, json_body: Any) -> tuple[bytes | None, str | None]:
    if json_body is not None:
        return json.dumps(json_body).encode(), "application/json"
    if isinstance(data, bytes):
        return data, None
    if data is not None:
        return urllib.parse.urlencode(data, doseq=True).encode(), "application/x-www-form-urlencoded"
    return None, None
