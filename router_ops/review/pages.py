"""The blind review pages: one pair at a time, keyboard-driven (1 = A, 2 = equivalent, 3 = B)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from router_ops.dashboard.selectors import applications_for_user
from router_ops.review.models import ReviewItem
from router_ops.review.selectors import agreement_table, review_next, review_progress
from router_ops.review.services import ReviewError, review_label, review_queue_fill


def _application(request, slug: str):
    application = applications_for_user(request.user).filter(slug=slug).first()
    if application is None:
        raise Http404("No such application.")
    return application


@login_required
def queue(request, slug: str):
    application = _application(request, slug)
    item = review_next(application=application, reviewer=request.user)
    pair = None
    if item is not None:
        primary = item.sample.decision.response or ""
        shadow = getattr(getattr(item.sample, "run", None), "response", "") or ""
        answer_a, answer_b = (primary, shadow) if item.primary_is_a else (shadow, primary)
        decision = item.sample.decision
        prompt = decision.prompt or "\n\n".join(m.get("content", "") for m in (decision.messages or []))
        pair = {"item": item, "prompt": prompt, "answer_a": answer_a, "answer_b": answer_b}
    context = {
        "application": application,
        "pair": pair,
        "progress": review_progress(application=application, reviewer=request.user),
    }
    return render(request, "review/queue.html", context)


@login_required
@require_POST
def label(request, slug: str, item_id: int):
    application = _application(request, slug)
    item = get_object_or_404(ReviewItem, pk=item_id, application=application)
    try:
        review_label(item=item, reviewer=request.user, choice=request.POST.get("choice", ""))
    except ReviewError as exc:
        messages.error(request, str(exc))
    return redirect("review:queue", slug=slug)


@login_required
@require_POST
def fill(request, slug: str):
    application = _application(request, slug)
    added = review_queue_fill(application=application)
    messages.info(request, f"Queued {added} judged pair(s) for review.")
    return redirect("review:queue", slug=slug)


@login_required
def agreement(request, slug: str):
    application = _application(request, slug)
    return render(
        request, "review/agreement.html", {"application": application, "rows": agreement_table(application=application)}
    )
