"""URLs from outside (added by operators, found in feeds, fetched by workers): only http(s), no
credentials stored in the database, and no fetches into the link-local range (cloud metadata
services) or, unless the inventory allows it, into private networks.

Loopback is allowed: the demo and offline set-ups serve media on 127.0.0.1, and a worker's own
loopback is no wider than what its agent can already reach."""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from control.core.errors import UsageError

SCHEMES = ("http", "https")
# Beyond link-local (169.254.0.0/16, fe80::/10): AWS's IPv6 metadata address.
METADATA = (ipaddress.ip_network("fd00:ec2::254/128"),)
CGNAT = ipaddress.ip_network("100.64.0.0/10")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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


def address_problem(addr: IPAddress, *, allow_private: bool) -> str | None:
    """Why a worker must not connect to `addr`, or None."""
    if addr.is_loopback:
        return None
    if addr.is_link_local or any(addr in net for net in METADATA):
        return "a link-local (metadata) address"
    if (addr.is_private or addr in CGNAT or addr.is_reserved or addr.is_multicast) and (
        not allow_private
    ):
        return (
            "a private address: set pipeline.allow_private_networks in the inventory to fetch "
            "from it"
        )
    return None


def literal_address_problem(url: str, *, allow_private: bool) -> str | None:
    """For a URL whose host is an IP address: why a worker must not connect to it, or None
    (a name is checked where it resolves, at each connection)."""
    try:
        addr = ipaddress.ip_address((urlsplit(url).hostname or "").split("%")[0])
    except ValueError:
        return None
    return address_problem(addr, allow_private=allow_private)


def _address(sockaddr: tuple[Any, ...]) -> IPAddress:
    return ipaddress.ip_address(str(sockaddr[0]).split("%")[0])


def check_fetch(url: str, *, allow_private: bool = False) -> None:
    """Raise Refused unless a worker may fetch `url`: http(s), and every address its host
    resolves to is public (or private and allowed, or loopback). A first look only: the
    connections themselves are checked too (`checked_resolver`, `open_checked`), since a
    redirect or a second lookup may lead elsewhere."""
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
        addr = _address(info[4])
        problem = address_problem(addr, allow_private=allow_private)
        if problem is not None:
            raise Refused(f"{host} resolves to {addr}, {problem}")


class RefusedAddress(OSError):
    """A connection to an address a worker must not reach (raised where the name resolves, so
    every library's every hop meets it). The message starts with REFUSED_MARK."""


REFUSED_MARK = "refused by contentctl:"


@contextlib.contextmanager
def checked_resolver(*, allow_private: bool) -> Iterator[list[str]]:
    """Within: every name this process resolves answers only addresses a worker may reach;
    a name with none left raises RefusedAddress. Python's HTTP clients (urllib, yt-dlp's
    handlers, requests) connect to what getaddrinfo answers, on every redirect hop, so the
    address checked is the address connected to. Process-wide: for a task process, which runs
    one task at a time (never in a head process, whose database driver resolves too).
    Yields the list of refusals made meanwhile (a library may wrap the error in its own)."""
    original = socket.getaddrinfo
    refused: list[str] = []

    def guarded(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        infos = original(host, port, *args, **kwargs)
        kept = [
            i for i in infos if address_problem(_address(i[4]), allow_private=allow_private) is None
        ]
        if infos and not kept:
            addr = _address(infos[0][4])
            problem = address_problem(addr, allow_private=allow_private)
            refused.append(f"{host} resolves to {addr}, {problem}")
            raise RefusedAddress(f"{REFUSED_MARK} {refused[-1]}")
        return kept

    socket.getaddrinfo = guarded
    try:
        yield refused
    finally:
        socket.getaddrinfo = original


def _checked_connect(allow_private: bool) -> Callable[..., socket.socket]:
    def connect(
        address: tuple[str, int], timeout: Any = None, source_address: Any = None
    ) -> socket.socket:
        host, port = address
        last: OSError | None = None
        for family, kind, proto, _, sockaddr in socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        ):
            addr = _address(sockaddr)
            problem = address_problem(addr, allow_private=allow_private)
            if problem is not None:
                last = RefusedAddress(f"{REFUSED_MARK} {host} resolves to {addr}, {problem}")
                continue
            sock = socket.socket(family, kind, proto)
            try:
                if timeout is not None:
                    sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
            except OSError as exc:
                sock.close()
                last = exc
                continue
            return sock
        raise last or OSError(f"{host} resolves to no address")

    return connect


def open_checked(request: urllib.request.Request, *, timeout: float, allow_private: bool) -> Any:
    """urllib's urlopen for URLs from outside: http(s) only (no file://, no ftp:// on a
    redirect), and every connection, the first and each redirect's, made only to an address
    that `address_problem` allows; a refused one raises URLError(RefusedAddress). Per call:
    nothing else in the process is affected."""
    connect = _checked_connect(allow_private)

    class CheckedHTTP(http.client.HTTPConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._create_connection = connect

    class CheckedHTTPS(http.client.HTTPSConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._create_connection = connect

    class HTTP(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> Any:
            return self.do_open(CheckedHTTP, req)

    class HTTPS(urllib.request.HTTPSHandler):
        def https_open(self, req: urllib.request.Request) -> Any:
            return self.do_open(CheckedHTTPS, req)

    opener = urllib.request.OpenerDirector()
    for handler in (
        HTTP(),
        HTTPS(),
        urllib.request.HTTPRedirectHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
        urllib.request.UnknownHandler(),
    ):
        opener.add_handler(handler)
    return opener.open(request, timeout=timeout)
