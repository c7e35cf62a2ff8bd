from celery import shared_task

from router_ops.ingest.services import feedback_attach_pending


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def feedback_attach_pending_task() -> int:
    return feedback_attach_pending()
