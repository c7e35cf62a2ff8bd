from __future__ import annotations

import itertools
from types import SimpleNamespace

import httpx
import pytest

from router_ops.simulation.provider_server import start_in_thread

_names = itertools.count()


@pytest.fixture
def sim():
    """A fresh simulated provider per test; yields (server, base_url)."""
    server, base_url = start_in_thread(port=0)
    yield server, base_url
    server.stop()


def fault_set(base_url: str, **fault) -> dict:
    admin = base_url.removesuffix("/v1")
    response = httpx.post(f"{admin}/admin/faults", json=fault)
    assert response.status_code == 200, response.text
    return response.json()


def endpoint(base_url: str, **overrides) -> SimpleNamespace:
    """Any object with ModelEndpoint's attributes. A unique name per call, because the
    concurrency limiter is keyed by endpoint and lives for the whole process."""
    values = {
        "name": f"test-endpoint-{next(_names)}",
        "tier": "cheap",
        "base_url": base_url,
        "model": "sim-cheap",
        "api_key_env": "",
        "input_price_per_mtok": 2.5,
        "output_price_per_mtok": 10.0,
        "timeout_s": 5.0,
        "max_concurrency": 8,
    }
    values.update(overrides)
    return SimpleNamespace(**values)
