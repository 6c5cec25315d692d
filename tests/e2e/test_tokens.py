"""Browser tokens against the real server: minted with a key, streamed with as `?token=`
or as a subprotocol, refused before the upgrade once expired, usable on REST, unable to
mint, ended by revoking their key, and kept out of the server's log.

Most tests run against a second server that shares the session server's database (as
several processes share one PostgreSQL), logs at `info` (where uvicorn writes every
WebSocket path with its query string) and has a non-default `token_ttl_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.support.audio import Clip, pcm16, write_wav
from tests.support.client import LIVE, chunks
from tests.support.server import Server, keys_list, running_server

pytestmark = pytest.mark.e2e

QUERY = "model=pulse&language=en"
TTL_CAP_S = 120
GRACE_S = 1  # token_session_grace_s: a token's sessions end 1 s after it expires


@pytest.fixture(scope="module")
def token_server(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A second server on the session server's database (as several processes share one
    PostgreSQL), logging at `info` and with a non-default `token_ttl_s`."""
    shared_db = f"sqlite:///{server.env['PULSE_STT_DATA_DIR']}/pulse-stt.db"
    settings = {
        "log_level": "info",
        "token_ttl_s": str(TTL_CAP_S),
        "database_url": shared_db,
        "token_session_grace_s": str(GRACE_S),
    }
    with running_server(tmp_path_factory.mktemp("token-server"), **settings) as running:
        yield running
    problems = [line for line in running.log.read_text().splitlines() if "Traceback" in line]
    assert not problems, running.log.read_text()[-5000:]


