"""``@offload``: a view's slow work becomes a background job; the client gets 202 at once."""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.template.loader import render_to_string

from ..engine.capacity import check
from ..exceptions import ConfigurationError, OffloadError, QueueFull, SerializationError
from ..models import Job
from ..validators import require_count
from .access import require_status_urls, status_url
from .requests import enqueue_request, offloaded_view_job, register_view
from .responses import busy_response, wants_html

View = Callable[..., Any]
Optimistic = Callable[..., HttpResponseBase]

_probing: contextvars.ContextVar[bool] = contextvars.ContextVar("asyncjobs_probing", default=False)


class _ChecksPassed(BaseException):
    """Raised at the innermost view during the request-time probe: every decorator let it through.

    A ``BaseException`` so that a decorator's own ``except Exception`` does not swallow it.
    """


def offload(
    view: View | None = None,
    *,
    queue: str | None = None,
    optimistic: Optimistic | None = None,
    methods: Sequence[str] | None = None,
    sync_if: Callable[[HttpRequest], bool] | None = None,
    max_attempts: int | None = None,
    atomic: bool = False,
) -> Any:
    """Run the view on a worker and answer ``202 Accepted`` with the job's status URL.

    ``optimistic(request, job, *args, **kwargs)`` renders the immediate response
    instead (status 202 unless it sets another). ``methods`` limits offloading to
    those methods (others run inline); ``sync_if(request)`` returning true runs the
    request inline. Decorators such as ``login_required`` may sit on either side:
    their checks run in the request, before anything is queued. ``atomic``: the view's
    database writes commit with the job's outcome, or not at all (docs/jobs.md#atomic-jobs).
    """
    if max_attempts is not None:
        require_count(max_attempts, "max_attempts")
    if not isinstance(atomic, bool):
        raise ConfigurationError(f"@offload(atomic=...) must be True or False, got {atomic!r}")
    allowed = frozenset(m.upper() for m in methods) if methods else None

    def decorate(view_func: View) -> View:
        offloaded = _OffloadedView.register(
            view_func,
            queue=queue,
            optimistic=optimistic,
            allowed=allowed,
            sync_if=sync_if,
            max_attempts=max_attempts,
            atomic=atomic,
        )
        wrapper = _async_wrapper(offloaded) if offloaded.is_async else _sync_wrapper(offloaded)
        wrapper.asyncjobs_offload = {  # type: ignore[attr-defined]
            "queue": offloaded.target_queue,
            "runs_inline": offloaded.runs_inline,
            "configured_queue": queue,
        }
        return wrapper

    return decorate(view) if view is not None else decorate


@dataclass(frozen=True)
class _OffloadedView:
    """One ``@offload`` view: when it runs inline, and how a request becomes a job."""

    view_func: View
    name: str
    is_async: bool
    #: Whether decorators sit below ``@offload`` whose checks the request must pass first.
    probe: bool
    queue: str | None
    optimistic: Optimistic | None
    allowed: frozenset[str] | None
    sync_if: Callable[[HttpRequest], bool] | None
    max_attempts: int | None
    atomic: bool

    @classmethod
    def register(cls, view_func: View, **options: Any) -> _OffloadedView:
        """Registers ``view_func`` as the code its jobs run, named by its module and qualname."""
        is_async = inspect.iscoroutinefunction(inspect.unwrap(view_func))
        owner = getattr(view_func, "view_class", view_func)  # as_view() functions are named by their class
        name = f"{owner.__module__}.{owner.__qualname__}"
        register_view(name, view_func, is_async, options["queue"], atomic=options["atomic"])
        probe = _install_probe(view_func, is_async)
        return cls(view_func=view_func, name=name, is_async=is_async, probe=probe, **options)

    def target_queue(self) -> str:
        return self.queue or offloaded_view_job.options.resolved_queue()

    def runs_inline(self, request: HttpRequest) -> bool:
        return (self.allowed is not None and (request.method or "").upper() not in self.allowed) or bool(
            self.sync_if and self.sync_if(request)
        )

    def accept(self, request: HttpRequest, args: tuple[Any, ...], kwargs: dict[str, Any]) -> HttpResponseBase:
        """Enqueues the request and answers 202; 503 when the queue is full, 413/400 for a
        request that cannot be stored."""
        queue_name = self.target_queue()
        require_status_urls()  # before anything is written: the response needs them
        try:
            check(queue_name, name=self.name)
            job = enqueue_request(
                self.name,
                request,
                queue=queue_name,
                owner=getattr(request, "user", None),
                max_attempts=self.max_attempts,
            )
        except QueueFull as exc:
            return busy_response(request, exc)
        except OffloadError as exc:
            return JsonResponse({"error": "request_too_large", "detail": str(exc)}, status=413)
        except SerializationError as exc:
            return JsonResponse({"error": "bad_request", "detail": str(exc)}, status=400)
        return accepted_response(request, job, self.optimistic, args, kwargs)


