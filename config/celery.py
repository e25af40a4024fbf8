"""Celery application: `default` queue for bookkeeping, `inference` queue for model work.

Application code sends tasks through the transactional outbox (trial.outbox.enqueue), not with .delay(): a task
asked for while the broker is down is published later by the relay (Celery beat, worker start, relay_outbox).
Broker timeouts and retries are in the CELERY_* settings."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# OpenMP threads (torch on the CPU) spin while they wait by default; beside any other process on the same
# cores that made inference 2-4x slower here. Must be set before torch is imported, hence here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

app = Celery("contourtrial")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("inference"))
app.autodiscover_tasks()
