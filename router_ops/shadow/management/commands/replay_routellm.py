"""Replay RouteLLM's MT-Bench or GSM8K as cheap-routed traffic through the shadow pipeline.

    manage.py replay_routellm --data ../shared/data/routellm --dataset mt_bench
    manage.py replay_routellm --data ../shared/data/routellm --dataset gsm8k --workers 16

Idempotent: a second run re-ingests nothing, runs only unfinished jobs and prints the
same table. See router_ops/simulation/replay.py for what it sets up.
"""

from __future__ import annotations

import logging

from django.core.management.base import BaseCommand, CommandError

from router_ops.simulation.replay import DEFAULT_APPLICATIONS, ReplayError, replay_report_lines, routellm_replay
from router_ops.simulation.routellm import DATASETS, RouteLLMFormatError


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be >= 1")
    return number


class Command(BaseCommand):
    help = (
        "Replay a RouteLLM dataset as traffic routed to the cheap tier: ingest, shadow every decision on the "
        "strong model (a simulated provider serving the recorded answers), judge with the recorded grades, and "
        "print strong-better / tie / weak-better per category from the stored judgments."
    )

    def add_arguments(self, parser):
        parser.add_argument("--data", required=True, metavar="DIR", help="RouteLLM data, e.g. ../shared/data/routellm")
        parser.add_argument("--dataset", required=True, choices=DATASETS)
        parser.add_argument(
            "--application",
            metavar="SLUG",
            help=f"application slug (default: {', '.join(f'{k} → {v}' for k, v in DEFAULT_APPLICATIONS.items())})",
        )
        parser.add_argument(
            "--provider-url",
            metavar="URL",
            help="a simulated provider already replaying the dataset, e.g. http://127.0.0.1:8100/v1 "
            "(`manage.py run_simulated_provider --replay DIR`); default: start one in-process on a free port",
        )
        parser.add_argument("--workers", type=_positive, default=8, help="threads running shadow + judge jobs")
        parser.add_argument(
            "--celery",
            action="store_true",
            help="leave the jobs to the running Celery workers (queues celery and judge) and wait for them",
        )
        parser.add_argument("--timeout", type=float, default=600.0, help="with --celery: seconds to wait")

    def handle(self, *args, **options):
        verbose = options["verbosity"] >= 2
        if options["verbosity"] < 3:
            # httpx logs every provider call at INFO: thousands of lines around the table.
            logging.getLogger("httpx").setLevel(logging.WARNING)

        def progress(message: str) -> None:
            if verbose:
                self.stderr.write(message)

        try:
            report = routellm_replay(
                data_dir=options["data"],
                dataset=options["dataset"],
                application_slug=options["application"],
                provider_url=options["provider_url"],
                workers=options["workers"],
                celery=options["celery"],
                timeout_s=options["timeout"],
                progress=progress,
            )
        except (ReplayError, RouteLLMFormatError, OSError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write("\n".join(replay_report_lines(report)))
        if report.table.failures:
            raise CommandError(f"{len(report.table.failures)} pair(s) have no verdict (listed above)")
