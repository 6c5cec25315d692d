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
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

_MAX_REDIRECTS = 3

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# Every block of the IANA IPv4 Special-Purpose Address Registry, and multicast. The
# registry marks a few of these globally reachable (PCP/TURN anycast, AS112, AMT): they
# are infrastructure that serves no audio files, so they are refused as well.
_SPECIAL_V4 = tuple(
    _V4(block)
    for block in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link local (cloud metadata)
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments (DS-Lite, PCP/TURN anycast, NAT64 discovery)
        "192.0.2.0/24",  # TEST-NET-1
        "192.31.196.0/24",  # AS112-v4
        "192.52.193.0/24",  # AMT
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",  # private
        "192.175.48.0/24",  # direct delegation AS112
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # TEST-NET-2
        "203.0.113.0/24",  # TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and 255.255.255.255 limited broadcast
    )
)
# IPv6: only global unicast (2000::/3) is public, less the IANA IPv6 Special-Purpose
# Address Registry's blocks inside it. Everything outside 2000::/3 is refused: loopback,
# unspecified, IPv4-compatible ::/96 (deprecated), discard-only 100::/64, the dummy prefix,
# 5f00::/16 SRv6, unique local fc00::/7, link local fe80::/10, site-local fec0::/10,
# multicast ff00::/8, and unassigned space. Three forms carry an IPv4 address and are
# judged by it: IPv4-mapped ::ffff:0:0/96, NAT64 64:ff9b::/96 (RFC 6052), 6to4 2002::/16.
_GLOBAL_UNICAST = _V6("2000::/3")
_SPECIAL_V6 = tuple(
    _V6(block)
    for block in (
        "2001::/23",  # IETF protocol assignments: Teredo, PCP/TURN anycast, AMT, ORCHID, DETs
        "2001:db8::/32",  # documentation
        "2620:4f:8000::/48",  # direct delegation AS112
        "3fff::/20",  # documentation
    )
)
_IPV4_MAPPED = _V6("::ffff:0:0/96")
_NAT64 = _V6("64:ff9b::/96")
_SIXTOFOUR = _V6("2002::/16")


class FetchError(ValueError):
    """The URL cannot or may not be fetched (HTTP 400)."""


class FetchTooLargeError(FetchError):
    """The resource is over the upload limit (HTTP 413)."""


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A public unicast address a file may be fetched from: not in any special-purpose
    block (IANA registries, multicast, deprecated IPv6 ranges), and not an IPv6 address
    that carries a non-public IPv4 one (e.g. `64:ff9b::a00:1` reaches 10.0.0.1 on a NAT64
    network). Python's `is_global` must agree as well."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _IPV4_MAPPED or ip in _NAT64:
            return is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip in _SIXTOFOUR:
            return ip.sixtofour is not None and is_public(ip.sixtofour)
        if ip not in _GLOBAL_UNICAST or any(ip in block for block in _SPECIAL_V6):
            return False
    elif any(ip in block for block in _SPECIAL_V4):
        return False
    return ip.is_global and not ip.is_multicast


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


async def fetch_url(
    url: str,
    *,
    max_bytes: int,
    timeout_s: float,
    allow_private: bool,
    write: Callable[[bytes], object],
) -> None:
    """Fetch `url` (checked, pinned, redirects followed and re-checked), handing its body
    to `write` chunk by chunk. `timeout_s` bounds the whole fetch, from resolving the name
    to the last byte, whatever the source's pace (and each connect/read as well)."""
    try:
        async with asyncio.timeout(timeout_s):
            await _fetch(url, max_bytes, timeout_s, allow_private, write)
    except (TimeoutError, httpx.TimeoutException):
        raise FetchError(f"fetching the url took longer than {timeout_s:g} s") from None


async def _fetch(
    url: str,
    max_bytes: int,
    timeout_s: float,
    allow_private: bool,
    write: Callable[[bytes], object],
) -> None:
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
                received = 0
                async for chunk in response.aiter_bytes():
                    received += len(chunk)
                    if received > max_bytes:
                        raise FetchTooLargeError(
                            f"the file at url is over the {max_bytes} byte limit"
                        )
                    write(chunk)
                return
        except httpx.TimeoutException:
            raise
        except httpx.HTTPError as exc:
            raise FetchError(f"could not fetch the url ({type(exc).__name__})") from None
    raise FetchError(f"the url redirected more than {_MAX_REDIRECTS} times")