def mint(server: Server, secret: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.post(
        f"{server.http}/v1/tokens",
        headers={"Authorization": f"Bearer {secret}"},
        json=body,
        timeout=10,
    )


def fresh_token(server: Server, **body: Any) -> str:
    response = mint(server, server.key, body or None)
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


async def _stream(url: str, audio: bytes, subprotocols: list[str] | None) -> tuple[str, list[str]]:
    """Stream like a browser does (no Authorization header); the accepted subprotocol and
    the final transcripts."""
    finals: list[str] = []
    async with websockets.connect(url, subprotocols=subprotocols, max_size=None) as ws:
        accepted = ws.subprotocol
        for frame in chunks(audio, 1280):  # 40 ms frames, as the page sends them
            await ws.send(frame)
        await ws.send(json.dumps({"type": "close_stream"}))
        async for raw in ws:
            message = json.loads(raw)
            if message.get("is_final") and message["transcript"]:
                finals.append(message["transcript"])
            if message.get("is_last"):
                break
    return str(accepted), finals


async def _refusal(url: str, subprotocols: list[str] | None = None) -> tuple[int, dict[str, Any]]:
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(url, subprotocols=subprotocols):
            pass
    response = info.value.response
    return response.status_code, json.loads(response.body or b"{}")


def refusal(url: str, subprotocols: list[str] | None = None) -> tuple[int, dict[str, Any]]:
    return asyncio.run(_refusal(url, subprotocols))


def test_minted_token_has_the_documented_shape(token_server: Server) -> None:
    response = mint(token_server, token_server.key)
    assert response.status_code == 200
    body = response.json()
    assert body["token"].startswith("pstt_tok_") and body["token_type"] == "Bearer"
    assert body["expires_in"] == TTL_CAP_S  # this server's token_ttl_s
    expires = time.mktime(time.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ"))
    assert abs(expires - time.mktime(time.gmtime()) - TTL_CAP_S) < 30
    assert mint(token_server, token_server.key, {"ttl_s": 30}).json()["expires_in"] == 30
    assert mint(token_server, token_server.key, {"ttl_s": 10**6}).json()["expires_in"] == TTL_CAP_S
    bad = mint(token_server, token_server.key, {"ttl_s": -1})
    assert bad.status_code == 400 and bad.json()["param"] == "ttl_s"
    assert mint(token_server, "pstt_not_a_key").status_code == 401


@pytest.mark.parametrize("way", ["query", "subprotocol"])
def test_stream_with_a_token(token_server: Server, clips: list[Clip], way: str) -> None:
    clip = clips[1]
    token = fresh_token(token_server)
    _, seconds_before = keys_list(token_server)
    url = f"{token_server.ws}{LIVE}?{QUERY}"
    if way == "query":
        accepted, finals = asyncio.run(_stream(f"{url}&token={token}", pcm16(clip.audio), None))
        assert accepted == "None"
    else:
        offered = ["pulse-stt", f"bearer.{token}"]
        accepted, finals = asyncio.run(_stream(url, pcm16(clip.audio), offered))
        assert accepted == "pulse-stt"  # what a browser needs to complete the handshake
    assert clip.matches(" ".join(finals), 0.12), finals
    # Usage is recorded against the key that minted the token (once the session is over).
    expected = clip.audio.size / 16000
    deadline = time.monotonic() + 10
    while (added := keys_list(token_server)[1] - seconds_before) < expected - 0.2:
        assert time.monotonic() < deadline, f"{added} s recorded, expected {expected}"
        time.sleep(0.2)
    assert added == pytest.approx(expected, abs=0.2)
    # uvicorn logs every WebSocket path with its query string; the token must not be there.
    log = token_server.log.read_text()
    assert "WebSocket /waves/v1/stt/live?" in log and token not in log
    if way == "query":
        assert "token=[redacted]" in log


def test_expired_bogus_and_misplaced_credentials_get_401_before_upgrade(
    token_server: Server,
) -> None:
    url = f"{token_server.ws}{LIVE}?{QUERY}"
    short = fresh_token(token_server, ttl_s=1)
    time.sleep(1.3)
    live = fresh_token(token_server)
    cases = [
        (f"{url}&token={short}", None),  # expired
        (url, ["pulse-stt", f"bearer.{short}"]),
        (f"{url}&token=pstt_tok_bogus", None),
        (url, ["pulse-stt", "bearer.pstt_tok_bogus"]),
        (f"{url}&token={token_server.key}", None),  # a long-lived key never rides in a URL
        (url, ["bearer." + live]),  # nothing the server could safely answer
        (url, None),
    ]
    for target, offered in cases:
        status, body = refusal(target, offered)
        assert status == 401, (target, offered)
        assert "POST /v1/tokens" in body["message"] and "token=<token>" in body["message"]


def test_rest_accepts_a_token_as_bearer(
    token_server: Server, clips: list[Clip], tmp_path: Path
) -> None:
    clip = clips[3]
    wav = tmp_path / "clip.wav"
    write_wav(clip.audio, 16000, wav)
    response = httpx.post(
        f"{token_server.http}/waves/v1/stt/?model=pulse&language=en",
        headers={
            "Authorization": f"Bearer {fresh_token(token_server)}",
            "Content-Type": "audio/wav",
        },
        content=wav.read_bytes(),
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert clip.matches(response.json()["transcription"], 0.12)
    expired = fresh_token(token_server, ttl_s=1)
    time.sleep(1.3)
    refused = httpx.post(
        f"{token_server.http}/waves/v1/stt/?model=pulse",
        headers={"Authorization": f"Bearer {expired}"},
        content=wav.read_bytes(),
        timeout=30,
    )
    assert refused.status_code == 401


def test_a_token_cannot_mint_and_dies_with_its_key(token_server: Server) -> None:
    forbidden = mint(token_server, fresh_token(token_server))
    assert forbidden.status_code == 403 and "cannot mint" in forbidden.json()["message"]

    # A key made and revoked by the CLI (another process on the same database).
    def keys(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "pulse_stt", "keys", *args],
            env=token_server.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    created = keys("create", "--name", "browser-demo").splitlines()
    key_id, secret = created[0].split()[0].removeprefix("id="), created[1].strip()
    token = fresh_token(
        Server(token_server.host, token_server.port, secret, token_server.env, token_server.log)
    )
    probe = f"{token_server.http}{LIVE}?{QUERY}"
    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(probe, headers=bearer, timeout=10).status_code == 426  # would be accepted
    keys("revoke", key_id)
    assert httpx.get(probe, headers=bearer, timeout=10).status_code == 401
    status, _ = refusal(f"{token_server.ws}{LIVE}?{QUERY}&token={token}")
    assert status == 401


def test_a_token_minted_by_one_process_works_on_another(
    server: Server, token_server: Server, clips: list[Clip]
) -> None:
    clip = clips[4]
    for minter, user in ((server, token_server), (token_server, server)):
        token = fresh_token(minter)
        url = f"{user.ws}{LIVE}?{QUERY}"
        offered = ["pulse-stt", f"bearer.{token}"]
        accepted, finals = asyncio.run(_stream(url, pcm16(clip.audio), offered))
        assert accepted == "pulse-stt" and clip.matches(" ".join(finals), 0.12), finals


def test_handshake_probe_tells_what_the_upgrade_would_answer(token_server: Server) -> None:
    """Browsers cannot read a refused handshake; the page asks GET on the same URL."""
    bearer = {"Authorization": f"Bearer {fresh_token(token_server)}"}
    for path in (LIVE, "/waves/v1/pulse/get_text"):
        ok = httpx.get(f"{token_server.http}{path}?{QUERY}", headers=bearer, timeout=10)
        assert ok.status_code == 426 and ok.headers["upgrade"] == "websocket"
    bad_query = f"{QUERY}&keywords=foo:99"
    probed = httpx.get(f"{token_server.http}{LIVE}?{bad_query}", headers=bearer, timeout=10)
    status, body = refusal(
        f"{token_server.ws}{LIVE}?{bad_query}&token={bearer['Authorization'][7:]}"
    )
    assert probed.status_code == status == 400
    assert probed.json() == body and body["param"] == "keywords"
    assert httpx.get(f"{token_server.http}{LIVE}?{QUERY}", timeout=10).status_code == 401


# -- a token's fair share (issue 20 row 2) --------------------------------------------------


def test_a_token_holds_at_most_its_cap_and_its_key_still_gets_in(token_server: Server) -> None:
    """The probe: one 60 s token opened 64 sessions. A token holds token_max_sessions (4 by
    default); another token of the same key, and the key itself, still get in."""
    token = fresh_token(token_server)

    async def scenario() -> tuple[int, dict[str, Any], int | None, int, str]:
        url = f"{token_server.ws}{LIVE}?{QUERY}&token="
        async with contextlib.AsyncExitStack() as held:
            opened = 0
            while True:
                ws = await held.enter_async_context(websockets.connect(url + token))
                with contextlib.suppress(TimeoutError):
                    refusal = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                    with pytest.raises(websockets.ConnectionClosed):
                        await asyncio.wait_for(ws.recv(), 10)
                    break
                opened += 1
                assert opened <= 64, "a token has no cap of its own"
            async with websockets.connect(url + fresh_token(token_server)) as other:
                await other.send(json.dumps({"type": "keepalive"}))
                pong = json.loads(await asyncio.wait_for(other.recv(), 10))["type"]
            async with httpx.AsyncClient(timeout=30) as http:
                rest = await http.post(
                    f"{token_server.http}/waves/v1/stt/?model=pulse",
                    content=b"",
                    headers={"Authorization": f"Bearer {token}"},
                )
            return opened, refusal, ws.close_code, rest.status_code, pong

    opened, refusal, code, rest, pong = asyncio.run(scenario())
    assert opened == 4  # token_max_sessions
    assert refusal["error"] == "too_many_sessions" and "token_max_sessions" in refusal["message"]
    assert code == 1008 and rest == 429 and pong == "pong"


def test_a_token_session_ends_a_bounded_time_after_the_token_expires(
    token_server: Server,
) -> None:
    """The probe kept a 60 s token's sessions open past its expiry with 320 bytes every 5 s.
    Here a 2 s token's session is ended token_session_grace_s (1 s) after it expires, as
    close_stream would: an error message that says why, then close 1000."""
    token = fresh_token(token_server, ttl_s=2)
    opened = time.monotonic()

    async def scenario() -> tuple[list[dict[str, Any]], int | None]:
        url = f"{token_server.ws}{LIVE}?{QUERY}&token={token}"
        messages: list[dict[str, Any]] = []
        async with websockets.connect(url) as ws:

            async def keep_sending() -> None:
                while True:
                    await ws.send(bytes(320))
                    await asyncio.sleep(0.5)

            sender = asyncio.create_task(keep_sending())
            try:
                async with asyncio.timeout(20):
                    async for raw in ws:
                        messages.append(json.loads(raw))
            except TimeoutError:
                pass
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                    await sender
            return messages, ws.close_code

    messages, code = asyncio.run(scenario())
    lasted = time.monotonic() - opened
    errors = [m for m in messages if m.get("type") == "error"]
    assert [e["error"] for e in errors] == ["session_too_long"], messages
    assert "token_session_grace_s" in errors[0]["message"]
    assert code == 1000 and lasted < 15, (code, lasted)
