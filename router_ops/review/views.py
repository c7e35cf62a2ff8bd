"""/api/v1/review/: the blind review queue over the API (labels come from people only)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response
from rest_framework.views import APIView

from router_ops.applications.access import CanRead, request_application
from router_ops.applications.authentication import KeyPrincipal
from router_ops.review.models import ReviewItem
from router_ops.review.services import CHOICES, ReviewError, review_label


class ReviewItemSerializer(serializers.Serializer):
    """Blind: which answer came from which model is not revealed."""

    id = serializers.IntegerField()
    prompt = serializers.CharField(allow_null=True)
    answer_a = serializers.CharField()
    answer_b = serializers.CharField()
    labels = serializers.IntegerField()


class LabelInSerializer(serializers.Serializer):
    choice = serializers.ChoiceField(choices=CHOICES)


def _blind(item: ReviewItem) -> dict:
    primary = item.sample.decision.response or ""
    shadow = getattr(getattr(item.sample, "run", None), "response", "") or ""
    a, b = (primary, shadow) if item.primary_is_a else (shadow, primary)
    return {"id": item.id, "prompt": item.sample.decision.prompt, "answer_a": a, "answer_b": b, "labels": item.n_labels}


class ReviewQueueView(APIView):
    permission_classes = [CanRead]

    @extend_schema(operation_id="review_queue", responses={200: ReviewItemSerializer(many=True)})
    def get(self, request):
        from django.db.models import Count

        application = request_application(request)
        items = (
            ReviewItem.objects.filter(application=application)
            .select_related("sample__decision", "sample__run")
            .annotate(n_labels=Count("labels"))
            .order_by("id")[:100]
        )
        return Response([_blind(item) for item in items])


class ReviewLabelView(APIView):
    permission_classes = [CanRead]

    @extend_schema(operation_id="review_label", request=LabelInSerializer, responses={201: None})
    def post(self, request, item_id: int):
        application = request_application(request)
        if isinstance(request.user, KeyPrincipal):
            raise exceptions.PermissionDenied("Review labels come from people: log in to label.")
        item = get_object_or_404(ReviewItem, pk=item_id, application=application)
        data = LabelInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            review_label(item=item, reviewer=request.user, choice=data.validated_data["choice"])
        except ReviewError as exc:
            raise exceptions.ValidationError({"choice": [str(exc)]}) from None
        return Response(status=201)
