"""API-key format and hashing. Pure: no Django imports.

A key is `ro_<prefix>_<secret>`: 8 hex characters of prefix (stored in clear,
shown in lists) and 40 of URL-safe secret. Only HMAC-SHA256(pepper, key) is
stored. The secret has ~240 bits of entropy, so a slow hash buys nothing over an
HMAC (the attacker cannot guess it); the pepper keeps a stolen DB dump useless.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "ro_"


def key_generate() -> tuple[str, str]:
    """Return (prefix, full key)."""
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(30)
    return prefix, f"{KEY_PREFIX}{prefix}_{secret}"


def key_prefix(key: str) -> str | None:
    """The prefix of a well-formed key, or None."""
    if not key.startswith(KEY_PREFIX):
        return None
    prefix, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    if not sep or len(prefix) != 8 or not secret:
        return None
    return prefix


def key_hash(key: str, pepper: str) -> str:
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()


def key_matches(key: str, stored_hash: str, pepper: str) -> bool:
    # Constant-time comparison: the hash must not leak through timing.
    return hmac.compare_digest(key_hash(key, pepper), stored_hash)
