"""Create what `make run` needs to show a live dashboard: an admin user, a demo
application with simulated models, and an ingest key for the traffic generator.
Idempotent: a second run reuses what exists (and the key saved in var/)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from router_ops.applications.keys import key_matches, key_prefix
from router_ops.applications.models import ApiKey, Membership, ModelEndpoint
from router_ops.applications.services import api_key_create, application_create, membership_set
from router_ops.ingest.models import Decision
from router_ops.simulation.traffic import DEFAULT_SEED, decision_id_prefix

VAR = Path(settings.BASE_DIR) / "var"


def _saved_key_valid(path: Path) -> bool:
    if not path.exists():
        return False
    key = path.read_text().strip()
    prefix = key_prefix(key)
    api_key = ApiKey.objects.filter(prefix=prefix, revoked_at__isnull=True).first() if prefix else None
    return api_key is not None and key_matches(key, api_key.key_hash, settings.API_KEY_PEPPER)


DEMO_SEGMENTS = (
    ("enterprise-scripted-api", "Enterprise scripted API", 'channel == "api" and user_tier == "enterprise"'),
    ("enterprise-ui", "Enterprise web users", 'channel == "ui" and user_tier == "enterprise"'),
    ("pro-analysis", "Pro web users", 'user_tier == "pro"'),
    ("team-api", "Team API integrations", 'channel == "api" and user_tier == "team"'),
    ("consumer", "Consumer chat", 'user_tier == "free"'),
    ("long-prompts", "Long prompts (≥ 2000 tokens)", "prompt_tokens >= 2000"),
)
DEMO_DIMENSIONS = ("channel", "user_tier", "client", "locale", "tenant")


def _demo_world(application) -> None:
    """The demo's router versions, judge, sampling policy, segments and dimensions (idempotent)."""
    from router_ops.judging.models import Judge
    from router_ops.judging.services import judge_prompt_default
    from router_ops.rollouts.actors import Actor
    from router_ops.rollouts.models import RouterVersion
    from router_ops.rollouts.services import router_version_activate_initial
    from router_ops.shadow.models import SamplingPolicy
    from segments.models import Dimension, Segment
    from segments.services import dimension_create, segment_create

    v1, _ = RouterVersion.objects.get_or_create(
        application=application, name="v1", defaults={"config": {"threshold": 0.5}, "notes": "baseline router"}
    )
    if not RouterVersion.objects.filter(application=application, status=RouterVersion.STATUS_ACTIVE).exists():
        router_version_activate_initial(version=v1, actor=Actor.system(), reason="demo baseline")
    RouterVersion.objects.get_or_create(
        application=application,
        name="v2",
        defaults={
            "status": RouterVersion.STATUS_SHADOW,
            "config": {"threshold": 0.5, "bulk_to_strong": True},
            "notes": "candidate: sends scripted BULK- prompts to the strong tier (runs as a shadow router)",
        },
    )
    prompt = judge_prompt_default()
    Judge.objects.get_or_create(
        application=application,
        name="sim-judge",
        defaults={"kind": Judge.KIND_PAIRWISE_LLM, "model": "sim-judge", "prompt_version": prompt.version},
    )
    SamplingPolicy.objects.update_or_create(
        application=application,
        defaults={
            "base_rate": 0.05,
            "min_judged_per_segment": 200,
            "divergence_rate": 0.5,
            "reverse_rate": 0.02,
            "daily_budget_usd": 5,
        },
    )
    for slug, name, rule in DEMO_SEGMENTS:
        if not Segment.objects.filter(application=application, slug=slug).exists():
            segment_create(application=application, slug=slug, name=name, rule=rule)
    for path in DEMO_DIMENSIONS:
        if not Dimension.objects.filter(application=application, path=path).exists():
            dimension_create(application=application, path=path, min_share=0.02)


class Command(BaseCommand):
    help = "Create the demo admin user, demo application, simulated model endpoints and an API key."

    def add_arguments(self, parser):
        parser.add_argument("--slug", default="demo")
        parser.add_argument("--sim-url", default="http://127.0.0.1:8100/v1", help="simulated provider base URL")
        parser.add_argument("--username", default="admin")
        parser.add_argument("--var-dir", default=str(VAR), help="where the password and key files go")

    def handle(self, *args, slug, sim_url, username, var_dir, **options):
        var = Path(var_dir)
        var.mkdir(parents=True, exist_ok=True)
        User = get_user_model()
        password_file = var / "demo_admin_password"
        user = User.objects.filter(username=username).first()
        if user is None:
            password = os.environ.get("DEMO_ADMIN_PASSWORD") or secrets.token_urlsafe(9)
            user = User.objects.create_superuser(username=username, email="", password=password)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        password = (
            password_file.read_text().strip()
            if password_file.exists()
            else "(unchanged; set with manage.py changepassword)"
        )

        application, _ = application_create(slug=slug, name="Support bot (demo)")
        membership_set(user=user, application=application, role=Membership.ROLE_ADMIN)
        for name, tier, in_price, out_price in (
            ("sim-cheap", "cheap", "0.15", "0.60"),
            ("sim-strong", "strong", "2.50", "10.00"),
            ("sim-judge", "judge", "2.50", "10.00"),
        ):
            ModelEndpoint.objects.update_or_create(
                application=application,
                name=name,
                defaults={
                    "tier": tier,
                    "base_url": sim_url,
                    "model": name,
                    "input_price_per_mtok": in_price,
                    "output_price_per_mtok": out_price,
                    "timeout_s": 30,
                    "max_concurrency": 32,
                },
            )

        _demo_world(application)

        key_file = var / "demo_api_key"
        if not _saved_key_valid(key_file):
            _, plaintext = api_key_create(
                application=application, scopes=["ingest", "read", "admin"], name="demo traffic generator"
            )
            key_file.write_text(plaintext + "\n")
            key_file.chmod(0o600)
        key = key_file.read_text().strip()

        # Demo traffic resumes after the last scenario decision stored: the generator's ids
        # are deterministic, so starting again from 0 would send only duplicates.
        prefix = decision_id_prefix(DEFAULT_SEED)
        last = (
            Decision.objects.filter(application=application, decision_id__startswith=prefix)
            .order_by("-decision_id")
            .values_list("decision_id", flat=True)
            .first()
        )
        next_index = int(last.removeprefix(prefix)) + 1 if last else 0
        (var / "demo_next_index").write_text(f"{next_index}\n")

        self.stdout.write(f"Demo admin user: {username}  password: {password}")
        self.stdout.write(f"Demo application: {slug}  API key (scopes ingest,read,admin): {key}")
        self.stdout.write(f"Demo traffic starts at scenario request {next_index}")
