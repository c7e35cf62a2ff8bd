"""Reads of the shadow pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, QuerySet
from rest_framework.exceptions import NotFound

from router_ops.applications.models import Application, ModelEndpoint
from router_ops.shadow.models import ShadowSample


def model_endpoints_list(*, application: Application) -> QuerySet[ModelEndpoint]:
    return ModelEndpoint.objects.filter(application=application).order_by("tier", "name")


def model_endpoint_get(*, application: Application, pk: int) -> ModelEndpoint:
    endpoint = ModelEndpoint.objects.filter(application=application, pk=pk).first()
    if endpoint is None:
        raise NotFound(f"No model {pk} in this application.")
    return endpoint


def sample_status_counts(*, application: Application) -> dict[str, int]:
    """Samples by shadow status (pending, enqueued, running, done, failed)."""
    rows = ShadowSample.objects.filter(application=application).values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


# -- the pipeline's configuration, as the shadow and judge tasks read it -------------------
#
# Every task needs the application's model endpoints (and the judge task its judges and
# rubric prompts). Loading them with the ORM cost four queries and ~3 ms of CPU per pair,
# so a process keeps one snapshot per (application, fingerprint). The fingerprint is an
# md5 over the configuration rows, computed by the task's claim statement in the same round
# trip (see outbox._CLAIM_LOAD_*): any edit, by any process, changes it, so a snapshot is
# never stale and there is no TTL or invalidation to get wrong.

# SQL expressions over `c.application_id` (the claimed row); used inside the claim statements.
FINGERPRINT_ENDPOINTS_SQL = (
    "(SELECT md5(coalesce(string_agg(e::text, '|' ORDER BY e.id), '')) "
    "FROM applications_modelendpoint e WHERE e.application_id = c.application_id)"
)
FINGERPRINT_JUDGES_SQL = (
    "(SELECT md5(coalesce(string_agg(j::text, '|' ORDER BY j.id), '') || coalesce(("
    "SELECT string_agg(p::text, '|' ORDER BY p.id) FROM judging_judgeprompt p "
    "WHERE p.version IN (SELECT prompt_version FROM judging_judge WHERE application_id = c.application_id)), '')) "
    "FROM judging_judge j WHERE j.application_id = c.application_id)"
)


@dataclass(frozen=True)
class PipelineConfig:
    endpoints_by_tier: dict[str, ModelEndpoint]  # the first by name of each tier
    endpoints_by_name: dict[str, ModelEndpoint]
    judges: tuple = ()  # active judges, deterministic ones first (Judge instances)
    prompts: dict[str, str] = field(default_factory=dict)  # rubric text by version


_config_cache: dict[tuple, PipelineConfig] = {}
_CONFIG_CACHE_MAX = 256


def pipeline_config(*, application_id: int, fingerprint: str, with_judges: bool = False) -> PipelineConfig:
    """The application's endpoints (and, `with_judges`, active judges and their prompts) as of
    `fingerprint`; loaded once per process per configuration. Read-only: shared by threads."""
    key = (application_id, fingerprint, with_judges)
    config = _config_cache.get(key)
    if config is not None:
        return config
    endpoints = list(ModelEndpoint.objects.filter(application_id=application_id).order_by("tier", "name"))
    by_tier: dict[str, ModelEndpoint] = {}
    for endpoint in endpoints:
        by_tier.setdefault(endpoint.tier, endpoint)
    judges: tuple = ()
    prompts: dict[str, str] = {}
    if with_judges:
        from router_ops.judging.models import Judge, JudgePrompt

        active = Judge.objects.filter(application_id=application_id, active=True).order_by("id")
        judges = tuple(sorted(active, key=lambda j: (j.kind not in Judge.DETERMINISTIC, j.id)))
        versions = {j.prompt_version for j in judges if j.prompt_version}
        prompts = dict(JudgePrompt.objects.filter(version__in=versions).values_list("version", "text"))
    config = PipelineConfig(
        endpoints_by_tier=by_tier, endpoints_by_name={e.name: e for e in endpoints}, judges=judges, prompts=prompts
    )
    if len(_config_cache) >= _CONFIG_CACHE_MAX:
        _config_cache.clear()
    _config_cache[key] = config
    return config
