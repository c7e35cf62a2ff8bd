"""The naive ingestion path that bench/ingest.py compares against.

What a first DRF version would look like: one decision per request, a plain
ModelSerializer (DRF's JSON parser, field validation, `Model.save()` → one
INSERT in its own autocommit transaction), the same API-key authentication and
ingest-scope permission as the fast path. No idempotency handling, no batching.
"""

from __future__ import annotations

from rest_framework import generics, serializers

from router_ops.applications.access import CanIngest, request_application
from router_ops.ingest.models import Decision
from router_ops.rollouts.models import RouterVersion


class ShadowDecisionSerializer(serializers.Serializer):
    router_version = serializers.CharField(max_length=64)
    routed_to = serializers.CharField(max_length=32)
    router_score = serializers.FloatField(required=False)


class ApplicationRouterVersionField(serializers.SlugRelatedField):
    """A router version of the request's application, by name."""

    def get_queryset(self):
        return RouterVersion.objects.filter(application=request_application(self.context["request"]))


class NaiveDecisionSerializer(serializers.ModelSerializer):
    router_version = ApplicationRouterVersionField(slug_field="name")
    shadow_decisions = ShadowDecisionSerializer(many=True, required=False)

    class Meta:
        model = Decision
        fields = [
            "decision_id",
            "occurred_at",
            "router_version",
            "unit_id",
            "routed_to",
            "model",
            "router_score",
            "prompt",
            "messages",
            "response",
            "prompt_tokens",
            "completion_tokens",
            "latency_ms",
            "cost_usd",
            "attributes",
            "shadow_decisions",
        ]


class NaiveDecisionCreateView(generics.CreateAPIView):
    serializer_class = NaiveDecisionSerializer
    permission_classes = [CanIngest]

    def perform_create(self, serializer):
        serializer.save(application=request_application(self.request))
