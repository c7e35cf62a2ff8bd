from __future__ import annotations

from pathlib import Path

import pytest

from router_ops.simulation.provider_server import start_in_thread

# The RouteLLM files live beside the project, read-only: ../shared/data/routellm.
ROUTELLM_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "routellm"


@pytest.fixture
def sim():
    server, base_url = start_in_thread(port=0)
    yield server, base_url
    server.stop()


@pytest.fixture(scope="session")
def routellm_dir() -> Path:
    if not (ROUTELLM_DIR / "mt_bench" / "judgements.jsonl").exists():
        pytest.skip(f"RouteLLM data not found at {ROUTELLM_DIR} (expected ../shared/data/routellm beside the project)")
    return ROUTELLM_DIR
