from django.db import models


class Run(models.Model):
    """One row per real execution of :func:`tests.scale.jobs.record_run`: how runs are counted."""

    job_id = models.UUIDField(db_index=True)
    attempt = models.PositiveIntegerField()
    host = models.CharField(max_length=20)
    pid = models.PositiveIntegerField()
    #: ``time.time()`` when the function began (all namespaces share the machine's clock).
    began = models.FloatField()

    def __str__(self) -> str:
        return f"{self.job_id} attempt {self.attempt} on {self.host}"
