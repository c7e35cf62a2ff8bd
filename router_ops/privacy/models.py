"""Per-application privacy settings: redaction rules, the store-text switch, retention."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from router_ops.applications.models import Application
from router_ops.privacy.redaction import BUILTIN_RULES, custom_patterns_validate

# Applications without a settings row get these (DESIGN.md §8: text expires).
DEFAULT_RETENTION_DAYS = 30
MAX_RETENTION_DAYS = 3650


def default_builtin_rules() -> list[str]:
    return list(BUILTIN_RULES)


class PrivacySettings(models.Model):
    """How an application's prompt and response text is treated. At most one per application.

    Redaction happens at ingestion, before anything is stored or mirrored to a
    shadow model (router_ops/privacy/services.py, `privacy_apply`).
    """

    application = models.OneToOneField(Application, on_delete=models.CASCADE, related_name="privacy_settings")
    store_text = models.BooleanField(
        default=True, help_text="Off: prompt, messages and response are dropped at ingestion (no shadowing possible)"
    )
    builtin_rules = ArrayField(
        models.CharField(max_length=16, choices=[(r, r) for r in BUILTIN_RULES]),
        default=default_builtin_rules,
        blank=True,
        help_text="Built-in redaction rules that apply: " + ", ".join(BUILTIN_RULES),
    )
    custom_patterns = models.JSONField(
        default=list, blank=True, help_text='Extra RE2 patterns: [{"name": "ticket", "pattern": "TCK-[0-9]{6}"}, …]'
    )
    retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        default=DEFAULT_RETENTION_DAYS,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_RETENTION_DAYS)],
        help_text="Prompt and response text older than this is purged (empty: kept forever)",
    )
    # Retention watermark: text of decisions that occurred before this was purged.
    # The next purge starts here (less a grace period) instead of rescanning history.
    text_purged_before = models.DateTimeField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "privacy settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(retention_days__isnull=True)
                | Q(retention_days__gte=1, retention_days__lte=MAX_RETENTION_DAYS),
                name="privacysettings_retention_range",
            ),
            models.CheckConstraint(
                condition=Q(builtin_rules__contained_by=list(BUILTIN_RULES)), name="privacysettings_builtin_known"
            ),
        ]

    def __str__(self) -> str:
        return f"privacy settings of {self.application.slug}"

    def clean(self) -> None:
        errors = custom_patterns_validate(self.custom_patterns)
        if errors:
            raise ValidationError({"custom_patterns": [f"{key}: {message}" for key, message in errors.items()]})
        unknown = sorted(set(self.builtin_rules) - set(BUILTIN_RULES))
        if unknown:
            raise ValidationError({"builtin_rules": [f"Unknown rule(s): {', '.join(unknown)}."]})
