"""REST `{"url": ...}` fetching cannot reach internal addresses: by literal address, by a
DNS name that resolves to one, through an IPv6 form that carries one, or by a redirect.
DNS and HTTP are faked here (no network); tests/e2e/test_security.py asks a real server."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import httpx
import pytest

from pulse_stt.api.fetch import FetchError, fetch_url, is_public

PUBLIC_IP = "93.184.216.34"
# What each fake DNS name resolves to.
DNS = {
    "files.example": [PUBLIC_IP],
    "loopback.example": ["127.0.0.1"],
    "intranet.example": ["10.1.2.3"],
    "metadata.example": ["169.254.169.254"],
    "v6-loopback.example": ["::1"],
    "split.example": [PUBLIC_IP, "192.168.0.10"],  # one bad answer is enough to refuse
}


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host in DNS:
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (a, port),
                )
                for a in DNS[host]
            ]
        if host.endswith(".example"):
            raise socket.gaierror("unknown name")
        return real(host, port, *args, **kwargs)  # literal addresses

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


class FakeWeb:
    """The only public web server: serves /audio.wav, redirects /go?to=URL."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host != PUBLIC_IP:
            raise AssertionError(f"connected to {request.url.host}: the guard let it through")
        if request.url.path == "/go":
            return httpx.Response(302, headers={"Location": request.url.params["to"]})
        return httpx.Response(200, content=b"RIFF-audio")


@pytest.fixture
def web(monkeypatch: pytest.MonkeyPatch, fake_dns: None) -> FakeWeb:
    fake = FakeWeb()
    original = httpx.AsyncClient

    class Client(original):  # type: ignore[misc, valid-type]
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(transport=httpx.MockTransport(fake), **kwargs)

    monkeypatch.setattr(httpx, "AsyncClient", Client)
    return fake


def fetch(url: str, *, allow_private: bool = False) -> bytes:
    return asyncio.run(fetch_url(url, max_bytes=1 << 20, timeout_s=5, allow_private=allow_private))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.wav",
        "http://127.1/a.wav",  # short form of 127.0.0.1
        "http://2130706433/a.wav",  # 127.0.0.1 as one decimal number
        "http://0x7f.1/a.wav",
        "http://0.0.0.0/a.wav",
        "http://10.0.0.5/a.wav",
        "http://172.16.3.4/a.wav",
        "http://192.168.1.1/a.wav",
        "http://100.64.0.1/a.wav",  # carrier-grade NAT
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://[::1]/a.wav",
        "http://[::ffff:127.0.0.1]/a.wav",  # IPv4-mapped
        "http://[fd00::1]/a.wav",  # unique local
        "http://[fe80::1]/a.wav",  # link-local
        "http://[64:ff9b::a00:1]/a.wav",  # NAT64 of 10.0.0.1
        "http://[2002:a00:1::]/a.wav",  # 6to4 of 10.0.0.1
        "http://loopback.example/a.wav",
        "http://intranet.example/a.wav",
        "http://metadata.example/a.wav",
        "http://v6-loopback.example/a.wav",
        "http://split.example/a.wav",
    ],
)
def test_internal_targets_are_refused_before_connecting(web: FakeWeb, url: str) -> None:
    with pytest.raises(FetchError, match="non-public address"):
        fetch(url)
    assert web.requests == []


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:8000/admin",
        "http://10.0.0.7/x.wav",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x",
        "http://loopback.example/x.wav",
    ],
)
def test_a_redirect_to_an_internal_address_is_refused(web: FakeWeb, target: str) -> None:
    with pytest.raises(FetchError, match="non-public address"):
        fetch(f"http://files.example/go?to={target}")
    assert [r.url.path for r in web.requests] == ["/go"]  # the internal one never asked


def test_public_targets_and_public_redirects_are_fetched(web: FakeWeb) -> None:
    assert fetch("http://files.example/audio.wav") == b"RIFF-audio"
    assert fetch("http://files.example/go?to=http://files.example/audio.wav") == b"RIFF-audio"
    # connected to the address that was checked, with the name in the Host header
    assert {r.headers["host"] for r in web.requests} == {"files.example"}


def test_other_schemes_and_unknown_hosts_are_refused(web: FakeWeb) -> None:
    for url in ("file:///etc/passwd", "ftp://files.example/a.wav", "gopher://x", "/relative"):
        with pytest.raises(FetchError, match="http"):
            fetch(url)
    with pytest.raises(FetchError, match="does not resolve"):
        fetch("http://nowhere.example/a.wav")
    assert web.requests == []


def test_is_public_judges_addresses_that_carry_ipv4_ones() -> None:
    public = ["8.8.8.8", "2606:4700::1111", "64:ff9b::808:808", "2002:808:808::"]
    internal = ["::ffff:10.0.0.1", "64:ff9b::7f00:1", "64:ff9b:1::a00:1", "2002:c0a8:101::"]
    assert all(is_public(ipaddress.ip_address(a)) for a in public)
    assert not any(is_public(ipaddress.ip_address(a)) for a in internal)
