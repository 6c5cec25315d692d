"""End to end: `/metrics`, `/ready` and the structured logs of a real server under real sessions."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import websockets

from pulse_stt import __version__
from tests.support.audio import Clip, join, pcm16, silence, wav_bytes
from tests.support.client import Pace, Received, chunks, play
from tests.support.prometheus import Samples, parse_samples, value
from tests.support.server import Server, running_server

pytestmark = pytest.mark.e2e

Q = "model=pulse&language=en&sample_rate=16000&encoding=linear16"
FINALIZE = {"type": "finalize"}
CLOSE = {"type": "close_stream"}


def scrape(server: Server) -> Samples:
    response = httpx.get(f"{server.http}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse_samples(response.text)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def scrape_until(server: Server, settled: Callable[[Samples], bool]) -> Samples:
    """The server finishes a session just after its close frame: scrape until `settled`
    (or 5 s have passed; the caller's assertions then say what is missing)."""
    deadline = time.monotonic() + 5
    while True:
        samples = scrape(server)
        if settled(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def speech_then_finalize(clip: Clip) -> tuple[bytes, list[object]]:
    pcm = pcm16(join(clip.audio, silence(0.3)))
    return pcm, [*chunks(pcm, 3200), FINALIZE, 1.0, CLOSE]


def test_health_ready_and_metrics_endpoints(server: Server) -> None:
    assert httpx.get(f"{server.http}/health").json()["status"] == "ok"
    ready = httpx.get(f"{server.http}/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    samples = scrape(server)  # unauthenticated by default, like any scrape target
    assert value(samples, "pulse_stt_queue_depth", model="pulse", queue="finals") == 0
    assert value(samples, "pulse_stt_build_info", version=__version__) == 1


def test_metrics_move_after_a_session(server: Server, clips: list[Clip]) -> None:
    clip = clips[0]
    pcm, steps = speech_then_finalize(clip)
    # An earlier test's session may still be ending on the server (it ends just after its
    # close frame): start from a quiet server.
    before = scrape_until(
        server, lambda s: value(s, "pulse_stt_active_sessions", endpoint="live") == 0
    )
    active = value(before, "pulse_stt_active_sessions", endpoint="live")
    started = time.monotonic()
    got = play(
        server,
        Q + "&word_timestamps=true&vad_events=true",
        steps,
        pace=Pace(32000, speed=2.0),
    )
    wall = time.monotonic() - started
    after = scrape_until(
        server, lambda s: value(s, "pulse_stt_active_sessions", endpoint="live") == active
    )
    assert got.close_code == 1000
    # (A pause in the clip may end a turn on its own first: an eou final.)
    assert got.finals[-2]["from_finalize"] and got.finals[-1]["is_last"]
    spoken_turns = [m for m in got.finals if m["transcript"]]

    assert moved(before, after, "pulse_stt_sessions_total", endpoint="live") == 1
    assert value(after, "pulse_stt_active_sessions", endpoint="live") == active
    assert moved(before, after, "pulse_stt_audio_seconds_total", kind="stream") == pytest.approx(
        len(pcm) / 32000, abs=1e-3
    )
    # The server counted exactly what this client received.
    vad = len(got.of_type("speech_started")) + len(got.of_type("speech_ended"))
    assert vad >= 1
    assert moved(before, after, "pulse_stt_messages_total", type="vad") == vad
    assert moved(before, after, "pulse_stt_messages_total", type="partial") == len(got.partials)
    assert moved(before, after, "pulse_stt_messages_total", type="final") == len(got.finals)
    assert moved(before, after, "pulse_stt_messages_total", type="error") == 0
    assert moved(before, after, "pulse_stt_finals_total", reason="finalize") == 1
    assert moved(before, after, "pulse_stt_finals_total", reason="close") == 1
    eou = moved(before, after, "pulse_stt_finals_total", reason="eou")
    assert eou == len(got.finals) - 2

    assert moved(before, after, "pulse_stt_finalize_seconds_count") == 1
    finalize_s = moved(before, after, "pulse_stt_finalize_seconds_sum")
    assert 0 < finalize_s < wall
    # One per turn that had speech.
    assert moved(before, after, "pulse_stt_first_transcript_seconds_count") == len(spoken_turns)
    first_s = moved(before, after, "pulse_stt_first_transcript_seconds_sum")
    assert 0 < first_s < wall
    spoken = sum(len(m["words"]) for m in got.finals)
    lags = moved(before, after, "pulse_stt_word_lag_seconds_count")
    assert spoken > 5 and lags >= 1
    assert 0 < moved(before, after, "pulse_stt_word_lag_seconds_sum") / lags < wall
    assert moved(before, after, "pulse_stt_decode_pass_seconds_count", kind="final") >= 1
    if got.partials:
        assert moved(before, after, "pulse_stt_decode_pass_seconds_count", kind="partial") >= 1
    assert moved(before, after, "pulse_stt_decode_pass_seconds_sum", kind="final") > 0


async def _refused(server: Server, query: str, key: str) -> int:
    url = f"{server.ws}/waves/v1/stt/live?{query}"
    try:
        async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {key}"}):
            pass
    except websockets.InvalidStatus as exc:
        return exc.response.status_code
    raise AssertionError("the handshake was accepted")


async def _oversized_frame(server: Server) -> int | None:
    """Send one binary frame over the server's 1 MiB limit; the close code it answers."""
    url = f"{server.ws}/waves/v1/stt/live?{Q}"
    async with websockets.connect(url, additional_headers=server.headers()) as ws:
        await ws.send(bytes((1 << 20) + 2))
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 30)
        return ws.close_code


def test_errors_are_counted_by_kind(server: Server) -> None:
    before = scrape(server)
    assert asyncio.run(_refused(server, Q.replace("16000", "12345"), server.key)) == 400
    assert asyncio.run(_refused(server, Q, "pstt_not_a_key")) == 401
    got = play(
        server,
        Q.replace("linear16", "ogg_opus"),
        [b"definitely not an ogg stream" * 40, "{not json", CLOSE],
    )
    assert {m["error"] for m in got.of_type("error")} == {"bad_audio", "bad_message"}
    empty = httpx.post(f"{server.http}/waves/v1/stt?model=pulse", headers=server.headers())
    assert empty.status_code == 400
    assert asyncio.run(_oversized_frame(server)) == 1009  # message too big
    after = scrape_until(
        server, lambda s: moved(before, s, "pulse_stt_errors_total", kind="too_large") > 0
    )
    assert moved(before, after, "pulse_stt_errors_total", kind="too_large") == 1
    assert moved(before, after, "pulse_stt_errors_total", kind="invalid_parameter") == 1
    assert moved(before, after, "pulse_stt_errors_total", kind="unauthorized") == 1
    assert moved(before, after, "pulse_stt_errors_total", kind="bad_audio") == len(
        [m for m in got.of_type("error") if m["error"] == "bad_audio"]
    )
    assert moved(before, after, "pulse_stt_errors_total", kind="bad_message") == 1
    assert moved(before, after, "pulse_stt_errors_total", kind="empty_body") == 1
    assert moved(before, after, "pulse_stt_messages_total", type="error") == len(
        got.of_type("error")
    )
    assert moved(before, after, "pulse_stt_rest_requests_total", status="400") == 1


def test_a_rest_request_counts_its_audio_and_file_passes(server: Server, clips: list[Clip]) -> None:
    clip = clips[1]
    before = scrape(server)
    response = httpx.post(
        f"{server.http}/waves/v1/stt?model=pulse&language=en",
        headers={**server.headers(), "Content-Type": "audio/wav"},
        content=wav_bytes(clip.audio),
        timeout=120,
    )
    assert response.status_code == 200, response.text
    duration = response.json()["metadata"]["duration"]
    after = scrape(server)
    assert moved(before, after, "pulse_stt_rest_requests_total", status="200") == 1
    assert moved(before, after, "pulse_stt_audio_seconds_total", kind="file") == pytest.approx(
        duration, abs=1e-3
    )
    assert duration == pytest.approx(clip.audio.size / 16000, abs=0.01)
    assert moved(before, after, "pulse_stt_decode_pass_seconds_count", kind="file") >= 1


# -- logs ------------------------------------------------------------------------------------

HUMAN_LINES = ("pulse-stt listening on ", "Created an API key")


def _session_log(tmp_path: Path, clip: Clip, **settings: str) -> tuple[list[str], Received]:
    """Run a server with `settings`, stream `clip` with finalize and close and send it to
    REST, stop the server; returns the log lines (stdout and stderr) and what the session
    received."""
    with running_server(tmp_path, log_level="info", **settings) as srv:
        _, steps = speech_then_finalize(clip)
        got = play(srv, Q, steps)
        rest = httpx.post(
            f"{srv.http}/waves/v1/stt?model=pulse&language=en",
            headers={**srv.headers(), "Content-Type": "audio/wav"},
            content=wav_bytes(clip.audio),
            timeout=120,
        )
        assert rest.status_code == 200
    assert got.close_code == 1000
    return srv.log.read_text().splitlines(), got


def _distinctive_words(text: str) -> list[str]:
    """Words of the transcript that no log line would carry by chance."""
    words = {w.strip(".,!?;:").lower() for w in text.split()}
    return sorted(w for w in words if len(w) >= 6)


def test_json_logs_carry_session_ids_and_no_transcript(tmp_path: Path, clips: list[Clip]) -> None:
    lines, got = _session_log(tmp_path, clips[0], log_format="json")
    session_id = got.finals[0]["session_id"]
    records = []
    for line in lines:
        if line.startswith(HUMAN_LINES):  # printed for people on stdout, same file here
            continue
        records.append(json.loads(line))  # every other line is one JSON object
    assert records
    for record in records:
        assert {"timestamp", "level", "logger", "message"} <= record.keys(), record
    mine = [r for r in records if r.get("session_id") == session_id]
    started = next(r for r in mine if r["message"] == "session started")
    assert (started["encoding"], started["sample_rate"], started["language"]) == (
        "linear16",
        16000,
        "en",
    )
    ended = next(r for r in mine if r["message"] == "session ended")
    assert ended["finals"] == len(got.finals) and ended["close_code"] == 1000
    assert ended["close_reason"] == "close_stream" and ended["audio_s"] > 0
    rest = next(r for r in records if r["message"] == "rest request")
    assert rest["status"] == 200 and rest["request_id"] and rest["audio_s"] > 0
    assert any(r["logger"].startswith("uvicorn") for r in records)  # same formatter
    words = _distinctive_words(got.final_text)
    assert words, got.final_text
    log_text = "\n".join(lines).lower()
    assert not [w for w in words if w in log_text]
    assert "pstt_e2e_test_key" not in log_text


def test_transcripts_are_logged_when_the_operator_turns_it_on(
    tmp_path: Path, clips: list[Clip]
) -> None:
    lines, got = _session_log(tmp_path, clips[0], log_format="text", log_transcripts="true")
    session_id = got.finals[0]["session_id"]
    finals = [line for line in lines if ": final " in line and session_id in line]
    assert len(finals) == len(got.finals), "\n".join(lines[-20:])
    log_text = "\n".join(lines).lower()
    words = _distinctive_words(got.final_text)
    assert words and all(w in log_text for w in words)
    rest = next(line for line in lines if "rest request" in line)
    assert "transcript=" in rest and "request_id=" in rest
