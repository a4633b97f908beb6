"""Prometheus metrics: a view to mount (``path("metrics/", include("django_asyncjobs.metrics.urls"))``).

- :mod:`.families`: every metric, defined once (name, type, labels, help);
- :mod:`.readings`: what a scrape reads (the counters in Redis, the queues' state, live
  workers, running rows), without ``prometheus_client``;
- :mod:`.collector`: those readings as ``prometheus_client`` metric families, on a fresh
  registry per scrape;
- :mod:`.access`: who may read it (a permission, a bearer token, an IP allow-list);
- :mod:`.views`, :mod:`.urls`: the view.

The counters are written by the engine (:mod:`django_asyncjobs.engine.tallies`), in every
process, with or without ``prometheus_client``; only :mod:`.collector` and the view need
it (``pip install 'django-asyncjobs[metrics]'``; without it they raise
:class:`~django_asyncjobs.exceptions.MetricsUnavailable`).

May import the foundation, :mod:`django_asyncjobs.models` and :mod:`django_asyncjobs.engine`.
"""
