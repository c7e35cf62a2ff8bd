"""Settings of the private stack the fault suite, its tests and bench/load.py start.

The production settings plus shorter recovery clocks, so a run that loses messages
(Redis restarted without persistence, a worker SIGKILLed with tasks unacked) recovers
within a bounded test instead of after the production lease of 10 minutes:

- SHADOW_LEASE_S: an enqueued/running job whose lease is older is re-sent by the relay
  (production 600 s). Still longer than any call can take here (5 s provider timeout
  × 4 attempts + backoff), so a live run is not duplicated.
- SHADOW_RETRY_BASE_S: first task-level retry backoff (production 10 s).
The broker's visibility timeout is set by the CELERY_VISIBILITY_TIMEOUT env var.
"""

import os

from router_ops.settings import *  # noqa: F403

SHADOW_LEASE_S = float(os.environ.get("FAULTS_SHADOW_LEASE_S", "15"))
SHADOW_RETRY_BASE_S = float(os.environ.get("FAULTS_SHADOW_RETRY_BASE_S", "1"))
