"""Which active segments a decision belongs to, at ingestion.

    match = segment_matcher(application)      # one cheap query per call (cache stamp)
    segment_ids = match(clean_decision)       # a few µs per decision, sorted ids

The compiled matcher is cached per process and per application, keyed by a stamp
(count, max(id), max(updated_at)) of the application's segments: creating,
deleting, editing or (de)activating a segment changes the stamp, so the next
call recompiles. Backfill progress is written with `.update()`, which leaves
updated_at alone and so does not invalidate the cache.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.db.models import Count, Max

from router_ops.applications.models import Application
from segments import dsl
from segments.models import Segment
from segments.predicate import compile_matcher

logger = logging.getLogger(__name__)

_cache: dict[int, tuple[tuple, Callable[[object], list[int]]]] = {}
_lock = threading.Lock()


def _stamp(application_id: int) -> tuple:
    row = Segment.objects.filter(application_id=application_id).aggregate(
        n=Count("id"), top=Max("id"), updated=Max("updated_at")
    )
    return (row["n"], row["top"], row["updated"])


def segment_matcher(application: Application | int) -> Callable[[object], list[int]]:
    """A function decision → sorted ids of the application's active segments it matches.

    A decision is a `CleanDecision`, a dict with the decision's fields and
    `attributes`, or a `Decision` instance. `matcher.fields` names the decision
    fields the rules read (e.g. to know whether a computed cost_usd matters).
    """
    application_id = application if isinstance(application, int) else application.id
    stamp = _stamp(application_id)
    cached = _cache.get(application_id)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    rules = []
    for segment_id, rule in (
        Segment.objects.filter(application_id=application_id, active=True).order_by("id").values_list("id", "rule")
    ):
        try:
            rules.append((segment_id, dsl.parse(rule)))
        except dsl.RuleError as exc:  # saved rules are validated; a grammar change could still break one
            logger.error("segment %s has an invalid rule and is skipped: %s", segment_id, exc)
    matcher = compile_matcher(rules)
    with _lock:
        _cache[application_id] = (stamp, matcher)
    return matcher


def segment_matcher_clear() -> None:
    """Forget every compiled matcher (tests, benchmarks)."""
    with _lock:
        _cache.clear()
