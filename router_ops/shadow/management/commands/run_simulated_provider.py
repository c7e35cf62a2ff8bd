"""Run the simulated OpenAI-compatible provider (and judge) in the foreground."""

from __future__ import annotations

import logging
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from router_ops.simulation.provider_server import serve
from router_ops.simulation.routellm import DATASETS, RouteLLMFormatError, replay_book_load


def _rate(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError("must be in [0, 1]")
    return number


class Command(BaseCommand):
    help = "Serve OpenAI chat completions from the simulated scenario, or replay RouteLLM answers (--replay DIR)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8100)
        parser.add_argument("--latency-ms", type=float, default=200.0)
        parser.add_argument("--jitter-ms", type=float, default=0.0)
        parser.add_argument("--error-rate", type=_rate, default=0.0)
        parser.add_argument("--error-status", type=int, default=500)
        parser.add_argument("--retry-after", type=float, default=1.0, help="seconds, sent with 429/503")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--judge-noise", type=_rate, default=0.0)
        parser.add_argument("--judge-position-bias", type=_rate, default=0.0)
        parser.add_argument("--judge-garbage-rate", type=_rate, default=0.0)
        parser.add_argument("--api-key-env", default="", help="require Bearer <value of this env var>")
        parser.add_argument("--replay", metavar="DIR", help="RouteLLM data directory, e.g. ../shared/data/routellm")
        parser.add_argument("--datasets", default=",".join(DATASETS), help="with --replay: which datasets to load")

    def handle(self, *args, **options):
        import os

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
        replay = None
        if options["replay"]:
            directory = Path(options["replay"])
            if not directory.is_dir():
                raise CommandError(f"--replay: {directory} is not a directory")
            try:
                replay = replay_book_load(directory, [d.strip() for d in options["datasets"].split(",") if d.strip()])
            except (OSError, ValueError, RouteLLMFormatError) as exc:
                raise CommandError(f"--replay: {exc}") from None
            self.stdout.write(f"replaying {len(replay)} recorded prompts from {directory}")
        api_key = None
        if options["api_key_env"]:
            api_key = os.environ.get(options["api_key_env"])
            if not api_key:
                raise CommandError(f"--api-key-env: environment variable {options['api_key_env']} is not set")
        self.stdout.write(f"simulated provider on http://{options['host']}:{options['port']}/v1 (Ctrl-C stops)")
        self.stdout.flush()
        try:
            serve(
                port=options["port"],
                host=options["host"],
                seed=options["seed"],
                latency_ms=options["latency_ms"],
                jitter_ms=options["jitter_ms"],
                error_rate=options["error_rate"],
                error_status=options["error_status"],
                retry_after_s=options["retry_after"],
                judge_noise=options["judge_noise"],
                judge_position_bias=options["judge_position_bias"],
                judge_garbage_rate=options["judge_garbage_rate"],
                api_key=api_key,
                replay=replay,
            )
        except KeyboardInterrupt:
            pass
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from None
