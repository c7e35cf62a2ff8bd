"""Reads on router versions, rollouts and the routing config. Every selector takes the application."""

from __future__ import annotations

import hashlib

from django.db.models import QuerySet
from rest_framework import exceptions

from router_ops.applications.models import Application
from router_ops.rollouts.gates import canonical_json
from router_ops.rollouts.models import AuditEvent, Rollout, RolloutStage, RouterVersion
from routerops_client.assignment import assign, bucket


def router_versions_list(*, application: Application, status: str | None = None) -> QuerySet[RouterVersion]:
    qs = RouterVersion.objects.filter(application=application).order_by("-created_at", "-id")
    return qs.filter(status=status) if status else qs


def router_version_get(*, application: Application, pk: int) -> RouterVersion:
    version = RouterVersion.objects.filter(application=application, pk=pk).first()
    if version is None:
        raise exceptions.NotFound(f"No router version {pk} in {application.slug}.")
    return version


def router_version_by_name(*, application: Application, name: str) -> RouterVersion | None:
    return RouterVersion.objects.filter(application=application, name=name).first()


def rollouts_list(*, application: Application, status: str | None = None) -> QuerySet[Rollout]:
    qs = (
        Rollout.objects.filter(application=application)
        .select_related("candidate", "baseline")
        .order_by("-created_at", "-id")
    )
    return qs.filter(status=status) if status else qs


def rollout_get(*, application: Application, pk: int) -> Rollout:
    rollout = (
        Rollout.objects.filter(application=application, pk=pk)
        .select_related("candidate", "baseline", "application", "created_by", "created_by_key")
        .first()
    )
    if rollout is None:
        raise exceptions.NotFound(f"No rollout {pk} in {application.slug}.")
    return rollout


def rollout_events(*, rollout: Rollout) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(rollout=rollout).order_by("created_at", "id")


class NoRouterVersion(exceptions.NotFound):
    default_code = "no_router_version"


def routing_config(*, application: Application) -> dict:
    """The routing config of API.md, with its ETag.

    1. A rollout running or paused at a weighted stage: the candidate first with the
       stage's weight, the baseline with the rest (so raising the weight only moves
       units into the candidate). At a dark stage the baseline gets everything and
       the candidate is listed in `shadow_versions`.
    2. No such rollout: the active version with 10000.
    3. No active version yet (a new application): the *oldest* draft or canary
       version — the first one its router reported — so registering another
       version never moves traffic by itself; none → 404 no_router_version.
    4. `shadow_versions`: versions in status shadow, plus a dark-stage candidate.
    5. `etag` is a hash of everything else in the body.
    """
    live = (
        Rollout.objects.filter(application=application, status__in=Rollout.LIVE)
        .select_related("candidate", "baseline")
        .first()
    )
    shadow = set(
        RouterVersion.objects.filter(application=application, status=RouterVersion.STATUS_SHADOW).values_list(
            "name", flat=True
        )
    )
    if live is not None:
        weight = (
            RolloutStage.objects.filter(rollout=live, order=live.current_stage)
            .values_list("weight_bp", flat=True)
            .first()
            or 0
        )
        if weight == 0:
            versions = [{"router_version": live.baseline.name, "weight_bp": 10000}]
            shadow.add(live.candidate.name)
        else:
            versions = [
                {"router_version": live.candidate.name, "weight_bp": weight},
                {"router_version": live.baseline.name, "weight_bp": 10000 - weight},
            ]
    else:
        served = (
            RouterVersion.objects.filter(application=application, status=RouterVersion.STATUS_ACTIVE).first()
            or RouterVersion.objects.filter(
                application=application, status__in=[RouterVersion.STATUS_DRAFT, RouterVersion.STATUS_CANARY]
            )
            .order_by("created_at", "id")
            .first()
        )
        if served is None:
            raise NoRouterVersion(f"{application.slug} has no router version yet: register one first.")
        versions = [{"router_version": served.name, "weight_bp": 10000}]
    shadow -= {v["router_version"] for v in versions}
    body = {
        "application": application.slug,
        "salt": application.salt,
        "versions": versions,
        "shadow_versions": sorted(shadow),
    }
    etag = hashlib.sha256(canonical_json(body).encode()).hexdigest()[:32]
    return {"application": body["application"], "salt": body["salt"], "etag": etag, **body}


def routing_assign(*, application: Application, unit_id: str) -> dict:
    config = routing_config(application=application)
    return {
        "unit_id": unit_id,
        "bucket": bucket(application.salt, unit_id),
        "router_version": assign(config["versions"], application.salt, unit_id),
    }


def application_for_member(*, user, slug: str) -> Application | None:
    """The application `slug` if `user` is one of its members (or a superuser); else None."""
    qs = Application.objects.filter(slug=slug)
    if not user.is_superuser:
        qs = qs.filter(memberships__user=user)
    return qs.first()


def rollout_stages(*, rollout: Rollout) -> list[RolloutStage]:
    return list(RolloutStage.objects.filter(rollout=rollout).order_by("order"))
