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
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

_MAX_REDIRECTS = 3


class FetchError(ValueError):
    """The URL cannot or may not be fetched (HTTP 400)."""


class FetchTooLargeError(FetchError):
    """The resource is over the upload limit (HTTP 413)."""


async def _resolve_checked(host: str, port: int, allow_private: bool) -> str:
    try:
        infos = await asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise FetchError(f"the URL's host {host!r} does not resolve") from None
    addresses = [info[4][0] for info in infos]
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not allow_private and not ip.is_global:
            raise FetchError(
                f"the URL's host {host!r} resolves to a non-public address; upload the file "
                "in the request body instead (operators can allow this with "
                "PULSE_STT_ALLOW_PRIVATE_URLS=true)"
            )
    return addresses[0]


async def fetch_url(url: str, *, max_bytes: int, timeout_s: float, allow_private: bool) -> bytes:
    for _ in range(_MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError("url must be an absolute http:// or https:// URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = await _resolve_checked(parts.hostname, port, allow_private)
        pinned_host = f"[{address}]" if ":" in address else address
        pinned = urlunsplit(parts._replace(netloc=f"{pinned_host}:{port}"))
        headers = {"Host": parts.netloc.rsplit("@", 1)[-1]}
        try:
            async with (
                httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client,
                client.stream(
                    "GET", pinned, headers=headers, extensions={"sni_hostname": parts.hostname}
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
