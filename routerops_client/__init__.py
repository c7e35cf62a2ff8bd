"""Python client for the RouterOps API. Needs only the standard library and httpx (no Django)."""

from __future__ import annotations

from routerops_client.client import MAX_BATCH, RouterOpsClient, __version__
from routerops_client.errors import RouterOpsError, RouterOpsTransportError
from routerops_client.summary import IngestSummary

__all__ = ["MAX_BATCH", "IngestSummary", "RouterOpsClient", "RouterOpsError", "RouterOpsTransportError", "__version__"]
