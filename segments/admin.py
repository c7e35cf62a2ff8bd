"""Django admin for segments, dimensions, discovery runs and eval sets. Writes go through the services."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from router_ops.ingest.services import application_tiers
from segments.discovery import discovery_promote
from segments.evalset_parse import MAX_BYTES as MAX_EVAL_BYTES
from segments.evalset_parse import EvalFileError, guess_format, parse_eval_file
from segments.evalsets import evalset_create
from segments.models import Dimension, Discovery, DiscoveryRun, EvalSet, Segment
from segments.services import segment_backfill_request

BACKFILL_FIELDS = (
    "backfill_status",
    "backfill_progress",
    "backfill_processed",
    "backfill_total",
    "backfill_through_id",
    "backfill_upto_id",
    "backfill_started_at",
    "backfill_finished_at",
    "backfill_error",
)


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ("slug", "application", "name", "active", "backfill_status", "backfill_progress", "updated_at")
    list_filter = ("application", "active", "backfill_status")
    search_fields = ("slug", "name", "rule")
    list_select_related = ("application",)
    readonly_fields = ("created_at", "updated_at", *BACKFILL_FIELDS)
    fieldsets = (
        (None, {"fields": ("application", "slug", "name", "rule", "active", "created_at", "updated_at")}),
        ("Membership backfill", {"fields": BACKFILL_FIELDS}),
    )
    actions = ["rerun_backfill"]

    @admin.display(description="progress")
    def backfill_progress(self, segment: Segment) -> str:
        percent = segment.backfill_percent
        if percent is None:
            return "—"
        return f"{percent:.1f} % ({segment.backfill_processed:,} / {segment.backfill_total or 0:,})"

    def save_model(self, request, obj, form, change):
        # The form validated the rule (model field validator); a new segment, a new
        # rule or a reactivation needs its membership backfilled.
        super().save_model(request, obj, form, change)
        if not change or "rule" in form.changed_data or ("active" in form.changed_data and obj.active):
            segment_backfill_request(segment=obj)

    @admin.action(description="Re-run membership backfill")
    def rerun_backfill(self, request, queryset):
        count = 0
        for segment in queryset:
            segment_backfill_request(segment=segment)
            count += 1
        self.message_user(request, f"Backfill queued for {count} segment(s).", messages.SUCCESS)


@admin.register(Dimension)
class DimensionAdmin(admin.ModelAdmin):
    list_display = ("path", "application", "min_share", "bucket_edges", "active")
    list_filter = ("application", "active")
    search_fields = ("path",)
    list_select_related = ("application",)


class DiscoveryInline(admin.TabularInline):
    model = Discovery
    fields = (
        "rank",
        "rule",
        "traffic_share",
        "regret",
        "complement_regret",
        "adjusted_p_value",
        "n_eff",
        "impact",
        "explained_by",
        "promoted_segment",
    )
    readonly_fields = fields
    can_delete = False
    extra = 0
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).filter(significant=True)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(DiscoveryRun)
class DiscoveryRunAdmin(admin.ModelAdmin):
    list_display = ("id", "application", "status", "trigger", "created_at", "samples", "tested", "discoveries")
    list_filter = ("application", "status", "trigger")
    list_select_related = ("application",)
    inlines = [DiscoveryInline]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in DiscoveryRun._meta.fields]

    def has_add_permission(self, request):
        return False  # runs are queued by the sweep, the API or the page (discovery_run_request)


@admin.register(Discovery)
class DiscoveryAdmin(admin.ModelAdmin):
    list_display = (
        "rule",
        "application",
        "run",
        "rank",
        "traffic_share",
        "regret",
        "complement_regret",
        "adjusted_p_value",
        "impact",
    )
    list_filter = ("application", "significant")
    search_fields = ("rule",)
    list_select_related = ("application", "run")
    actions = ["make_segment"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Discovery._meta.fields]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Make a segment of each (and backfill it)")
    def make_segment(self, request, queryset):
        for discovery in queryset.select_related("application"):
            if discovery.promoted_segment_id:
                continue
            try:
                segment = discovery_promote(discovery=discovery)
            except ValidationError as exc:
                self.message_user(request, f"{discovery.rule}: {'; '.join(exc.messages)}", messages.ERROR)
            else:
                self.message_user(request, f"Segment {segment.slug!r} created; backfill queued.", messages.SUCCESS)


class EvalSetUploadForm(forms.ModelForm):
    """Upload through the admin: the same parser and service as the API."""

    file = forms.FileField(
        help_text="JSON Lines or CSV; see the API docs for the columns. Bad rows are reported and left out."
    )
    file_format = forms.ChoiceField(
        label="Format", choices=[("", "from the file name"), ("jsonl", "JSON Lines"), ("csv", "CSV")], required=False
    )

    class Meta:
        model = EvalSet
        fields = ("application", "name")

    def clean(self):
        cleaned = super().clean()
        upload, application = cleaned.get("file"), cleaned.get("application")
        if upload is None or application is None:
            return cleaned
        if upload.size > MAX_EVAL_BYTES:
            raise ValidationError({"file": f"The file has {upload.size} bytes; the limit is {MAX_EVAL_BYTES}."})
        fmt = cleaned.get("file_format") or guess_format(upload.name, upload.content_type)
        if fmt not in ("jsonl", "csv"):
            raise ValidationError({"file_format": "Choose the format: the file name ends in neither .jsonl nor .csv."})
        data = upload.read()
        try:
            report = parse_eval_file(data, fmt, tiers=application_tiers(application))
        except EvalFileError as exc:
            raise ValidationError({"file": str(exc)}) from None
        if not report.rows:
            raise ValidationError(
                {"file": [f"No valid row ({report.rejected} rejected)."] + [str(e) for e in report.errors[:20]]}
            )
        cleaned["data"], cleaned["fmt"] = data, fmt
        return cleaned


@admin.register(EvalSet)
class EvalSetAdmin(admin.ModelAdmin):
    list_display = ("name", "application", "format", "items_count", "rejected_count", "accuracy", "created_at")
    list_filter = ("application", "format")
    search_fields = ("name", "filename")
    list_select_related = ("application",)

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = EvalSetUploadForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("application", "name", "file", "file_format")
        return (
            "application",
            "name",
            "format",
            "filename",
            "created_at",
            "created_by",
            "items_count",
            "rejected_count",
            "correct_count",
            "accuracy",
            "error_lines",
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return self.get_fields(request, obj)

    @admin.display(description="offline accuracy")
    def accuracy(self, eval_set: EvalSet) -> str:
        value = eval_set.offline_accuracy
        return "—" if value is None else f"{100 * value:.1f} %"

    @admin.display(description="errors")
    def error_lines(self, eval_set: EvalSet):
        return format_html_join(mark_safe("<br>"), "{}", ((e,) for e in eval_set.errors)) or "—"

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        data = form.cleaned_data
        created, report = evalset_create(
            application=data["application"],
            name=data.get("name") or data["file"].name,
            data=data["data"],
            fmt=data["fmt"],
            filename=data["file"].name,
            created_by=request.user,
        )
        obj.pk = obj.id = created.id
        obj.__dict__.update({k: v for k, v in created.__dict__.items() if not k.startswith("_")})
        level = messages.WARNING if report.rejected else messages.SUCCESS
        self.message_user(request, f"{len(report.rows)} rows kept, {report.rejected} rejected.", level)
