"""Provider base URLs may point only at allowed hosts (no SSRF into the host's network).

A configured model makes the workers send HTTP requests (with a secret) to its
`base_url`; without a check, anyone with the admin scope could aim them at the
cloud metadata service, the database, or any host on the private network.

`base_url_check(url)` accepts a URL only if
1. its scheme is http or https and it carries no credentials;
2. its host matches a pattern of the PROVIDER_URL_ALLOWLIST setting
   (comma-separated; `api.openai.com`, `*.openai.azure.com`, `127.0.0.1`,
   `10.0.0.0/8`, `*` for any public host);
3. every address the host resolves to is allowed: link-local (169.254.0.0/16,
   fe80::/10, which holds the metadata services), unspecified, multicast and
   reserved addresses never are; loopback and private addresses only when the
   allowlist names that host or address explicitly (a wildcard never does).

Call it when a model is saved and again right before each request: DNS can
change between the two (rebinding), which is why addresses are checked, not names.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

DEFAULT_ALLOWLIST = (
    "127.0.0.1,localhost,api.openai.com,api.anthropic.com,api.mistral.ai,api.groq.com,"
    "api.together.xyz,api.fireworks.ai,openrouter.ai,generativelanguage.googleapis.com,*.openai.azure.com"
)
# Never allowed, whatever the allowlist says: the metadata services live here.
_ALWAYS_REFUSED = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS IMDS over IPv6
    ipaddress.ip_network("0.0.0.0/8"),
    ipaddress.ip_network("::/128"),
)


def allowlist() -> list[str]:
    raw = getattr(settings, "PROVIDER_URL_ALLOWLIST", None)
    if raw is None:
        raw = DEFAULT_ALLOWLIST
    if isinstance(raw, str):
        raw = raw.split(",")
    return [entry.strip().lower() for entry in raw if entry.strip()]


def _host_allowed(host: str, patterns: list[str]) -> tuple[bool, bool]:
    """(allowed, named explicitly): explicit entries may reach loopback/private addresses."""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    for pattern in patterns:
        if "/" in pattern and literal is not None:
            try:
                if literal in ipaddress.ip_network(pattern, strict=False):
                    return True, True
            except ValueError:
                continue
        elif pattern == host:
            return True, True
        elif any(c in pattern for c in "*?[") and literal is None and fnmatch.fnmatchcase(host, pattern):
            return True, False
    return False, False


def _address_refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address, explicit: bool) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in _ALWAYS_REFUSED) or address.is_link_local:
        return "a link-local or metadata address"
    if address.is_loopback or address.is_private:
        # Checked before is_reserved: Python counts ::1 as reserved (::/8).
        return None if explicit else "a loopback or private address (name it in PROVIDER_URL_ALLOWLIST to allow it)"
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return "a reserved address"
    return None


class HostUnresolvable(ValueError):
    """The host does not resolve now: possibly transient, unlike a refusal."""


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise HostUnresolvable(f"The host {host!r} does not resolve ({exc}).") from None
    return [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]


def base_url_check(url: str, *, resolve: bool = True) -> None:
    """Raise ValueError saying why `url` may not be called; return None if it may."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"Not a valid URL: {exc}.") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("The URL must use http or https.")
    if parts.username is not None or parts.password is not None:
        raise ValueError("The URL must not carry credentials; name the secret's variable in api_key_env.")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise ValueError("The URL must name a host.")
    allowed, explicit = _host_allowed(host, allowlist())
    if not allowed:
        raise ValueError(f"The host {host!r} is not in PROVIDER_URL_ALLOWLIST.")
    if not resolve:
        return
    addresses = _resolve(host, port or (443 if parts.scheme == "https" else 80))
    for address in addresses:
        reason = _address_refused(address, explicit)
        if reason:
            raise ValueError(f"The host {host!r} resolves to {address}, {reason}.")
