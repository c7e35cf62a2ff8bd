"""Replay of the RouteLLM evaluation files as production traffic, through the real pipeline.

Every recorded question (MT-Bench: every question-turn; GSM8K: every problem) becomes
a decision routed to the cheap tier, answered with the cheap model's recorded answer.
From there the platform runs exactly as in production: ingestion samples it (the
application's policy shadows every cheap-routed decision), the shadow job calls the
strong model over HTTP (a simulated provider in replay mode serving the recorded strong
answer), and the pair is judged by a `recorded` judge with the recorded grades. The
outcome table is then read back from the stored judgments, so it says what the
platform measured, not what the loader knows.

Interfaces: `manage.py replay_routellm` (router_ops/shadow/management/commands/).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import connections
from django.db.models import Count, Sum
from django.test.utils import override_settings

from router_ops.applications.models import Application, ModelEndpoint
from router_ops.applications.services import application_create
from router_ops.ingest.models import Decision
from router_ops.ingest.services import decision_ingest_batch
from router_ops.judging.models import Judge, Judgment
from router_ops.judging.services import pair_judge_execute
from router_ops.shadow import outbox
from router_ops.shadow.models import ShadowRun, ShadowSample
from router_ops.shadow.services import sampling_policy_update, shadow_run_execute
from router_ops.simulation.provider_server import token_count
from router_ops.simulation.routellm import (
    CHEAP_MODEL,
    DATASETS,
    STRONG_MODEL,
    Gsm8kRecord,
    MtBenchRecord,
    gsm8k_load,
    mt_bench_load,
)

logger = logging.getLogger(__name__)

DEFAULT_APPLICATIONS = {"mt_bench": "routellm-mtbench", "gsm8k": "routellm-gsm8k"}
ROUTER_VERSION = "routellm-replay-all-cheap"
JUDGE_NAME = "routellm-recorded"
INGEST_BATCH = 500

# List prices in USD per million tokens (input, output), as published when the
# RouteLLM evaluation was recorded (2024): OpenAI's pricing page for
# gpt-4-1106-preview (GPT-4 Turbo), Together AI's serverless pricing for
# Mixtral-8x7B-Instruct-v0.1. Edit the endpoints (/api/v1/models/) to use your own.
PRICES_PER_MTOK = {
    "strong": (Decimal("10.00"), Decimal("30.00")),
    "cheap": (Decimal("0.60"), Decimal("0.60")),
}
MODEL_BY_TIER = {"strong": STRONG_MODEL, "cheap": CHEAP_MODEL}
ENDPOINT_CONCURRENCY = 64
# Large enough that the budget never refuses a replay call (the whole GSM8K replay
# costs about $15 at the prices above).
REPLAY_DAILY_BUDGET_USD = Decimal("100000")

# Verdict of a (primary = cheap, shadow = strong) pair → the README's columns.
STRONG_BETTER = "strong_better"
TIE = "tie"
WEAK_BETTER = "weak_better"
FAILED = "failed"
COLUMN_BY_VERDICT = {
    Judgment.SHADOW_BETTER: STRONG_BETTER,
    Judgment.EQUIVALENT: TIE,
    Judgment.PRIMARY_BETTER: WEAK_BETTER,
}
ALL = "all"


class ReplayError(Exception):
    """The replay cannot start or finish (bad data directory, provider, timeout)."""


Record = MtBenchRecord | Gsm8kRecord


def replay_records_load(*, data_dir: str | Path, dataset: str) -> list[Record]:
    if dataset == "mt_bench":
        return list(mt_bench_load(data_dir))
    if dataset == "gsm8k":
        return list(gsm8k_load(data_dir))
    raise ReplayError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")


def replay_decision_id(dataset: str, record: Record) -> str:
    if isinstance(record, MtBenchRecord):
        return f"{dataset}-q{record.question_id}-t{record.turn}"
    return f"{dataset}-{record.index}"


def replay_decision_items(*, dataset: str, records: list[Record], occurred_at: datetime) -> list[dict]:
    """The records as decisions routed to the cheap tier (the ingestion API's item shape).

    MT-Bench turn 2 carries the conversation as messages: the first user turn, the
    cheap model's recorded answer to it (the conversation the cheap model really had),
    and the second user turn. Its response is the cheap model's answer to turn 2.
    """
    first_answers = {r.question_id: r.cheap_answer for r in records if isinstance(r, MtBenchRecord) and r.turn == 1}
    stamp = occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    items = []
    for record in records:
        item: dict = {
            "decision_id": replay_decision_id(dataset, record),
            "occurred_at": stamp,
            "router_version": ROUTER_VERSION,
            "routed_to": "cheap",
            "model": CHEAP_MODEL,
            "response": record.cheap_answer,
            "completion_tokens": token_count(record.cheap_answer),
        }
        if isinstance(record, MtBenchRecord):
            item["unit_id"] = f"{dataset}-q{record.question_id}"
            item["attributes"] = {
                "category": record.category,
                "turn": record.turn,
                "dataset": dataset,
                "question_id": record.question_id,
            }
            if record.turn == 1:
                item["prompt"] = record.prompt
                item["prompt_tokens"] = token_count(record.prompt)
            else:
                messages = []
                for turn, text in enumerate(record.turns, start=1):
                    messages.append({"role": "user", "content": text})
                    if turn < record.turn:
                        messages.append({"role": "assistant", "content": first_answers[record.question_id]})
                item["messages"] = messages
                item["prompt_tokens"] = sum(token_count(m["content"]) for m in messages)
        else:
            item["unit_id"] = f"{dataset}-{record.index}"
            item["attributes"] = {"category": record.category, "dataset": dataset, "index": record.index}
            item["prompt"] = record.prompt
            item["prompt_tokens"] = token_count(record.prompt)
        items.append(item)
    return items


def replay_longest_answer(records: list[Record]) -> int:
    """The longest recorded answer, in the simulated provider's tokens (4 characters each)."""
    return max(token_count(record.answer(tier)) for record in records for tier in ("cheap", "strong"))


def replay_max_tokens(records: list[Record]) -> int:
    """A completion limit that cuts no recorded answer, so the shadow answer is the
    recorded one and its recorded grade applies. (Five MT-Bench GPT-4 answers are longer
    than the default 1024 simulated tokens; the provider would cut them at max_tokens
    and the cut text has no recorded grade.)"""
    return max(int(getattr(settings, "SHADOW_MAX_TOKENS", 1024)), replay_longest_answer(records))


# -- setup ----------------------------------------------------------------------------------


def replay_application_setup(
    *, slug: str, dataset: str, data_dir: str | Path, provider_url: str
) -> tuple[Application, Judge]:
    """Create or re-point everything the replay needs. Idempotent.

    1. The application (by slug).
    2. One ModelEndpoint per tier, named after the real model, pointing at the
       provider (its URL changes when the provider is started in-process).
    3. The sampling policy: every cheap-routed decision shadowed (base rate 1), no
       reverse sampling, a budget that never refuses a replay call.
    4. The recorded judge (RouteLLM grades of this dataset) as the only active judge.
    """
    application, _ = application_create(slug=slug, name=f"RouteLLM replay: {dataset}")
    for tier, model in MODEL_BY_TIER.items():
        input_price, output_price = PRICES_PER_MTOK[tier]
        ModelEndpoint.objects.update_or_create(
            application=application,
            name=model,
            defaults={
                "tier": tier,
                "provider": ModelEndpoint.PROVIDER_OPENAI,
                "base_url": provider_url,
                "model": model,
                "api_key_env": "",
                "input_price_per_mtok": input_price,
                "output_price_per_mtok": output_price,
                "timeout_s": 30.0,
                "max_concurrency": ENDPOINT_CONCURRENCY,
            },
        )
    sampling_policy_update(
        application=application,
        base_rate=1.0,
        reverse_rate=0.0,
        divergence_rate=0.0,
        min_judged_per_segment=0,
        daily_budget_usd=REPLAY_DAILY_BUDGET_USD,
        opt_out_segments=[],
    )
    config = {"source": "routellm", "data_dir": str(Path(data_dir).resolve()), "datasets": [dataset]}
    judge, _ = Judge.objects.update_or_create(
        application=application,
        name=JUDGE_NAME,
        defaults={"kind": Judge.KIND_RECORDED, "config": config, "active": True, "model": "", "prompt_version": ""},
    )
    Judge.objects.filter(application=application, active=True).exclude(pk=judge.pk).update(active=False)
    return application, judge


# -- the pipeline ---------------------------------------------------------------------------


@dataclass
class IngestCounts:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[dict] = field(default_factory=list)


def replay_ingest(*, application: Application, items: list[dict]) -> IngestCounts:
    """Ingest through the production service, which samples and writes the outbox rows."""
    counts = IngestCounts()
    for start in range(0, len(items), INGEST_BATCH):
        result = decision_ingest_batch(application=application, items=items[start : start + INGEST_BATCH])
        counts.accepted += result.accepted
        counts.duplicates += result.duplicates
        counts.rejected += result.rejected
        counts.errors.extend(result.errors)
    return counts


def _open_sample_ids(application: Application) -> list[int]:
    """Samples whose shadow or judge job has not finished (a re-run resumes these)."""
    return list(
        ShadowSample.objects.filter(application=application)
        .exclude(status=ShadowSample.FAILED)
        .exclude(judge_status__in=[ShadowSample.DONE, ShadowSample.FAILED])
        .order_by("id")
        .values_list("id", flat=True)
    )


def _pair_run(sample_id: int) -> tuple[str, str]:
    shadow = shadow_run_execute(sample_id=sample_id)
    judged = pair_judge_execute(sample_id=sample_id)
    return shadow.status, judged.status


def replay_pipeline_run_sync(
    *, application: Application, workers: int, progress: Callable[[int, int], None] | None = None
) -> Counter:
    """Be the worker: run every open sample's shadow job, then its judge job, on `workers`
    threads (each with its own database connection), through the same services the
    Celery tasks call. Returns counts of (shadow status, judge status)."""
    ids = _open_sample_ids(application)
    jobs: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    for sample_id in ids:
        jobs.put(sample_id)
    outcomes: Counter = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            while True:
                sample_id = jobs.get()
                if sample_id is None:
                    return
                try:
                    statuses = _pair_run(sample_id)
                except Exception as exc:  # a bug, not an outcome: stop and surface it
                    logger.exception("replay: sample %s failed", sample_id)
                    with lock:
                        errors.append(exc)
                    return
                with lock:
                    outcomes[statuses] += 1
                    done = sum(outcomes.values())
                if progress is not None and (done % 100 == 0 or done == len(ids)):
                    progress(done, len(ids))
        finally:
            # Each thread's connection is its own; close it so nothing outlives the run.
            connections.close_all()

    threads = [threading.Thread(target=work, name=f"replay-{n}", daemon=True) for n in range(max(1, workers))]
    for thread in threads:
        jobs.put(None)
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise ReplayError(f"{len(errors)} sample(s) raised: {errors[0]!r}")
    return outcomes


def replay_pipeline_wait_celery(*, application: Application, timeout_s: float, poll_s: float = 1.0) -> Counter:
    """Let the Celery workers do it: relay the outbox now (beat would within seconds),
    then wait until every sample of the application is finished or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        outbox.outbox_relay()
        open_ids = _open_sample_ids(application)
        if not open_ids:
            break
        if time.monotonic() > deadline:
            raise ReplayError(
                f"{len(open_ids)} sample(s) still unfinished after {timeout_s:g}s: are a worker "
                "(queues celery and judge) and the broker running?"
            )
        time.sleep(poll_s)
    rows = ShadowSample.objects.filter(application=application).values_list("status", "judge_status")
    return Counter(rows)


# -- the outcome table, read from the stored judgments ------------------------------------


@dataclass
class ReplayTable:
    rows: dict[str, Counter]  # category (and "all") → column → count
    failures: list[tuple[str, str]]  # (decision id, reason) of every pair without a verdict

    def categories(self) -> list[str]:
        names = [name for name in self.rows if name != ALL]
        return sorted(names, key=lambda n: (-self.rows[n][STRONG_BETTER], self.rows[n][TIE], n)) + [ALL]


def replay_outcome_table(*, application: Application, judge: Judge, dataset: str) -> ReplayTable:
    """Per category: the recorded judge's verdicts on the replayed decisions, by column.

    Counts come from Judgment rows (verdict shadow_better = strong better, equivalent =
    tie, primary_better = weak better); a decision whose pair has no verdict (shadow
    failed, judge failed, or not run yet) counts as failed, with its reason listed.
    """
    decisions = Decision.objects.filter(application=application, attributes__dataset=dataset)
    rows: dict[str, Counter] = {}

    def add(category: str, column: str, count: int) -> None:
        for key in (category, ALL):
            rows.setdefault(key, Counter())[column] += count

    totals = decisions.values_list("attributes__category").annotate(n=Count("id"))
    for category, count in totals:
        add(category, "n", count)
    judged = (
        Judgment.objects.filter(judge=judge, sample__decision__in=decisions, status=Judgment.OK)
        .values_list("sample__decision__attributes__category", "verdict")
        .annotate(n=Count("id"))
    )
    for category, verdict, count in judged:
        add(category, COLUMN_BY_VERDICT[verdict], count)
    for row in rows.values():
        row[FAILED] = row["n"] - row[STRONG_BETTER] - row[TIE] - row[WEAK_BETTER]
    failures = []
    judged_ids = Judgment.objects.filter(judge=judge, status=Judgment.OK).values("sample__decision_id")
    unjudged = (
        decisions.exclude(id__in=judged_ids)
        .order_by("id")
        .values_list("decision_id", "shadow_sample__status", "shadow_sample__error", "shadow_sample__judge_error")
    )
    for decision_id, status, shadow_error, judge_error in unjudged:
        if status is None:
            reason = "not sampled"
        elif status == ShadowSample.FAILED:
            reason = f"shadow failed: {shadow_error}"
        else:
            reason = judge_error or f"not judged yet (shadow {status})"
        failures.append((decision_id, reason))
    return ReplayTable(rows=rows, failures=failures)


def replay_costs(*, application: Application, dataset: str) -> dict:
    runs = ShadowRun.objects.filter(
        sample__application=application, sample__decision__attributes__dataset=dataset
    ).aggregate(n=Count("id"), cost=Sum("cost_usd"), latency=Sum("latency_ms"))
    return {
        "shadow_runs": runs["n"],
        "shadow_cost_usd": runs["cost"] or Decimal(0),
        "mean_latency_ms": (runs["latency"] or 0.0) / runs["n"] if runs["n"] else 0.0,
    }


# -- the whole replay ---------------------------------------------------------------------


@dataclass
class ReplayReport:
    dataset: str
    application: Application
    provider_url: str
    ingest: IngestCounts
    sampled: int
    outcomes: Counter
    table: ReplayTable
    costs: dict
    elapsed_s: float
    notes: list[str] = field(default_factory=list)


@contextmanager
def _provider(data_dir: str | Path, dataset: str, provider_url: str | None) -> Iterator[str]:
    if provider_url:
        yield provider_url.rstrip("/")
        return
    from router_ops.simulation.provider_server import start_in_thread
    from router_ops.simulation.routellm import replay_book_load

    server, base_url = start_in_thread(port=0, replay=replay_book_load(data_dir, [dataset]))
    try:
        yield base_url
    finally:
        server.stop()


def routellm_replay(
    *,
    data_dir: str | Path,
    dataset: str,
    application_slug: str | None = None,
    provider_url: str | None = None,
    workers: int = 8,
    celery: bool = False,
    timeout_s: float = 600.0,
    progress: Callable[[str], None] | None = None,
) -> ReplayReport:
    """Replay one RouteLLM dataset through the platform and read back the outcome table.

    1. Load the records (the files stay where they are).
    2. Start a simulated provider in replay mode on a free port (unless `provider_url`
       names one already serving the dataset) and set the application up against it.
    3. Ingest every record as a cheap-routed decision; ingestion samples (π = 1) and
       writes the outbox rows in the same transaction. Re-running is a no-op here
       (decision ids are idempotency keys).
    4. Shadow and judge every open sample: synchronously on `workers` threads through
       the task services, or (`celery=True`) by the Celery workers via the outbox relay.
    5. Read the per-category table from the stored judgments.
    """
    say = progress or (lambda message: None)
    started = time.perf_counter()
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ReplayError(f"{data_dir} is not a directory (expected the RouteLLM data, e.g. ../shared/data/routellm)")
    records = replay_records_load(data_dir=data_dir, dataset=dataset)
    slug = application_slug or DEFAULT_APPLICATIONS[dataset]
    notes = []
    limit = int(getattr(settings, "SHADOW_MAX_TOKENS", 1024))
    longest = replay_longest_answer(records)
    if celery and longest > limit:
        notes.append(
            f"note: the workers' completion limit (SHADOW_MAX_TOKENS = {limit}) is below the longest recorded "
            f"answer ({longest} simulated tokens): cut answers have no recorded grade and count as failed. "
            "Run without --celery, or give the workers a larger SHADOW_MAX_TOKENS."
        )
    with _provider(data_dir, dataset, provider_url) as base_url:
        application, judge = replay_application_setup(
            slug=slug, dataset=dataset, data_dir=data_dir, provider_url=base_url
        )
        say(f"{len(records)} {dataset} records; application {slug}; provider {base_url}")
        # In synchronous mode this process is the worker: no relay nudges to the broker.
        # (SHADOW_TASK_SEND: see the note on shadow/services._judge_send in the report.)
        with override_settings(
            SHADOW_RELAY_NUDGE=celery, SHADOW_TASK_SEND=celery, SHADOW_MAX_TOKENS=replay_max_tokens(records)
        ):
            items = replay_decision_items(dataset=dataset, records=records, occurred_at=datetime.now(UTC))
            ingest = replay_ingest(application=application, items=items)
            if ingest.rejected:
                raise ReplayError(f"{ingest.rejected} decision(s) rejected at ingestion: {ingest.errors[:3]}")
            say(f"ingested {ingest.accepted} new decisions ({ingest.duplicates} already there)")
            if celery:
                outcomes = replay_pipeline_wait_celery(application=application, timeout_s=timeout_s)
            else:
                outcomes = replay_pipeline_run_sync(
                    application=application,
                    workers=workers,
                    progress=lambda done, total: say(f"shadowed and judged {done}/{total}"),
                )
    sampled = ShadowSample.objects.filter(application=application, decision__attributes__dataset=dataset).count()
    return ReplayReport(
        dataset=dataset,
        application=application,
        provider_url=base_url,
        ingest=ingest,
        sampled=sampled,
        outcomes=outcomes,
        table=replay_outcome_table(application=application, judge=judge, dataset=dataset),
        costs=replay_costs(application=application, dataset=dataset),
        elapsed_s=time.perf_counter() - started,
        notes=notes,
    )


def replay_report_lines(report: ReplayReport) -> list[str]:
    """The table as the command prints it."""
    table = report.table
    header = f"{'category':<12} {'strong better':>13} {'tie':>5} {'weak better':>11} {'failed':>6} {'n':>5}"
    lines = [
        f"RouteLLM {report.dataset}: {report.table.rows.get(ALL, Counter())['n']} decisions routed to the cheap tier "
        f"({CHEAP_MODEL}), {report.sampled} shadowed on {STRONG_MODEL}, judged with the recorded grades",
        f"application {report.application.slug}; verdicts read from the stored judgments",
        "",
        header,
        "-" * len(header),
    ]
    for name in table.categories():
        row = table.rows[name]
        if name == ALL:
            lines.append("-" * len(header))
        lines.append(
            f"{name:<12} {row[STRONG_BETTER]:>13} {row[TIE]:>5} {row[WEAK_BETTER]:>11} {row[FAILED]:>6} {row['n']:>5}"
        )
    lines.append("")
    if table.failures:
        lines.append(f"judge failures: {len(table.failures)}")
        lines.extend(f"  {decision_id}: {reason}" for decision_id, reason in table.failures)
    else:
        lines.append("judge failures: none")
    costs = report.costs
    lines.append(
        f"shadow calls: {costs['shadow_runs']}, cost ${costs['shadow_cost_usd']:.4f} at list prices, "
        f"mean latency {costs['mean_latency_ms']:.1f} ms; elapsed {report.elapsed_s:.1f} s"
    )
    lines.extend(report.notes)
    return lines
