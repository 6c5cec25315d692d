"""Refusals before the upgrade, auth, keys and usage, and a client that vanishes."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from tests.support.audio import Clip, pcm16
from tests.support.client import LEGACY, LIVE, chunks, play
from tests.support.server import Server, keys_list

pytestmark = pytest.mark.e2e


async def _refusal(server: Server, path: str, query: str, headers: dict[str, str] | None):
    url = f"{server.ws}{path}?{query}"
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(url, additional_headers=headers or {}):
            pass
    response = info.value.response
    return response.status_code, json.loads(response.body or b"{}")


def refusal(server: Server, query: str, *, path: str = LIVE, headers=None, auth: bool = True):
    if auth and headers is None:
        headers = server.headers()
    return asyncio.run(_refusal(server, path, query, headers))


def test_pulse_pro_is_refused_with_the_documented_message(server: Server) -> None:
    status, body = refusal(server, "model=pulse-pro&language=en")
    assert status == 400
    assert body["message"] == (
        "Pulse Pro has no streaming transport. Use POST /waves/v1/stt/?model=pulse-pro instead."
    )


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("language=en", "model"),
        ("model=whisper", "model"),
        ("model=pulse&sample_rate=44000", "sample_rate"),
        ("model=pulse&encoding=mp3", "encoding"),
        ("model=pulse&word_timestamps=yes", "word_timestamps"),
        ("model=pulse&eou_timeout_ms=50", "eou_timeout_ms"),
        ("model=pulse&language=klingon", "language"),
        ("model=pulse&keywords=foo:99", "keywords"),
        ("model=pulse&max_words=0", "max_words"),
        ("model=pulse&numerals=maybe", "numerals"),
        ("model=pulse&channels=0", "channels"),
        ("model=pulse&channels=2&encoding=opus&sample_rate=48000", "channels"),
        ("model=pulse&channels=9", "channels"),  # over max_channels (8)
    ],
)
def test_invalid_parameters_get_400_naming_the_parameter(server: Server, query: str, param: str):
    status, body = refusal(server, query)
    assert status == 400
    assert body["status"] == "error"
    assert body["param"] == param
    assert param in body["message"]


def test_legacy_path_validates_too(server: Server) -> None:
    status, body = refusal(server, "sample_rate=12345", path=LEGACY)
    assert status == 400 and body["param"] == "sample_rate"
    assert "16000" in body["allowed"]


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}]
)
def test_missing_or_invalid_key_gets_401(server: Server, headers: dict[str, str]) -> None:
    status, body = refusal(server, "model=pulse", headers=headers, auth=False)
    assert status == 401
    assert "Authorization: Bearer" in body["message"]


def test_unknown_parameters_are_ignored(server: Server) -> None:
    got = play(server, "model=pulse&some_future_flag=1", [{"type": "close_stream"}])
    assert got.close_code == 1000 and got.finals[-1]["is_last"]


def test_health_and_ready(server: Server) -> None:
    assert httpx.get(f"{server.http}/health").json()["status"] == "ok"
    assert httpx.get(f"{server.http}/ready").json()["status"] == "ready"


def test_abrupt_disconnect_mid_utterance_leaves_server_serving(
    server: Server, clips: list[Clip]
) -> None:
    async def vanish() -> None:
        url = f"{server.ws}{LIVE}?model=pulse&language=en"
        ws = await websockets.connect(url, additional_headers=server.headers())
        for chunk in chunks(pcm16(clips[0].audio[: 16000 * 3]), 3200):
            await ws.send(chunk)
        ws.transport.abort()  # no close frame: the call just drops

    for _ in range(3):
        asyncio.run(vanish())
    clip = clips[1]
    got = play(
        server, "model=pulse&language=en", [*chunks(pcm16(clip.audio)), {"type": "close_stream"}]
    )
    assert got.close_code == 1000
    assert "young man" in got.final_text.lower()
    assert "Traceback" not in server.log.read_text()


def test_usage_is_recorded_per_key(server: Server, clips: list[Clip]) -> None:
    clip = clips[4]
    play(server, "model=pulse&language=en", [pcm16(clip.audio), {"type": "close_stream"}])
    out, audio_seconds = keys_list(server)
    assert audio_seconds >= clip.audio.size / 16000
    assert server.key not in out  # only a hint of the key is ever shown


def test_idle_stream_is_ended_with_is_last(tmp_path, clips: list[Clip]) -> None:
    """The seed's JavaScript example sends audio, then only `finalize`, and waits for is_last."""
    from tests.support.server import running_server

    clip = clips[4]
    with running_server(tmp_path, idle_timeout_s="2") as srv:
        got = play(
            srv,
            "language=en&sample_rate=16000&encoding=linear16&word_timestamps=true",
            [*chunks(pcm16(clip.audio), 3200), {"type": "finalize"}],
            path=LEGACY,
            timeout=30,
        )
    finals = got.finals
    assert [m["from_finalize"] for m in finals] == [True, False]
    assert "amiable" in finals[0]["transcript"].lower()
    assert finals[-1]["is_last"] and got.close_code == 1000
    # Keepalives every second keep a stream open well past the 2 s timeout; then silence
    # ends it as before.
    (tmp_path / "again").mkdir()
    with running_server(tmp_path / "again", idle_timeout_s="2") as srv:
        got = play(srv, Q, [pcm16(clip.audio), *[1.0, KEEPALIVE] * 6], timeout=60)
    pongs = [got.arrival[i] for i, m in enumerate(got.messages) if m["type"] == "pong"]
    assert len(pongs) == 6 and pongs[-1] > 5.5
    assert got.messages[-1]["is_last"] and got.close_code == 1000
    assert got.arrival[-1] > pongs[-1] + 1.5  # closed for idleness after the last keepalive
    assert clip.matches(got.final_text, 0.1)


KEEPALIVE = {"type": "keepalive"}
Q = "model=pulse&language=en&sample_rate=16000&encoding=linear16"


@pytest.mark.parametrize("path", [LIVE, LEGACY])
def test_keepalive_is_answered_with_pong(server: Server, path: str) -> None:
    got = play(server, Q, [KEEPALIVE, KEEPALIVE, {"type": "close_stream"}], path=path)
    assert [m["type"] for m in got.messages] == ["pong", "pong", "transcription"]
    assert all(m["session_id"] == got.messages[-1]["session_id"] for m in got.messages)
    assert got.messages[-1]["is_last"] and got.close_code == 1000


def test_a_session_quiet_for_20_s_stays_open(server: Server, clips: list[Clip]) -> None:
    """With the default idle timeout a client may send nothing at all for 20 s (LiveKit
    sends a keepalive every 5 s, Pipecat's silence can leave gaps of almost 15 s)."""
    clip = clips[1]
    got = play(server, Q, [pcm16(clip.audio), 21.0, KEEPALIVE, {"type": "close_stream"}])
    assert [m["type"] for m in got.messages][-2:] == ["pong", "transcription"]
    assert got.arrival[-2] > 21.0
    assert got.messages[-1]["is_last"] and got.close_code == 1000
    assert clip.matches(got.final_text, 0.1)
