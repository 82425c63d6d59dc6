"""URLs from outside (added by operators, found in feeds, fetched by workers): only http(s), no
credentials stored in the database, and no fetches into the link-local range (cloud metadata
services) or, unless the inventory allows it, into private networks.

Loopback is allowed: the demo and offline set-ups serve media on 127.0.0.1, and a worker's own
loopback is no wider than what its agent can already reach."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from control.core.errors import UsageError

SCHEMES = ("http", "https")
# Beyond link-local (169.254.0.0/16, fe80::/10): AWS's IPv6 metadata address.
METADATA = (ipaddress.ip_network("fd00:ec2::254/128"),)
CGNAT = ipaddress.ip_network("100.64.0.0/10")


class Refused(ValueError):
    """A URL a worker must not fetch (the message says why)."""


def check_added(url: str, what: str = "URL") -> str:
    """A URL an operator adds (`add`, a feed): http(s), no password in it. Returns it."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError as exc:
        raise UsageError(f"{what} {url!r} is malformed ({exc}): check it") from None
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        raise UsageError(
            f"{what} must be http(s)://..., not {url[:80]!r}: give a web address or a local file"
        )
    if parts.password is not None:
        raise UsageError(
            f"{what} carries a password: it would be stored in the database; use a cookies "
            "file for sites that need a login"
        )
    return url


def check_fetch(url: str, *, allow_private: bool = False) -> None:
    """Raise Refused unless a worker may fetch `url`: http(s), and every address its host
    resolves to is public (or private and allowed, or loopback)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        raise Refused(f"only http(s) URLs are fetched, not {parts.scheme or 'a bare path'}://")
    host = parts.hostname
    if not host:
        raise Refused("the URL has no host")
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
    except OSError:
        return  # unresolvable: the download fails with its own (retryable) reason
    for info in infos:
        addr = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if addr.is_loopback:
            continue
        if addr.is_link_local or any(addr in net for net in METADATA):
            raise Refused(f"{host} resolves to {addr}, a link-local (metadata) address")
        if (addr.is_private or addr in CGNAT or addr.is_reserved or addr.is_multicast) and (
            not allow_private
        ):
            raise Refused(
                f"{host} resolves to {addr}, a private address: set "
                "pipeline.allow_private_networks in the inventory to fetch from it"
            )
