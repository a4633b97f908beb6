from django.db import models


class Call(models.Model):
    """One row per real execution of a test job."""

    label = models.CharField(max_length=100)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.label
