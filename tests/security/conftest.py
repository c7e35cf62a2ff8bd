import pytest


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Logging in is the subject here; PBKDF2's deliberate slowness would make it take a minute.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
