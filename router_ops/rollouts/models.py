"""Router versions. Rollouts, gates, approvals and the audit log join them later."""

from __future__ import annotations

from django.db import models

from router_ops.applications.models import Application


class RouterVersion(models.Model):
    STATUS_DRAFT = "draft"
    STATUS_SHADOW = "shadow"
    STATUS_CANARY = "canary"
    STATUS_ACTIVE = "active"
    STATUS_RETIRED = "retired"
    STATUSES = [(s, s) for s in (STATUS_DRAFT, STATUS_SHADOW, STATUS_CANARY, STATUS_ACTIVE, STATUS_RETIRED)]

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="router_versions")
    name = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=STATUSES, default=STATUS_DRAFT)
    config = models.JSONField(default=dict, blank=True, help_text="Thresholds and other router settings")
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["application", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["application", "name"], name="routerversion_name_unique"),
            # At most one active version per application: the routing baseline.
            models.UniqueConstraint(
                fields=["application"], condition=models.Q(status="active"), name="routerversion_one_active"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.application.slug}:{self.name}"
