"""Benchmarks (not part of the application): `make bench` runs bench/ingest.py."""
