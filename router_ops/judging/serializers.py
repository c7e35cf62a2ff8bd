"""Explicit input and output serializers of the judges API."""

from __future__ import annotations

from rest_framework import serializers

from router_ops.judging.models import Judge
from router_ops.rollouts.serializers import StrictSerializer

JUDGE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"


class JudgeOut(serializers.ModelSerializer):
    class Meta:
        model = Judge
        fields = ["id", "name", "kind", "model", "prompt_version", "config", "active", "created_at"]


class JudgeIn(StrictSerializer):
    name = serializers.RegexField(JUDGE_NAME, max_length=100)
    kind = serializers.ChoiceField(choices=[k for k, _ in Judge.KINDS])
    model = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    prompt_version = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    config = serializers.DictField(required=False, default=dict)
    active = serializers.BooleanField(required=False, default=True)
