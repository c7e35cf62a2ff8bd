"""The production URL conf, with the ingestion view calling the prototype (bench/proto_services.py)."""

import os

from bench import proto_services

proto_services.install(os.environ.get("BENCH_PROTO_VARIANT", "binary"))

from router_ops.urls import *  # noqa: E402, F403
from router_ops.urls import handler404, handler500, urlpatterns  # noqa: E402, F401
