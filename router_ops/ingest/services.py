"""Ingestion of routing decisions and feedback: the platform's hot path."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import psycopg
from django.db import connection, transaction

from router_ops.applications.models import DEFAULT_TIERS, Application, ModelEndpoint
from router_ops.ingest.validation import CleanDecision, CleanFeedback, decision_validate, feedback_validate
from router_ops.privacy.services import privacy_apply
from router_ops.rollouts.models import RouterVersion
from router_ops.rollups.services import rollup_mark_dirty, rollup_mark_dirty_for_decisions
from router_ops.shadow.services import shadow_sample_batch
from segments.membership import segment_matcher


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[dict] = field(default_factory=list)
    # Database ids of the rows this call inserted (for the pipeline after ingestion).
    inserted_ids: list[int] = field(default_factory=list)

    def as_response(self) -> dict:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "errors": self.errors,
        }


def application_tiers(application: Application, endpoints: list[ModelEndpoint] | None = None) -> frozenset[str]:
    """The tiers a decision may be routed to: cheap, strong, and any configured model's tier."""
    if endpoints is None:
        endpoints = list(ModelEndpoint.objects.filter(application=application))
    return frozenset(DEFAULT_TIERS) | frozenset(endpoint.tier for endpoint in endpoints)


def router_version_ids(*, application: Application, names: set[str]) -> dict[str, int]:
    """Ids of the named versions; unknown ones are created as draft (API.md)."""
    if not names:
        return {}
    existing = dict(RouterVersion.objects.filter(application=application, name__in=names).values_list("name", "id"))
    missing = names - existing.keys()
    if missing:
        # ON CONFLICT DO NOTHING: two concurrent batches may both see the version missing.
        RouterVersion.objects.bulk_create(
            [RouterVersion(application=application, name=name) for name in sorted(missing)], ignore_conflicts=True
        )
        existing.update(
            RouterVersion.objects.filter(application=application, name__in=missing).values_list("name", "id")
        )
    return existing


def _price_lookup(endpoints: list[ModelEndpoint]):
    """cost(decision) from the configured models' prices (by model name, else by tier), or None."""
    by_model = {}
    by_tier = {}
    for endpoint in endpoints:
        by_model.setdefault(endpoint.model, endpoint)
        by_model.setdefault(endpoint.name, endpoint)
        by_tier.setdefault(endpoint.tier, endpoint)

    def cost(decision: CleanDecision) -> float | None:
        if decision.prompt_tokens is None and decision.completion_tokens is None:
            return None
        endpoint = by_model.get(decision.model) or by_tier.get(decision.routed_to)
        if endpoint is None:
            return None
        return endpoint.cost_usd(decision.prompt_tokens, decision.completion_tokens)

    return cost


_INSERT_DECISIONS = """
INSERT INTO ingest_decision (
    application_id, decision_id, occurred_at, received_at, router_version_id, unit_id, routed_to, model,
    router_score, prompt, messages, response, prompt_tokens, completion_tokens, latency_ms, cost_usd,
    attributes, segment_ids, shadow_decisions
)
SELECT %(app)b, d.decision_id, d.occurred_at, now(), d.router_version_id, d.unit_id, d.routed_to, d.model,
       d.router_score, d.prompt, d.messages::jsonb, d.response, d.prompt_tokens, d.completion_tokens,
       d.latency_ms, d.cost_usd, d.attributes::jsonb, d.segment_ids::int[], d.shadow_decisions::jsonb
FROM unnest(
    %(decision_id)b::text[], %(occurred_at)b::timestamptz[], %(router_version_id)b::bigint[], %(unit_id)b::text[],
    %(routed_to)b::text[], %(model)b::text[], %(router_score)b::float8[], %(prompt)b::text[], %(messages)b::text[],
    %(response)b::text[], %(prompt_tokens)b::int[], %(completion_tokens)b::int[], %(latency_ms)b::float8[],
    %(cost_usd)b::numeric[], %(attributes)b::text[], %(segment_ids)b::text[], %(shadow_decisions)b::text[]
) AS d(decision_id, occurred_at, router_version_id, unit_id, routed_to, model, router_score, prompt, messages,
       response, prompt_tokens, completion_tokens, latency_ms, cost_usd, attributes, segment_ids, shadow_decisions)
ON CONFLICT (application_id, decision_id) DO NOTHING
RETURNING id, decision_id
"""

