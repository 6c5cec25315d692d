"""Fetching audio for REST `{"url": ...}` bodies, safely by default.

Only http(s); every address the host resolves to must be public (no loopback, private,
link-local, multicast or reserved targets) unless the operator allows private ones; we
connect to the address we checked (no DNS rebinding in between), follow at most a few
redirects with the same check, and stop at the size and time limits.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

_MAX_REDIRECTS = 3
# IPv6 prefixes that reach IPv4 hosts through a translator: judged by the IPv4 address
# they carry (RFC 6052 well-known NAT64 prefix), or refused outright (RFC 8215 local use).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


class FetchError(ValueError):
    """The URL cannot or may not be fetched (HTTP 400)."""


class FetchTooLargeError(FetchError):
    """The resource is over the upload limit (HTTP 413)."""


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable, and not an IPv6 address that carries a non-public IPv4 one
    (IPv4-mapped, 6to4, NAT64: e.g. `64:ff9b::a00:1` reaches 10.0.0.1 on a NAT64 network)."""
    if not ip.is_global:
        return False
    if isinstance(ip, ipaddress.IPv4Address):
        return True
    if ip in _NAT64_LOCAL:
        return False
    embedded = ip.ipv4_mapped or ip.sixtofour
    if ip in _NAT64:
        embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return embedded is None or embedded.is_global


async def _resolve_checked(host: str, port: int, allow_private: bool) -> str:
    try:
        infos = await asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise FetchError(f"the URL's host {host!r} does not resolve") from None
    addresses = [str(info[4][0]) for info in infos]  # sockaddr: (host, port, ...)
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not allow_private and not is_public(ip):
            raise FetchError(
                f"the URL's host {host!r} resolves to a non-public address; upload the file "
                "in the request body instead (operators can allow this with "
                "PULSE_STT_ALLOW_PRIVATE_URLS=true)"
            )
    return addresses[0]


@dataclass(frozen=True)
class PinnedUrl:
    """A URL whose host was resolved and checked: connect to `url` (the checked address),
    sending `host` as the Host header and `sni` as the TLS server name."""

    url: str
    host: str
    sni: str


async def pin_url(url: str, *, allow_private: bool) -> PinnedUrl:
    """Check an http(s) URL's scheme and every address of its host; the URL rewritten to the
    checked address, so DNS cannot change between the check and the connection."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError("url must be an absolute http:// or https:// URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = await _resolve_checked(parts.hostname, port, allow_private)
    pinned_host = f"[{address}]" if ":" in address else address
    pinned = urlunsplit(parts._replace(netloc=f"{pinned_host}:{port}"))
    return PinnedUrl(pinned, parts.netloc.rsplit("@", 1)[-1], parts.hostname)


async def fetch_url(url: str, *, max_bytes: int, timeout_s: float, allow_private: bool) -> bytes:
    for _ in range(_MAX_REDIRECTS + 1):
        target = await pin_url(url, allow_private=allow_private)
        try:
            async with (
                httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client,
                client.stream(
                    "GET",
                    target.url,
                    headers={"Host": target.host},
                    extensions={"sni_hostname": target.sni},
                ) as response,
            ):
                if response.is_redirect and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                if response.status_code != 200:
                    raise FetchError(f"fetching the url returned HTTP {response.status_code}")
                declared = int(response.headers.get("content-length") or 0)
                if declared > max_bytes:
                    raise FetchTooLargeError(f"the file at url is over the {max_bytes} byte limit")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise FetchTooLargeError(
                            f"the file at url is over the {max_bytes} byte limit"
                        )
                return bytes(body)
        except httpx.TimeoutException:
            raise FetchError(f"fetching the url took longer than {timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"could not fetch the url ({type(exc).__name__})") from None
    raise FetchError(f"the url redirected more than {_MAX_REDIRECTS} times")
