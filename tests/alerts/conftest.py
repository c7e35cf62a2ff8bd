from tests.dashboard.conftest import member  # noqa: F401  (the shared page personas)