# Pending feedback (decision NULL) whose decision has just arrived.
_ATTACH_FEEDBACK = """
UPDATE ingest_feedback f SET decision_id = d.id
FROM ingest_decision d
WHERE f.application_id = %(app)b AND f.decision_id IS NULL AND f.decision_key = ANY(%(keys)b::text[])
  AND d.application_id = %(app)b AND d.decision_id = f.decision_key
"""


def decision_ingest_batch(*, application: Application, items: list, sample: bool = True) -> IngestResult:
    """Validate and store a batch of decisions; nothing valid is lost.

    1. Validate every item; invalid ones are reported by index and skipped.
    2. Drop repeats of a decision_id inside the batch (the first one wins).
    3. In one transaction: create unknown router versions as drafts, insert
       with ON CONFLICT DO NOTHING (a resend is a duplicate, not an error),
       and attach feedback that arrived before its decision.
    A 2xx is answered only after this commit, so an accepted decision is durable.
    `sample=False` skips shadow sampling (imports of historical traffic).
    """
    result = IngestResult()
    # One read of the configured models serves both the tier check and the prices.
    endpoints = list(ModelEndpoint.objects.filter(application=application))
    tiers = application_tiers(application, endpoints)
    clean: list[CleanDecision] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        outcome = decision_validate(item, tiers)
        if isinstance(outcome, dict):
            result.rejected += 1
            decision_id = item.get("decision_id") if isinstance(item, dict) else None
            result.errors.append(
                {
                    "index": index,
                    "decision_id": decision_id if isinstance(decision_id, str) else None,
                    "errors": outcome,
                }
            )
        elif outcome.decision_id in seen:
            result.duplicates += 1
        else:
            seen.add(outcome.decision_id)
            clean.append(outcome)
    if not clean:
        return result

    # Redaction (and the store-text switch) before anything is stored, matched or mirrored.
    clean = privacy_apply(application=application, decisions=clean)
    cost = _price_lookup(endpoints)
    costs = [d.cost_usd if d.cost_usd is not None else cost(d) for d in clean]
    # Membership of every active segment, computed here (µs per decision) so that
    # segment queries never evaluate rules; a computed cost is visible to the rules.
    match = segment_matcher(application)
    reads_cost = "cost_usd" in match.fields
    segment_ids = [
        match(replace(d, cost_usd=c) if reads_cost and c != d.cost_usd else d)
        for d, c in zip(clean, costs, strict=True)
    ]
    with transaction.atomic():
        versions = router_version_ids(application=application, names={d.router_version for d in clean})
        params = {
            "app": application.id,
            "decision_id": [d.decision_id for d in clean],
            "occurred_at": [d.occurred_at for d in clean],
            "router_version_id": [versions[d.router_version] for d in clean],
            "unit_id": [d.unit_id for d in clean],
            "routed_to": [d.routed_to for d in clean],
            "model": [d.model for d in clean],
            "router_score": [d.router_score for d in clean],
            "prompt": [d.prompt for d in clean],
            "messages": [d.messages for d in clean],
            "response": [d.response for d in clean],
            "prompt_tokens": [d.prompt_tokens for d in clean],
            "completion_tokens": [d.completion_tokens for d in clean],
            "latency_ms": [d.latency_ms for d in clean],
            "cost_usd": costs,
            "attributes": [d.attributes_json for d in clean],
            # Text array literals: PostgreSQL cannot unnest a ragged int[][].
            "segment_ids": ["{" + ",".join(map(str, ids)) + "}" for ids in segment_ids],
            "shadow_decisions": [d.shadow_decisions_json for d in clean],
        }
        connection.ensure_connection()
        # A plain psycopg cursor with %(x)b placeholders sends the arrays as binary
        # parameters. Django's cursors bind client-side, quoting every array element
        # as text: 3x slower per batch (bench/profile_ingest.py).
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(_INSERT_DECISIONS, params)
            inserted = cursor.fetchall()
            if inserted:
                cursor.execute(_ATTACH_FEEDBACK, {"app": application.id, "keys": [key for _, key in inserted]})
        if inserted and sample:
            # Sampling and the outbox rows commit with the decisions (transactional outbox).
            position = {d.decision_id: i for i, d in enumerate(clean)}
            order = [position[key] for _, key in inserted]
            shadow_sample_batch(
                application=application,
                decisions=[clean[i] for i in order],
                decision_ids=[row_id for row_id, _ in inserted],
                segment_ids=[segment_ids[i] for i in order],
            )
        if inserted:
            inserted_keys = {key for _, key in inserted}
            # Last statement of the transaction: see router_ops/rollups/services.py.
            rollup_mark_dirty(
                application_id=application.id, hours={d.occurred_at for d in clean if d.decision_id in inserted_keys}
            )
    result.accepted = len(inserted)
    result.duplicates += len(clean) - len(inserted)
    result.inserted_ids = [row_id for row_id, _ in inserted]
    return result


