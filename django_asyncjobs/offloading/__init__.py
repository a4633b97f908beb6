"""Offloading: ``@offload`` turns a view's slow work into a job; the client gets 202.

Owns the decorator (:mod:`.decorator`), carrying a request to a worker and running the
view there (:mod:`.requests`), storing and serving the view's response (:mod:`.responses`),
who may see a job (:mod:`.access`) and the status and result endpoints (:mod:`.views`).

Web side: may import the foundation, models and the engine; never scheduling, the worker
or the admin.
"""
