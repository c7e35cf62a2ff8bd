"""Production settings with the prototype INSERT (bench/proto_services.py) swapped in.

For measuring a proposed change end to end before it is made in router_ops/:
    .venv/bin/python bench/ingest.py --fast-settings bench.settings_proto
BENCH_PROTO_VARIANT picks the cursor kind (client, server, binary; default binary).
"""

from router_ops.settings import *  # noqa: F403

ROOT_URLCONF = "bench.proto_urls"
