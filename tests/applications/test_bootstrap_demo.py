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