def _sync_wrapper(offloaded: _OffloadedView) -> View:
    view_func = offloaded.view_func

    def sync_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if offloaded.runs_inline(request):
            return view_func(request, *args, **kwargs)
        if offloaded.probe:
            token = _probing.set(True)
            try:
                return view_func(request, *args, **kwargs)  # a decorator's refusal (a redirect, a 403)
            except _ChecksPassed:
                pass
            finally:
                _probing.reset(token)
        return offloaded.accept(request, args, kwargs)

    return functools.wraps(view_func)(sync_wrapper)


def _async_wrapper(offloaded: _OffloadedView) -> View:
    view_func = offloaded.view_func
    accept = sync_to_async(offloaded.accept)

    async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if offloaded.runs_inline(request):
            return await view_func(request, *args, **kwargs)
        if offloaded.probe:
            token = _probing.set(True)
            try:
                refused = await view_func(request, *args, **kwargs)
            except _ChecksPassed:
                refused = None
            finally:
                _probing.reset(token)
            if refused is not None:
                return refused
        return await accept(request, args, kwargs)

    wrapper: View = markcoroutinefunction(functools.wraps(view_func)(async_wrapper))
    return wrapper


def _install_probe(view_func: View, is_async: bool) -> bool:
    """Make the innermost function of a decorated view stop the request-time probe.

    ``@offload`` above ``@login_required`` must run the login check in the request
    without running the view. The decorators keep the inner function in a closure
    cell; that cell gets a stand-in which, while probing, raises _ChecksPassed and
    otherwise calls the real function. Returns whether there are decorators to probe.
    """
    if not hasattr(view_func, "__wrapped__"):
        return False
    parent, inner = view_func, view_func.__wrapped__
    while hasattr(inner, "__wrapped__"):
        parent, inner = inner, inner.__wrapped__
    cells = [c for c in (getattr(parent, "__closure__", None) or ()) if _holds(c, inner)]
    if not cells:
        raise ConfigurationError(
            f"@offload cannot see inside the decorators of {view_func.__qualname__}. Put @offload directly on "
            "the view function (below the other decorators); their checks still run in the request."
        )
    if is_async:

        async def stand_in_async(*args: Any, **kwargs: Any) -> Any:
            if _probing.get():
                raise _ChecksPassed
            return await inner(*args, **kwargs)

        stand_in: Any = functools.wraps(inner)(stand_in_async)
    else:

        def stand_in_sync(*args: Any, **kwargs: Any) -> Any:
            if _probing.get():
                raise _ChecksPassed
            return inner(*args, **kwargs)

        stand_in = functools.wraps(inner)(stand_in_sync)
    for cell in cells:
        cell.cell_contents = stand_in
    return True


def _holds(cell: Any, value: Any) -> bool:
    try:
        return cell.cell_contents is value
    except ValueError:  # an empty cell
        return False


def accepted_response(
    request: HttpRequest, job: Job, optimistic: Optimistic | None, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> HttpResponseBase:
    url = status_url(job)
    response: HttpResponseBase
    if optimistic is not None:
        response = optimistic(request, job, *args, **kwargs)
        if response.status_code == 200:
            response.status_code = 202
    elif wants_html(request):
        html = render_to_string("django_asyncjobs/accepted.html", {"job": job, "status_url": url}, request=request)
        response = HttpResponse(html, status=202)
    else:
        response = JsonResponse({"id": str(job.pk), "status": job.status, "status_url": url}, status=202)
    response["Location"] = url
    return response


def offloaded_queue(view_func: Any, request: HttpRequest) -> str | None:
    """The queue an ``@offload`` view would use for ``request``; ``None`` if it would not enqueue."""
    spec = getattr(view_func, "asyncjobs_offload", None)
    if spec is None or spec["runs_inline"](request):
        return None
    return str(spec["queue"]())
