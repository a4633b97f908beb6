"""Job status and result endpoints (``include("django_asyncjobs.urls")``).

Only the job's owner, a user with the ``view_job`` permission, or a holder of
the job's status token sees a job; everyone else gets 404, so ids leak nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from ..engine.broker import RedisError, live_workers, position
from ..engine.capacity import clamp_retry_after, estimate_start, queue_state_or_none, recent_run_time
from ..models import Job, JobStatus
from .access import result_url, status_url, token_matches
from .responses import restore_response, stored_response_of, wants_html

#: Longest poll interval the status endpoint suggests while a job is unfinished.
MAX_POLL_SECONDS = 10


class HttpResponseSeeOther(HttpResponseRedirect):
    status_code = 303


def _get_job(request: HttpRequest, job_id: uuid.UUID) -> tuple[Job, bool]:
    """The job, if the request may see it, and whether the request is its client (owner or
    token holder). A job that exists but is not yours costs the same queries and gets the
    same 404 as one that does not exist: the permission is asked in both cases."""
    user = getattr(request, "user", None)
    job = Job.objects.filter(pk=job_id).first()
    if job is not None:
        if token_matches(job_id, request.GET.get("token")):
            return job, True
        if job.owner_id is not None and job.owner_id == getattr(user, "pk", None):
            return job, True
    may_view_all = user is not None and user.has_perm("django_asyncjobs.view_job")
    if job is None or not may_view_all:
        raise Http404("No such job.")
    return job, False


def describe(job: Job) -> dict[str, Any]:
    """The public view of a job: what its status endpoint returns."""
    data: dict[str, Any] = {
        "id": str(job.pk),
        "name": job.name,
        "display_name": job.shown_name,
        "queue": job.queue,
        "status": job.status,
        "progress": job.progress,
        "progress_message": job.progress_message,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "created_at": job.created_at,
        "enqueued_at": job.enqueued_at,
        "run_at": job.run_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "status_url": status_url(job),
        "position": None,
        "estimated_wait": None,
    }
    if job.status == JobStatus.QUEUED:
        state = queue_state_or_none(job.queue)
        try:
            ahead = position(job.queue, str(job.pk)) if state is not None else None
        except RedisError:
            ahead = None
        if ahead is not None and state is not None:
            data["position"] = ahead
            data["estimated_wait"] = _estimated_start(job.queue, ahead, state.throughput)
    if job.status == JobStatus.SUCCEEDED:
        data["result_url"] = result_url(job)
    if job.status == JobStatus.FAILED and job.error:
        data["error"] = job.error.strip().splitlines()[-1]
    return data


def _estimated_start(queue: str, ahead: int, throughput: float) -> float | None:
    """:func:`estimate_start` with the queue's live workers (one Redis round trip) and its
    recent run time (cached); Little's law alone when Redis cannot tell the workers."""
    try:
        workers: int | None = live_workers(queue)
    except RedisError:
        workers = None
    return estimate_start(ahead, throughput, workers=workers, run_time=recent_run_time(queue))


def poll_after(job: Job, data: dict[str, Any]) -> int | None:
    """Seconds a client should wait before polling again; ``None`` once finished."""
    if job.is_finished:
        return None
    if job.status == JobStatus.QUEUED:
        return min(MAX_POLL_SECONDS, clamp_retry_after(data["estimated_wait"]))
    if job.status == JobStatus.SCHEDULED and job.run_at is not None:
        return min(MAX_POLL_SECONDS, clamp_retry_after((job.run_at - timezone.now()).total_seconds()))
    return 1


@require_safe
def job_status(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    job, _ = _get_job(request, job_id)
    data = describe(job)
    finished_ok = job.status == JobStatus.SUCCEEDED
    if finished_ok and request.GET.get("redirect") == "1":
        return HttpResponseSeeOther(data["result_url"])
    retry = poll_after(job, data)
    if wants_html(request):
        # Done: the page opens the result itself, and stays with a link to it, since a result
        # that is a download leaves the browser on this page.
        context = {"job": job, "data": data, "poll": retry, "open_result": finished_ok}
        response: HttpResponse = render(request, "django_asyncjobs/status.html", context)
    else:
        response = JsonResponse(data)
    if retry is not None:
        response["Retry-After"] = str(retry)
    response["Cache-Control"] = "no-store"
    return response


@require_safe
def job_result(request: HttpRequest, job_id: uuid.UUID) -> HttpResponseBase:
    job, is_client = _get_job(request, job_id)
    if job.status != JobStatus.SUCCEEDED:
        response = JsonResponse({"id": str(job.pk), "status": job.status, "status_url": status_url(job)}, status=409)
        response["Location"] = status_url(job)
        return response
    stored = stored_response_of(job)
    if stored is not None:
        return restore_response(stored, with_cookies=is_client)
    response = JsonResponse(job.result, safe=False)
    response["X-Content-Type-Options"] = "nosniff"
    return response
