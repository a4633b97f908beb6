"""The backend for Django's Tasks framework (``django.tasks``, Django 6.0+): ``@task`` code
runs as jobs, and job rows are read back as ``TaskResult``\\s.

Owns the backend and its checks (:mod:`.backend`, public path
``django_asyncjobs.backends.AsyncJobsBackend``) and tasks as job functions
(:mod:`.jobs`). May import the foundation, models and the engine. Imported only where
``django.tasks`` exists.
"""
