"""Applications and who may act on them: API keys for machines, memberships for people."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

DEFAULT_TIERS = ("cheap", "strong")


def new_salt() -> str:
    return secrets.token_hex(16)


class Application(models.Model):
    """A routed product endpoint (e.g. "support-bot"). Everything else is scoped by it."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200, blank=True)
    # Salt of the sticky canary assignment (API.md, routing config); public by design.
    salt = models.CharField(max_length=64, default=new_salt)
    created_at = models.DateTimeField(auto_now_add=True)
    # Segment status thresholds on the regret rate (see router_ops/stats/summaries.py):
    # alert when the interval's lower bound exceeds `regret_alert`, watch when the estimate exceeds `regret_watch`.
    regret_watch = models.FloatField(default=0.10, validators=[MinValueValidator(0), MaxValueValidator(1)])
    regret_alert = models.FloatField(default=0.20, validators=[MinValueValidator(0), MaxValueValidator(1)])
    min_effective_samples = models.PositiveIntegerField(
        default=30, help_text="Below this effective sample size a segment is 'insufficient data'"
    )

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def display_name(self) -> str:
        return self.name or self.slug


class ApiKey(models.Model):
    """A machine credential. Only an HMAC of the key is stored; the key is shown once.

    The key looks like `ro_<prefix>_<secret>`; the prefix is stored in clear so a
    key can be found (and recognised by a person) without its secret.
    """

    SCOPE_INGEST = "ingest"
    SCOPE_READ = "read"
    SCOPE_ADMIN = "admin"
    SCOPES = (SCOPE_INGEST, SCOPE_READ, SCOPE_ADMIN)

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    scopes = ArrayField(models.CharField(max_length=16, choices=[(s, s) for s in SCOPES]))
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(scopes__contained_by=["ingest", "read", "admin"]) & ~Q(scopes=[]),
                name="apikey_scopes_known",
            )
        ]

    def __str__(self) -> str:
        return f"ro_{self.prefix}_… ({self.application.slug})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


class Membership(models.Model):
    """A person's role in one application (dashboard, browsable API, approvals)."""

    ROLE_VIEWER = "viewer"
    ROLE_OPERATOR = "operator"
    ROLE_APPROVER = "approver"
    ROLE_ADMIN = "admin"
    ROLES = [(r, r) for r in (ROLE_VIEWER, ROLE_OPERATOR, ROLE_APPROVER, ROLE_ADMIN)]

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=ROLES, default=ROLE_VIEWER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "application"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} · {self.application} · {self.role}"


class ModelEndpoint(models.Model):
    """A model the application can call. The secret is named by an env var, never stored."""

    PROVIDER_OPENAI = "openai"
    PROVIDERS = [(PROVIDER_OPENAI, "OpenAI-compatible chat completions")]

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="models")
    name = models.CharField(max_length=100)
    tier = models.CharField(max_length=32)
    provider = models.CharField(max_length=16, choices=PROVIDERS, default=PROVIDER_OPENAI)
    base_url = models.URLField(max_length=500)
    model = models.CharField(max_length=200)
    api_key_env = models.CharField(
        max_length=100, blank=True, help_text="Name of the environment variable holding the secret"
    )
    input_price_per_mtok = models.DecimalField(
        max_digits=12, decimal_places=6, default=0, validators=[MinValueValidator(0)]
    )
    output_price_per_mtok = models.DecimalField(
        max_digits=12, decimal_places=6, default=0, validators=[MinValueValidator(0)]
    )
    timeout_s = models.FloatField(default=30.0, validators=[MinValueValidator(0.1)])
    max_concurrency = models.PositiveIntegerField(default=8, validators=[MinValueValidator(1)])

    class Meta:
        ordering = ["application", "tier", "name"]
        constraints = [models.UniqueConstraint(fields=["application", "name"], name="modelendpoint_name_unique")]

    def __str__(self) -> str:
        return f"{self.name} ({self.tier})"

    def cost_usd(self, prompt_tokens: int | None, completion_tokens: int | None) -> float:
        return (
            (prompt_tokens or 0) * float(self.input_price_per_mtok)
            + (completion_tokens or 0) * float(self.output_price_per_mtok)
        ) / 1_000_000


class RateWindow(models.Model):
    """Requests counted for one throttle key in one fixed window (access.KeyRateThrottle).

    In PostgreSQL, so every web process counts against the same limit; one row per
    active key (a key's older windows are deleted when its next window opens)."""

    key = models.CharField(max_length=200)
    window_start = models.BigIntegerField(help_text="Unix time (s) the window opened")
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "window_start"], name="ratewindow_unique")]

    def __str__(self) -> str:
        return f"{self.key} @ {self.window_start}: {self.count}"
