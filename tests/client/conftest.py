"""Fixtures for the client tests: a scripted stand-in for the API, and a port nobody listens on."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.client.fake_routerops import FakeRouterOps


@pytest.fixture
def fake_api():
    fake = FakeRouterOps()
    thread = threading.Thread(target=fake.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