_INSERT_FEEDBACK = """
INSERT INTO ingest_feedback (application_id, decision_key, decision_id, feedback_id, kind, value, occurred_at, received_at)
SELECT %(app)b, f.key, d.id, f.feedback_id, f.kind, f.value, coalesce(f.occurred_at, now()), now()
FROM unnest(%(key)b::text[], %(feedback_id)b::text[], %(kind)b::text[], %(value)b::float8[], %(occurred_at)b::timestamptz[])
    AS f(key, feedback_id, kind, value, occurred_at)
LEFT JOIN ingest_decision d ON d.application_id = %(app)b AND d.decision_id = f.key
ON CONFLICT (application_id, feedback_id) WHERE feedback_id IS NOT NULL DO NOTHING
RETURNING id, decision_id
"""


def feedback_ingest_batch(*, application: Application, items: list) -> IngestResult:
    """Store feedback; feedback for an unknown decision is kept pending (decision NULL)
    and attached by `decision_ingest_batch` when the decision arrives."""
    result = IngestResult()
    clean: list[CleanFeedback] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        outcome = feedback_validate(item)
        if isinstance(outcome, dict):
            result.rejected += 1
            decision_id = item.get("decision_id") if isinstance(item, dict) else None
            result.errors.append(
                {
                    "index": index,
                    "decision_id": decision_id if isinstance(decision_id, str) else None,
                    "errors": outcome,
                }
            )
        elif outcome.feedback_id is not None and outcome.feedback_id in seen:
            result.duplicates += 1
        else:
            if outcome.feedback_id is not None:
                seen.add(outcome.feedback_id)
            clean.append(outcome)
    if not clean:
        return result
    with transaction.atomic():
        connection.ensure_connection()
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(
                _INSERT_FEEDBACK,
                {
                    "app": application.id,
                    "key": [f.decision_id for f in clean],
                    "feedback_id": [f.feedback_id for f in clean],
                    "kind": [f.kind for f in clean],
                    "value": [f.value for f in clean],
                    "occurred_at": [f.occurred_at for f in clean],
                },
            )
            inserted = cursor.fetchall()
        # Feedback counts show in the rollups of its decision's hour.
        rollup_mark_dirty_for_decisions(decision_ids={decision for _, decision in inserted if decision is not None})
    result.accepted = len(inserted)
    result.duplicates += len(clean) - len(inserted)
    return result


def feedback_attach_pending(*, batch_size: int = 5000) -> int:
    """Attach pending feedback whose decision has arrived; return how many were attached.

    Ingestion attaches in both directions, but a decision and its feedback committed
    at the same moment by two requests can each miss the other; this periodic sweep
    closes that gap. Uses the `feedback_pending` partial index.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE ingest_feedback f SET decision_id = d.id
            FROM ingest_decision d
            WHERE f.id IN (SELECT id FROM ingest_feedback WHERE decision_id IS NULL ORDER BY id LIMIT %(limit)s
                           FOR UPDATE SKIP LOCKED)
              AND d.application_id = f.application_id AND d.decision_id = f.decision_key
            RETURNING d.id
            """,
            {"limit": batch_size},
        )
        attached = [row[0] for row in cursor.fetchall()]
        rollup_mark_dirty_for_decisions(decision_ids=attached)
    return len(attached)
