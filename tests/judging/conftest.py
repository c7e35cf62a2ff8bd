from tests.shadow.conftest import _fresh_sampling_cache, sim  # noqa: F401  (shared fixtures)
