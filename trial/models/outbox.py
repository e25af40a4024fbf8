"""The transactional task outbox (trial/outbox.py): Celery tasks waiting to reach the broker."""

from django.db import models
from django.db.models import Q


class TaskOutbox(models.Model):
    """One Celery task to send, written in the transaction of the change that asks for it.

    Infrastructure, not trial data: rows are not audited. They carry a task name and ids only, and the work
    they start writes its own audited changes."""

    task = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    kwargs = models.JSONField(default=dict)
    options = models.JSONField(default=dict)  # apply_async options, e.g. the inference time limits
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["id"], condition=Q(sent_at__isnull=True), name="trial_outbox_unsent")]

    def __str__(self):
        return f"{self.task}{tuple(self.args)} ({'sent' if self.sent_at else 'unsent'})"
