"""Settings for the naive baseline server: production settings, another URL conf."""

from router_ops.settings import *  # noqa: F403

ROOT_URLCONF = "bench.naive_urls"
