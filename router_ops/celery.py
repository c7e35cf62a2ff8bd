"""The Celery app (`celery -A router_ops worker`) and the one beat schedule."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "router_ops.settings")

app = Celery("router_ops")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def db_connections_tidy(task=None, **kwargs) -> None:
    """What Django does around a request: drop this thread's connections that are broken
    (e.g. PostgreSQL restarted) or older than CONN_MAX_AGE; keep the healthy ones.
    An eager task runs inside its caller's transaction: leave that alone."""
    from django.db import connections

    if task is not None and getattr(task.request, "is_eager", False):
        return
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close_if_unusable_or_obsolete()


# Periodic work lives here and nowhere else (STYLE.md rule 9).
app.conf.beat_schedule = {
    "shadow-outbox-relay": {
        "task": "shadow.outbox_relay",
        "schedule": 2.0,
        "options": {"queue": "celery", "expires": 10},
    },
    "rollups-refresh": {"task": "router_ops.rollups.tasks.rollups_refresh", "schedule": 10.0},
    "feedback-attach-pending": {"task": "router_ops.ingest.tasks.feedback_attach_pending_task", "schedule": 60.0},
    "alerts-evaluate": {"task": "router_ops.alerts.tasks.alerts_evaluate_task", "schedule": 60.0},
    "rollouts-sweep": {"task": "router_ops.rollouts.tasks.rollouts_sweep_task", "schedule": 60.0},
    "retention-purge": {"task": "router_ops.privacy.tasks.retention_purge_task", "schedule": 3600.0},
    "discovery-sweep": {"task": "segments.tasks.discovery_sweep_task", "schedule": 3600.0},
    "segment-backfill-sweep": {"task": "segments.tasks.segment_backfill_sweep_task", "schedule": 300.0},
}
