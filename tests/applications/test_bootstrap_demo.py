"""`make run`'s demo data: a complete world, created once, reused after."""

from io import StringIO

import pytest
from django.core.management import call_command

from router_ops.applications.keys import key_matches
from router_ops.applications.models import ApiKey, ModelEndpoint
from router_ops.judging.models import Judge
from router_ops.rollouts.models import RouterVersion
from router_ops.shadow.models import SamplingPolicy
from segments.models import Dimension, Segment

pytestmark = pytest.mark.django_db


def test_it_builds_the_demo_world_once(tmp_path, settings):
    out = StringIO()
    call_command("bootstrap_demo", "--var-dir", str(tmp_path), stdout=out)
    call_command("bootstrap_demo", "--var-dir", str(tmp_path), stdout=StringIO())
    key = (tmp_path / "demo_api_key").read_text().strip()
    assert key in out.getvalue()
    assert ApiKey.objects.count() == 1  # the second run reused the saved key
    stored = ApiKey.objects.get()
    assert key_matches(key, stored.key_hash, settings.API_KEY_PEPPER)
    assert set(ModelEndpoint.objects.values_list("tier", flat=True)) == {"cheap", "strong", "judge"}
    assert RouterVersion.objects.get(name="v1").status == "active"
    assert RouterVersion.objects.get(name="v2").status == "shadow"
    assert Judge.objects.filter(active=True, kind="pairwise_llm", model="sim-judge").count() == 1
    assert SamplingPolicy.objects.get().base_rate == 0.05
    assert Segment.objects.filter(slug="enterprise-scripted-api").exists()
    assert Segment.objects.count() == 6 and Dimension.objects.count() == 5
    assert (tmp_path / "demo_admin_password").stat().st_mode & 0o077 == 0


def test_demo_traffic_resumes_after_what_an_earlier_run_stored(tmp_path):
    from django.utils import timezone

    from router_ops.applications.models import Application
    from router_ops.ingest.services import decision_ingest_batch
    from router_ops.simulation.scenario import Scenario
    from router_ops.simulation.traffic import DEFAULT_SEED, decisions_build

    call_command("bootstrap_demo", "--var-dir", str(tmp_path), stdout=StringIO())
    assert (tmp_path / "demo_next_index").read_text() == "0\n"
    application = Application.objects.get(slug="demo")
    items = decisions_build(Scenario(seed=DEFAULT_SEED), start_index=0, count=120, occurred_at=timezone.now())
    decision_ingest_batch(application=application, items=items)
    out = StringIO()
    call_command("bootstrap_demo", "--var-dir", str(tmp_path), stdout=out)
    assert (tmp_path / "demo_next_index").read_text() == "120\n"  # 119 is the last stored
    assert "Demo traffic starts at scenario request 120" in out.getvalue()
