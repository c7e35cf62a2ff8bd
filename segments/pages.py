"""Server-rendered pages of discovery and eval sets. Thin: resolve the application
(members only: 404 otherwise), call one service or selector, render.

Writes (run discovery, make a segment, upload an eval set) need the admin role.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from router_ops.applications.access import user_scopes
from router_ops.applications.models import ApiKey, Application
from router_ops.dashboard.selectors import applications_for_user
from segments.discovery import (
    DEFAULT_WINDOW,
    default_segment_slug,
    discovery_latest_run,
    discovery_list,
    discovery_open_run,
    discovery_promote,
    discovery_run_request,
)
from segments.evalset_parse import MAX_BYTES, EvalFileError, guess_format
from segments.evalsets import DimensionError, evalset_compare, evalset_create, evalset_list
from segments.models import Discovery, DiscoveryRun, EvalSet

WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


def _application(request, slug: str) -> Application:
    application = applications_for_user(request.user).filter(slug=slug).first()
    if application is None:
        from django.http import Http404

        raise Http404("No such application")
    return application


def _context(request, application: Application, tab: str, window_text: str = "7d") -> dict:
    # What base.html's application header needs (dashboard/_app_header.html).
    return {
        "application": application,
        "tab": tab,
        "window_text": window_text,
        "windows": list(WINDOWS),
        "version": None,
        "versions": [],
        "can_admin": ApiKey.SCOPE_ADMIN in user_scopes(request.user, application),
    }


def _require_admin(request, application: Application) -> None:
    if ApiKey.SCOPE_ADMIN not in user_scopes(request.user, application):
        raise PermissionDenied("Your role does not allow this; ask an admin of the application.")


# --- discovery -----------------------------------------------------------------------------


@login_required
def discoveries(request, slug: str):
    application = _application(request, slug)
    run = discovery_latest_run(application=application)
    findings = list(discovery_list(run=run)) if run else []
    recent = DiscoveryRun.objects.filter(application=application).order_by("-created_at", "-id")[:5]
    return render(
        request,
        "segments/discoveries.html",
        {
            **_context(request, application, "discovery", "7d"),
            "run": run,
            "open_run": discovery_open_run(application=application),
            "findings": findings,
            "recent_runs": recent,
            "default_window_days": DEFAULT_WINDOW.days,
        },
    )


@login_required
@require_POST
def discoveries_run(request, slug: str):
    application = _application(request, slug)
    _require_admin(request, application)
    run, created = discovery_run_request(application=application, trigger="page")
    if created:
        messages.success(request, "Discovery queued; refresh in a minute.")
    else:
        messages.info(request, f"A discovery run is already {run.status}.")
    return redirect("segments_pages:discoveries", application.slug)


@login_required
@require_POST
def discovery_make_segment(request, slug: str, pk: int):
    application = _application(request, slug)
    _require_admin(request, application)
    discovery = get_object_or_404(Discovery.objects.select_related("application"), pk=pk, application=application)
    if discovery.promoted_segment_id:
        messages.info(request, "Already a segment.")
        return redirect("segments_pages:discoveries", application.slug)
    try:
        segment = discovery_promote(
            discovery=discovery, slug=request.POST.get("slug", "").strip() or default_segment_slug(discovery.rule)
        )
    except ValidationError as exc:
        messages.error(request, "Could not create the segment: " + "; ".join(exc.messages))
    else:
        messages.success(request, f"Segment “{segment.slug}” created; its membership is being backfilled.")
    return redirect("segments_pages:discoveries", application.slug)


# --- eval sets ---------------------------------------------------------------------------------


class EvalSetUploadForm(forms.Form):
    file = forms.FileField(help_text="JSON Lines (.jsonl) or CSV (.csv), at most 5 MiB / 50,000 rows")
    format = forms.ChoiceField(
        choices=[("", "from the file name"), ("jsonl", "JSON Lines"), ("csv", "CSV")], required=False
    )
    name = forms.CharField(max_length=200, required=False)

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("file")
        if upload is None:
            return cleaned
        if upload.size > MAX_BYTES:
            raise ValidationError({"file": f"The file has {upload.size} bytes; the limit is {MAX_BYTES}."})
        fmt = cleaned.get("format") or guess_format(upload.name, upload.content_type)
        if fmt not in ("jsonl", "csv"):
            raise ValidationError({"format": "Choose the format: the file name ends in neither .jsonl nor .csv."})
        cleaned["format"] = fmt
        return cleaned


@login_required
def eval_sets(request, slug: str):
    application = _application(request, slug)
    form = EvalSetUploadForm()
    report = None
    if request.method == "POST":
        _require_admin(request, application)
        form = EvalSetUploadForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                eval_set, report = evalset_create(
                    application=application,
                    name=form.cleaned_data["name"] or upload.name,
                    data=upload.read(),
                    fmt=form.cleaned_data["format"],
                    filename=upload.name,
                    created_by=request.user,
                )
            except EvalFileError as exc:
                form.add_error("file", str(exc))
            else:
                if eval_set is not None:
                    level = messages.WARNING if report.rejected else messages.SUCCESS
                    messages.add_message(request, level, f"{len(report.rows)} rows kept, {report.rejected} rejected.")
                    return redirect("segments_pages:eval_set", application.slug, eval_set.id)
                form.add_error("file", f"No valid row; {report.rejected} rejected.")
    return render(
        request,
        "segments/eval_sets.html",
        {
            **_context(request, application, "eval"),
            "eval_sets": evalset_list(application=application),
            "form": form,
            "report": report,
        },
    )


@login_required
def eval_set_detail(request, slug: str, pk: int):
    application = _application(request, slug)
    eval_set = get_object_or_404(EvalSet, pk=pk, application=application)
    window_text = request.GET.get("window") if request.GET.get("window") in WINDOWS else "7d"
    dimension = (request.GET.get("dimension") or "").strip() or None
    error = None
    try:
        comparison = evalset_compare(eval_set=eval_set, window=WINDOWS[window_text], dimension=dimension)
    except DimensionError as exc:
        error = str(exc)
        comparison = evalset_compare(eval_set=eval_set, window=WINDOWS[window_text])
    return render(
        request,
        "segments/eval_set_detail.html",
        {
            **_context(request, application, "eval", window_text),
            "eval_set": eval_set,
            "comparison": comparison,
            "dimension": dimension or "",
            "dimension_error": error,
            "under_covered_segments": [s for s in comparison.segments if s.under_covered],
        },
    )
