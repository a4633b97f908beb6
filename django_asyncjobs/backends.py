"""The dotted path of the ``django.tasks`` backend in ``TASKS`` settings.

``"BACKEND": "django_asyncjobs.backends.AsyncJobsBackend"``; the backend itself lives in
:mod:`django_asyncjobs.tasks.backend`.
"""

from .tasks.backend import AsyncJobsBackend

__all__ = ["AsyncJobsBackend"]
