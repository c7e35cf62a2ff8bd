"""gunicorn config for a GC experiment (bench/ingest.py --gunicorn-config bench/gunicorn_gc.py).

A 1000-decision batch allocates ~10^5 objects (parsed JSON, clean decisions, parameter
lists), so CPython's cyclic GC runs many young collections per request and, now and
then, a full one over every object Django and DRF loaded. Freezing what exists after
start-up takes those out of every collection; a higher gen-0 threshold runs the young
collections less often. None of these objects form cycles, so nothing leaks.
"""

import gc


def post_worker_init(worker):
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
