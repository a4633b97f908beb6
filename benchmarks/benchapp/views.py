"""Views for ``benchmarks/bench_web.py`` (routed by ``benchmarks/urls.py``).

Every view that does "work" does the same trivially cheap work (``cheap_work``),
so that what differs between them is only how the request is answered: inline,
or as a background job behind ``202 Accepted``.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

from django_asyncjobs import offload

#: Queue without limits (the app's default configuration).
DEFAULT_QUEUE = "default"
#: Queue with ``QUEUE_LIMITS`` that the benchmark never reaches.
LIMITED_QUEUE = "web"
#: Queue with ``QUEUE_LIMITS`` that the benchmark keeps exceeded.
SATURATED_QUEUE = "busy"


def hello(request: HttpRequest) -> HttpResponse:
    """A trivial view: not offloaded, on no guarded path."""
    return HttpResponse(b"ok", content_type="text/plain")


def cheap_work(request: HttpRequest) -> JsonResponse:
    """The body shared by the inline and the offloaded views: next to nothing."""
    return JsonResponse({"ok": True, "method": request.method, "path": request.path})


def inline(request: HttpRequest) -> JsonResponse:
    """``cheap_work`` in the request: 200."""
    return cheap_work(request)


@offload(queue=DEFAULT_QUEUE)  # type: ignore[untyped-decorator]  # offload() returns Any
def offloaded(request: HttpRequest) -> JsonResponse:
    """``cheap_work`` on a worker, on a queue without limits: 202 with the status URL."""
    return cheap_work(request)


@offload(queue=LIMITED_QUEUE)  # type: ignore[untyped-decorator]  # offload() returns Any
def offloaded_limited(request: HttpRequest) -> JsonResponse:
    """``cheap_work`` on a worker, on a queue with limits that are not reached: 202."""
    return cheap_work(request)


@offload(queue=SATURATED_QUEUE)  # type: ignore[untyped-decorator]  # offload() returns Any
def offloaded_saturated(request: HttpRequest) -> JsonResponse:
    """``cheap_work`` on a worker, on a saturated queue: 503 with Retry-After."""
    return cheap_work(request)
