"""The status endpoint of a group of jobs (``enqueue_group``): ``groups/<id>/``.

Only the group's owner, a user with the ``view_jobgroup`` permission, or a holder of the
group's status token sees a group; everyone else gets 404, as for a job. The callback's
status and result URLs are given to the group's own client (owner or token holder): a
callback without an owner is reached with its token, so whoever may follow the group may
follow its callback, which the same call enqueued.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from ..models import FINISHED_STATUSES, Job, JobGroup, JobStatus
from .access import group_status_url, group_token_matches, result_url, status_url
from .responses import wants_html

#: Seconds a client should wait between two polls of an unfinished group.
GROUP_POLL_SECONDS = 1


def _get_group(request: HttpRequest, group_id: uuid.UUID) -> tuple[JobGroup, bool]:
    """The group, if the request may see it, and whether the request is its client (owner or
    token holder). A group that is not yours costs the same queries and gets the same 404 as one
    that does not exist."""
    user = getattr(request, "user", None)
    group = JobGroup.objects.select_related("callback").filter(pk=group_id).first()
    if group is not None:
        if group_token_matches(group_id, request.GET.get("token")):
            return group, True
        if group.owner_id is not None and group.owner_id == getattr(user, "pk", None):
            return group, True
    may_view_all = user is not None and user.has_perm("django_asyncjobs.view_jobgroup")
    if group is None or not may_view_all:
        raise Http404("No such group.")
    return group, False


def _describe_callback(callback: Job, with_links: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"id": str(callback.pk), "name": callback.name, "status": callback.status}
    if with_links:
        data["status_url"] = status_url(callback)
        if callback.status == JobStatus.SUCCEEDED:
            data["result_url"] = result_url(callback)
        if callback.status in (JobStatus.FAILED, JobStatus.CANCELLED) and callback.error:
            data["error"] = callback.error.strip().splitlines()[-1]
    return data


def describe_group(group: JobGroup, *, with_links: bool = True) -> dict[str, Any]:
    """The public view of a group: what its status endpoint returns. ``finished`` is true once
    nothing will change any more: the group finished, and its callback (if any) too."""
    callback = group.callback
    callback_done = callback is None or callback.status in FINISHED_STATUSES
    return {
        "id": str(group.pk),
        "name": group.name,
        "status": group.status,
        "finished": group.is_finished and callback_done,
        "size": group.size,
        "counts": group.counts(),
        "progress": group.progress(),
        "created_at": group.created_at,
        "finished_at": group.finished_at,
        "status_url": group_status_url(group),
        # An owned callback's URLs grant nothing by themselves; an ownerless one's carry its token.
        "callback": None
        if callback is None
        else _describe_callback(callback, with_links or callback.owner_id is not None),
    }


@require_safe
def group_status(request: HttpRequest, group_id: uuid.UUID) -> HttpResponse:
    group, is_client = _get_group(request, group_id)
    data = describe_group(group, with_links=is_client)
    if wants_html(request):
        poll = None if data["finished"] else GROUP_POLL_SECONDS
        response: HttpResponse = render(
            request, "django_asyncjobs/group_status.html", {"group": group, "data": data, "poll": poll}
        )
    else:
        response = JsonResponse(data)
    if not data["finished"]:
        response["Retry-After"] = str(GROUP_POLL_SECONDS)
    response["Cache-Control"] = "no-store"
    return response
