"""Job status and result endpoints (``include("django_asyncjobs.urls")``).

Only the job's owner, a user with the ``view_job`` permission, or a holder of
the job's status token sees a job; everyone else gets 404, so ids leak nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe
from redis.exceptions import RedisError

from .access import can_view, result_url, status_url
from .backpressure import clamp_retry_after, estimate_wait, queue_state_or_none
from .models import Job, JobStatus
from .queues import position
from .responses import is_stored_response, restore_response, wants_html

#: Longest poll interval the status endpoint suggests while a job is unfinished.
MAX_POLL_SECONDS = 10


class HttpResponseSeeOther(HttpResponseRedirect):
    status_code = 303


def _get_job(request: HttpRequest, job_id: uuid.UUID) -> Job:
    job = Job.objects.filter(pk=job_id).first()
    if job is None or not can_view(getattr(request, "user", None), job, request.GET.get("token")):
        raise Http404("No such job.")
    return job


def describe(job: Job) -> dict[str, Any]:
    """The public view of a job: what its status endpoint returns."""
    data: dict[str, Any] = {
        "id": str(job.pk),
        "name": job.name,
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
            data["estimated_wait"] = estimate_wait(ahead + 1, state.throughput)
    if job.status == JobStatus.SUCCEEDED:
        data["result_url"] = result_url(job)
    if job.status == JobStatus.FAILED and job.error:
        data["error"] = job.error.strip().splitlines()[-1]
    return data


def poll_after(job: Job, data: dict[str, Any]) -> int | None:
    """Seconds a client should wait before polling again; ``None`` once finished."""
    if job.is_finished:
        return None
    if job.status == JobStatus.QUEUED:
        return min(MAX_POLL_SECONDS, clamp_retry_after(data["estimated_wait"]))
    if job.status == JobStatus.SCHEDULED and job.run_at is not None:
        from django.utils import timezone

        return min(MAX_POLL_SECONDS, clamp_retry_after((job.run_at - timezone.now()).total_seconds()))
    return 1


@require_safe
def job_status(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    job = _get_job(request, job_id)
    data = describe(job)
    finished_ok = job.status == JobStatus.SUCCEEDED
    if finished_ok and (request.GET.get("redirect") == "1" or wants_html(request)):
        return HttpResponseSeeOther(data["result_url"])
    retry = poll_after(job, data)
    if wants_html(request):
        response: HttpResponse = render(
            request, "django_asyncjobs/status.html", {"job": job, "data": data, "poll": retry}
        )
    else:
        response = JsonResponse(data)
    if retry is not None:
        response["Retry-After"] = str(retry)
    response["Cache-Control"] = "no-store"
    return response


@require_safe
def job_result(request: HttpRequest, job_id: uuid.UUID) -> HttpResponseBase:
    job = _get_job(request, job_id)
    if job.status != JobStatus.SUCCEEDED:
        response = JsonResponse({"id": str(job.pk), "status": job.status, "status_url": status_url(job)}, status=409)
        response["Location"] = status_url(job)
        return response
    if isinstance(job.result, dict) and is_stored_response(job.result):
        return restore_response(job.result)
    return JsonResponse(job.result, safe=False)
