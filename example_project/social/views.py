"""Views of the social site.

Three of them are offloaded with ``@offload``: they answer 202 at once and run on a worker.

- ``post_tweet`` (queue ``fanout``): an optimistic response puts the tweet on the author's own
  timeline in the request; on the worker it enqueues the fan-out to the followers as a group of
  atomic jobs (``jobs.start_fan_out``: each chunk's timeline rows commit with its success, once,
  even when a worker is killed mid-fan-out), whose progress the page follows at the group's
  status URL.
- ``export_csv`` (queue ``reports``): a slow CSV export, downloaded from the job's result URL.
- ``flood_ping`` (queue ``flood``, ``MAX_DEPTH`` 5): the back-pressure demo.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from django_asyncjobs import Job, current_job, offload
from django_asyncjobs.aggregations.windows import latest_windows
from django_asyncjobs.offloading.access import group_status_url, status_url

from .aggregations import trending_hashtags
from .forms import TweetForm
from .jobs import start_fan_out, tweets_csv
from .models import DailyCount, Follow, TimelineEntry, TrendingHashtag, Tweet

TIMELINE_SIZE = 50
TRENDING_SPAN = timedelta(hours=1)


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _home_context(request: HttpRequest, **extra) -> dict:
    user = request.user
    timeline = (
        TimelineEntry.objects.filter(owner=user).select_related("tweet__author").order_by("-created_at")[:TIMELINE_SIZE]
    )
    trending, trending_until, trending_computed = _trending_last_hour()
    latest_day = DailyCount.objects.order_by("-day").values_list("day", flat=True).first()
    daily = list(DailyCount.objects.filter(day=latest_day).select_related("user")[:10]) if latest_day else []
    following = set(Follow.objects.filter(follower=user).values_list("followee_id", flat=True))
    suggestions = get_user_model().objects.exclude(pk__in=[*following, user.pk]).order_by("?")[:5]
    return {
        "form": TweetForm(),
        "timeline": [entry.tweet for entry in timeline],
        "trending": trending,
        "trending_until": trending_until,
        "trending_computed": trending_computed,
        "daily": daily,
        "daily_day": latest_day,
        "suggestions": suggestions,
        "following_count": len(following),
        "followers_count": Follow.objects.filter(followee=user).count(),
        "recent_jobs": Job.objects.owned_by(user).order_by("-created_at")[:5],
        **extra,
    }


def _trending_last_hour() -> tuple[list[dict], datetime | None, datetime | None]:
    """Top hashtags of the hour up to the newest computed window, when that hour ends, and when
    its newest window was computed (the aggregation counts one ``DEMO_TRENDING_EVERY`` at a time)."""
    _, done = latest_windows(trending_hashtags)
    if done is None:
        return [], None, None
    rows = (
        TrendingHashtag.objects.filter(window_start__gte=done.until - TRENDING_SPAN, window_start__lt=done.until)
        .values("tag")
        .annotate(total=Sum("count"))
        .order_by("-total", "tag")
    )
    return list(rows[:10]), done.until, done.finished_at


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "social/home.html", _home_context(request))


# --- posting: @offload with an optimistic response ------------------------------------------


def _tweet_for_job(user, text: str, job_id: uuid.UUID) -> Tweet:
    """The tweet of one post job: created by whichever of request and worker comes first.

    ``post_job_id`` is unique, and ``get_or_create`` retries its ``get`` after losing a race
    (an ``IntegrityError``), so both may run at the same moment.
    """
    tweet, _ = Tweet.objects.get_or_create(post_job_id=job_id, defaults={"author": user, "text": text})
    TimelineEntry.objects.get_or_create(owner=user, tweet=tweet, defaults={"created_at": tweet.created_at})
    return tweet


def _invalid_post(request: HttpRequest) -> bool:
    """``sync_if``: an invalid form runs inline, so the author gets the errors and nothing is queued."""
    return not TweetForm(request.POST).is_valid()


def _posted(request: HttpRequest, job: Job) -> HttpResponse:
    """The optimistic response: the tweet is on the author's timeline before the worker starts."""
    form = TweetForm(request.POST)
    form.is_valid()  # sync_if checked it already
    tweet = _tweet_for_job(request.user, form.cleaned_data["text"], job.pk)
    url = status_url(job)
    if _wants_json(request):
        return JsonResponse(
            {
                "tweet": {
                    "id": tweet.pk,
                    "author": tweet.author.get_username(),
                    "text": tweet.text,
                    "created_at": tweet.created_at.isoformat(),
                },
                "job": str(job.pk),
                "status_url": url,
            }
        )
    # Without JavaScript: the home page, with the new tweet and a link to the fan-out's status.
    return render(request, "social/home.html", _home_context(request, fanout_status_url=url))


@login_required
@offload(queue="fanout", methods=["POST"], optimistic=_posted, sync_if=_invalid_post, max_attempts=3, atomic=True)
def post_tweet(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return redirect("home")
    form = TweetForm(request.POST)
    if not form.is_valid():  # only reached inline, through sync_if
        if _wants_json(request):
            return JsonResponse({"errors": form.errors}, status=400)
        return render(request, "social/home.html", {**_home_context(request), "form": form}, status=400)
    this = current_job()
    # On the worker: the request's optimistic response has (most likely) created the tweet already.
    tweet = _tweet_for_job(request.user, form.cleaned_data["text"], this.pk)
    group = start_fan_out(tweet, request.user)
    return JsonResponse({"tweet": tweet.pk, "group": str(group.pk), "group_status_url": group_status_url(group)})


@login_required
@require_POST
def toggle_follow(request: HttpRequest, username: str) -> HttpResponse:
    other = get_object_or_404(get_user_model(), username=username)
    if other != request.user:
        deleted, _ = Follow.objects.filter(follower=request.user, followee=other).delete()
        if not deleted:
            Follow.objects.create(follower=request.user, followee=other)
    return redirect("home")


# --- the slow CSV export ----------------------------------------------------------------------


@login_required
def export_page(request: HttpRequest) -> HttpResponse:
    return render(request, "social/export.html", {"tweet_count": Tweet.objects.filter(author=request.user).count()})


@login_required
@offload(queue="reports")
@require_POST
def export_csv(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(tweets_csv(request.user.pk), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="tweets-{request.user.get_username()}.csv"'
    return response


# --- back pressure ----------------------------------------------------------------------------


@login_required
def flood_page(request: HttpRequest) -> HttpResponse:
    limits = settings.ASYNCJOBS["QUEUE_LIMITS"]["flood"]
    return render(request, "social/flood.html", {"max_depth": limits["MAX_DEPTH"]})


@login_required
@offload(queue="flood")
@require_POST
def flood_ping(request: HttpRequest) -> HttpResponse:
    time.sleep(settings.DEMO_SLOW_SECONDS * 10)
    return JsonResponse({"pong": request.POST.get("n", "")})
