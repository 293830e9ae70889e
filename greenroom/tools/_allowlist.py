"""The allowlist of an HttpClient: origins (scheme, host, effective port), matched exactly.

An entry names one or two origins; a URL is allowed when its origin is one
of them, and credentials configured for an entry go to exactly the origins
it names (see ``HttpClient``):

================================  ===========================================
entry                             origins it names
================================  ===========================================
``api.example.com``               ``https://api.example.com:443`` and
                                  ``http://api.example.com:80`` (the default
                                  ports only, never any other)
``api.example.com:443``           ``https://api.example.com:443`` only
``api.example.com:80``            ``http://api.example.com:80`` only
``api.example.com:8080``          ``http://…:8080`` and ``https://…:8080``
``https://api.example.com:8443``  exactly that; ``https://host`` means port
                                  443 and ``http://host`` port 80
================================  ===========================================

A URL's effective port is its port, or 80 for ``http`` and 443 for
``https``. Hosts are compared as httpx connects to them: lower-cased,
IDNA-encoded (``exämple.com`` is ``xn--exmple-cua.com``), without one
trailing dot (a host name's only: ``127.0.0.1.`` is a DNS name, and matches
nothing), IPv6 literals in their compressed form (``[0:0::1]`` is
``[::1]``). Nothing else is taken as equal: ``127.1`` is not ``127.0.0.1``
and ``::ffff:127.0.0.1`` is neither. A host that is percent-encoded, holds
characters no host name has, or carries an IPv6 zone id matches no entry.
Userinfo is refused by ``HttpClient`` before any matching.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Final

import httpx

from greenroom._errors import InvalidSpec

__all__ = [
    "DEFAULT_PORTS",
    "Allowlist",
    "Origin",
    "entry_origins",
    "normal_host",
    "origin_of",
    "origin_text",
]

Origin = tuple[str, str, int]
"""``(scheme, host, effective port)``: ``("https", "api.example.com", 443)``."""

DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_IPV4: Final = re.compile(r"[0-9.]+")
_HOST_NAME: Final = re.compile(r"[a-z0-9_\-]+(\.[a-z0-9_\-]+)*")
_ENTRY_HELP: Final = (
    "an allowed host is 'host', 'host:port', '[ipv6]:port', or 'http(s)://host[:port]' "
    "with no path, query, fragment or user"
)


def normal_host(raw: bytes | str) -> str | None:
    """The host as compared, or ``None`` for a host that no entry can match."""
    try:
        host = raw.decode("ascii") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        return None
    host = host.lower()
    dotted = host.endswith(".")
    if dotted:
        host = host[:-1]
    if not host or "%" in host:
        return None
    if dotted and _IPV4.fullmatch(host):
        return None  # "127.0.0.1." is not an address but a DNS name: it could resolve anywhere
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host).compressed
        except ValueError:
            return None
    if _HOST_NAME.fullmatch(host) is None:
        return None
    return host


def origin_of(url: httpx.URL) -> Origin | None:
    """The origin a request to ``url`` goes to, or ``None`` if no entry can match it."""
    default = DEFAULT_PORTS.get(url.scheme)
    if default is None:
        return None
    host = normal_host(url.raw_host)
    if host is None:
        return None
    return (url.scheme, host, default if url.port is None else url.port)


def origin_text(origin: Origin) -> str:
    """``origin`` as ``scheme://host:port`` (IPv6 hosts in brackets)."""
    scheme, host, port = origin
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


def _host_of(text: str, entry: str) -> str:
    try:
        raw = httpx.URL(f"http://{text}/").raw_host
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise InvalidSpec(f"{_ENTRY_HELP}; {entry!r} has no valid host") from exc
    host = normal_host(raw)
    if host is None:
        raise InvalidSpec(f"{_ENTRY_HELP}; {entry!r} has no valid host")
    return host


def _port_of(text: str, entry: str) -> int:
    if not text.isdecimal() or not text.isascii() or not 0 < int(text) < 65536:
        raise InvalidSpec(f"{_ENTRY_HELP}; the port of {entry!r} is not 1-65535")
    return int(text)


def entry_origins(entry: object) -> frozenset[Origin]:
    """The origins an allowlist entry names (see the module docstring).

    Raises:
        InvalidSpec: ``entry`` is not one of the accepted forms.
    """
    if not isinstance(entry, str) or not entry or entry != entry.strip():
        raise InvalidSpec(f"{_ENTRY_HELP}; got {entry!r}")
    if any(c in entry for c in "@?#\\ ") or any(ord(c) < 33 for c in entry):
        raise InvalidSpec(f"{_ENTRY_HELP}; got {entry!r}")
    scheme: str | None = None
    rest = entry
    if "://" in entry:
        scheme, rest = entry.split("://", 1)
        scheme = scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise InvalidSpec(f"{_ENTRY_HELP}; the scheme of {entry!r} is not http or https")
        rest = rest.removesuffix("/")
    if not rest or "/" in rest:
        raise InvalidSpec(f"{_ENTRY_HELP}; got {entry!r}")
    port: int | None = None
    if rest.startswith("["):
        close = rest.find("]")
        host_text, tail = rest[: close + 1], rest[close + 1 :]
        if close < 0 or (tail and not tail.startswith(":")):
            raise InvalidSpec(f"{_ENTRY_HELP}; got {entry!r}")
        if tail:
            port = _port_of(tail[1:], entry)
    elif rest.count(":") > 1:
        if scheme is not None:  # a URL's IPv6 host is always in brackets
            raise InvalidSpec(f"{_ENTRY_HELP}; write the IPv6 host of {entry!r} in brackets")
        host_text = f"[{rest}]"  # a bare IPv6 address, no port
    elif ":" in rest:
        host_text, port_text = rest.split(":")
        port = _port_of(port_text, entry)
    else:
        host_text = rest
    host = _host_of(host_text, entry)
    if scheme is not None:
        return frozenset({(scheme, host, DEFAULT_PORTS[scheme] if port is None else port)})
    if port is None:
        return frozenset({("https", host, 443), ("http", host, 80)})
    if port == 443:
        return frozenset({("https", host, 443)})
    if port == 80:
        return frozenset({("http", host, 80)})
    return frozenset({("http", host, port), ("https", host, port)})


class Allowlist:
    """The origins an :class:`HttpClient` may reach, from its ``allow_hosts`` entries.

    Raises:
        InvalidSpec: an entry is not one of the accepted forms.
    """

    __slots__ = ("entries", "origins")

    def __init__(self, entries: Iterable[str]) -> None:
        if isinstance(entries, str):
            raise InvalidSpec(f"allow_hosts is a list of entries, not one string: [{entries!r}]")
        self.entries: tuple[str, ...] = tuple(entries)
        origins: set[Origin] = set()
        for entry in self.entries:
            origins |= entry_origins(entry)
        self.origins: frozenset[Origin] = frozenset(origins)

    def allows(self, url: httpx.URL) -> bool:
        """Whether ``url``'s origin is on the list (userinfo is checked elsewhere)."""
        origin = origin_of(url)
        return origin is not None and origin in self.origins

    def permits(self, url: str) -> bool:
        """Whether a request to ``url`` may be sent: it parses, has no userinfo, is allowed.

        Never raises.
        """
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError):
            return False
        return not parsed.userinfo and self.allows(parsed)
