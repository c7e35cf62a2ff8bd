from celery import shared_task

from router_ops.rollups.services import rollup_refresh


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def rollups_refresh(batch_size: int = 200) -> int:
    """Recompute dirty hours (run by beat; overlapping runs share the work via SKIP LOCKED)."""
    return rollup_refresh(batch_size=batch_size)
