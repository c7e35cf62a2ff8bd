"""Explicit input and output serializers of the sampling-policy and models APIs."""

from __future__ import annotations

from rest_framework import serializers

from router_ops.applications.models import ModelEndpoint
from router_ops.applications.ssrf import base_url_check
from router_ops.rollouts.serializers import StrictSerializer
from router_ops.shadow.models import SamplingPolicy

RATE = {"min_value": 0.0, "max_value": 1.0}


class SamplingPolicyOut(serializers.ModelSerializer):
    class Meta:
        model = SamplingPolicy
        fields = [
            "base_rate",
            "min_judged_per_segment",
            "divergence_rate",
            "reverse_rate",
            "daily_budget_usd",
            "opt_out_segments",
            "updated_at",
        ]


class SamplingPolicyIn(StrictSerializer):
    """PUT of the application's one policy; fields left out keep their values."""

    base_rate = serializers.FloatField(required=False, **RATE)
    min_judged_per_segment = serializers.IntegerField(required=False, min_value=0, max_value=1_000_000)
    divergence_rate = serializers.FloatField(required=False, **RATE)
    reverse_rate = serializers.FloatField(required=False, **RATE)
    daily_budget_usd = serializers.DecimalField(required=False, max_digits=12, decimal_places=4, min_value=0)
    opt_out_segments = serializers.ListField(child=serializers.SlugField(max_length=64), required=False, max_length=500)


ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,99}$"
TIER = r"^[a-z][a-z0-9_-]{0,31}$"
MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,99}$"


class ModelEndpointOut(serializers.ModelSerializer):
    class Meta:
        model = ModelEndpoint
        fields = [
            "id",
            "name",
            "tier",
            "provider",
            "base_url",
            "model",
            "api_key_env",
            "input_price_per_mtok",
            "output_price_per_mtok",
            "timeout_s",
            "max_concurrency",
        ]


class ModelEndpointIn(StrictSerializer):
    name = serializers.RegexField(MODEL_NAME, max_length=100)
    tier = serializers.RegexField(
        TIER,
        max_length=32,
        error_messages={"invalid": "A tier is lowercase letters, digits, - or _ (e.g. cheap, strong)."},
    )
    provider = serializers.ChoiceField(
        choices=[p for p, _ in ModelEndpoint.PROVIDERS], default=ModelEndpoint.PROVIDER_OPENAI
    )
    base_url = serializers.URLField(max_length=500)
    model = serializers.CharField(max_length=200)
    api_key_env = serializers.RegexField(
        ENV_NAME,
        required=False,
        allow_blank=True,
        default="",
        error_messages={
            "invalid": "The NAME of an environment variable (e.g. OPENAI_API_KEY), never the secret itself."
        },
    )
    input_price_per_mtok = serializers.DecimalField(max_digits=12, decimal_places=6, min_value=0, default=0)
    output_price_per_mtok = serializers.DecimalField(max_digits=12, decimal_places=6, min_value=0, default=0)
    timeout_s = serializers.FloatField(min_value=0.1, max_value=600, default=30.0)
    max_concurrency = serializers.IntegerField(min_value=1, max_value=4096, default=8)

    def validate_base_url(self, value: str) -> str:
        if not value.lower().startswith(("http://", "https://")):
            raise serializers.ValidationError("Must be an http(s) URL, e.g. https://api.openai.com/v1.")
        if "@" in value.split("//", 1)[1].split("/", 1)[0]:
            raise serializers.ValidationError("Must not carry credentials; name them in api_key_env.")
        try:
            base_url_check(value, resolve=False)  # DNS is checked at call time (the adapter)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value.rstrip("/")
