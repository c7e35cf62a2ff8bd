"""Provider base URLs: allowlist, schemes, and addresses checked after DNS resolution."""

from __future__ import annotations

import socket

import pytest
from django.test import override_settings

from router_ops.applications.ssrf import base_url_check


def _resolving_to(monkeypatch, *addresses):
    def fake(host, port, *args, **kwargs):
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake)


@override_settings(PROVIDER_URL_ALLOWLIST="127.0.0.1,localhost")
@pytest.mark.parametrize("url", ["http://127.0.0.1:8001/v1", "http://localhost:9000/v1"])
def test_it_accepts_the_simulated_provider(url):
    base_url_check(url)


@override_settings(PROVIDER_URL_ALLOWLIST="api.openai.com,*.openai.azure.com")
def test_it_accepts_allowlisted_public_hosts(monkeypatch):
    _resolving_to(monkeypatch, "104.18.6.192")
    base_url_check("https://api.openai.com/v1")
    base_url_check("https://myorg.openai.azure.com/openai")


@override_settings(PROVIDER_URL_ALLOWLIST="api.openai.com,127.0.0.1")
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://api.openai.com/v1", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "http or https"),
        ("https://user:pw@api.openai.com/v1", "credentials"),
        ("https://evil.example.com/v1", "not in PROVIDER_URL_ALLOWLIST"),
        ("https://api.openai.com.evil.example/v1", "not in PROVIDER_URL_ALLOWLIST"),
        ("http://169.254.169.254/latest/meta-data/", "not in PROVIDER_URL_ALLOWLIST"),
        ("http://[::1]:8000/", "not in PROVIDER_URL_ALLOWLIST"),
        ("http://2130706433/", "not in PROVIDER_URL_ALLOWLIST"),  # 127.0.0.1 as an integer
        ("http://127.0.0.1:99999/", "Not a valid URL"),
        ("https:///v1", "must name a host"),
    ],
)
def test_it_refuses(url, message):
    with pytest.raises(ValueError, match=message):
        base_url_check(url)


@override_settings(PROVIDER_URL_ALLOWLIST="*")
@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("169.254.169.254", "link-local or metadata"),
        ("fe80::1", "link-local or metadata"),
        ("::ffff:169.254.169.254", "link-local or metadata"),
        ("10.0.0.5", "loopback or private"),
        ("192.168.1.1", "loopback or private"),
        ("127.0.0.1", "loopback or private"),
        ("::1", "loopback or private"),
        ("0.0.0.0", "link-local or metadata"),  # noqa: S104
    ],
)
def test_a_wildcard_never_reaches_private_or_metadata_addresses(monkeypatch, address, reason):
    _resolving_to(monkeypatch, address)
    with pytest.raises(ValueError, match=reason):
        base_url_check("https://rebinding.example.com/v1")


@override_settings(PROVIDER_URL_ALLOWLIST="llm.internal,10.0.0.0/8")
def test_explicit_entries_may_reach_private_addresses(monkeypatch):
    _resolving_to(monkeypatch, "10.1.2.3")
    base_url_check("http://llm.internal/v1")
    base_url_check("http://10.1.2.3/v1")


@override_settings(PROVIDER_URL_ALLOWLIST="llm.internal")
def test_even_an_explicit_entry_never_reaches_the_metadata_service(monkeypatch):
    _resolving_to(monkeypatch, "169.254.169.254")
    with pytest.raises(ValueError, match="metadata"):
        base_url_check("http://llm.internal/v1")


@override_settings(PROVIDER_URL_ALLOWLIST="*")
def test_any_refused_address_among_several_refuses_the_host(monkeypatch):
    _resolving_to(monkeypatch, "93.184.216.34", "169.254.169.254")
    with pytest.raises(ValueError, match="metadata"):
        base_url_check("https://mixed.example.com/v1")


@override_settings(PROVIDER_URL_ALLOWLIST="*")
def test_an_unresolvable_host_is_refused(monkeypatch):
    def fail(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(ValueError, match="does not resolve"):
        base_url_check("https://nowhere.invalid/v1")


@pytest.mark.django_db
def test_the_provider_adapter_refuses_a_metadata_address_at_call_time(owner):
    """A model saved before the allowlist changed is still refused when it is called."""
    from router_ops.applications.models import ModelEndpoint
    from router_ops.shadow.providers import ProviderError, chat_complete

    endpoint = ModelEndpoint.objects.create(
        application=owner.application, name="evil", tier="strong", base_url="http://169.254.169.254/v1", model="x"
    )
    with pytest.raises(ProviderError) as refused:
        chat_complete(endpoint, [{"role": "user", "content": "hi"}], max_attempts=1)
    assert "base URL refused" in refused.value.reason
    assert refused.value.retryable is False


@pytest.mark.django_db
def test_the_admin_form_refuses_a_url_outside_the_allowlist(owner):
    from router_ops.applications.admin import ModelEndpointForm

    form = ModelEndpointForm(
        data={
            "application": owner.application.id,
            "name": "m",
            "tier": "strong",
            "provider": "openai",
            "base_url": "http://10.0.0.5/v1",
            "model": "x",
            "input_price_per_mtok": 0,
            "output_price_per_mtok": 0,
            "timeout_s": 30,
            "max_concurrency": 4,
        }
    )
    assert not form.is_valid()
    assert "base_url" in form.errors
