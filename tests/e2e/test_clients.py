"""The ecosystem's Pulse clients, unchanged and with their DEFAULT options, against the real
server (issue 16): LiveKit Agents' plugin streaming two turns in real time, Pipecat's
service in a minimal pipeline with VAD frames and a 14 s hold without audio, the official
SDK's REST transcription and streaming helper. Only the base URL and the key differ from
what each client does against the hosted API.

Each client runs as a script in its own virtual environment (tests/support/clients/,
`make clients`) and reports what it saw as JSON; the connections are counted on the
server's side (`pulse_stt_sessions_total`). docs/CLIENTS.md is the page for users.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.audio import Clip, corpus_wer, encode_file, join, silence
from tests.support.clients import run_client, write_raw
from tests.support.prometheus import scrape_samples, total
from tests.support.server import Server

pytestmark = pytest.mark.e2e

# WER over each test's whole set of words (31 to 83 of them): a garbled turn, a lost
# turn or fragments of a turn repeated across a reconnect push it far past this.
MAX_WER = 0.15


def sessions(server: Server) -> float:
    """WebSocket sessions the server has accepted so far, over all endpoints."""
    return total(scrape_samples(server.http), "pulse_stt_sessions_total")


def turn_files(turns: list[Clip], tmp_path: Path) -> list[str]:
    args = []
    for i, clip in enumerate(turns):
        args += ["--turn", write_raw(clip.audio, tmp_path / f"turn{i}.raw")]
    return args


def failure(result: dict[str, Any]) -> str:
    """The client's own log, for the assertion message."""
    return "client log:\n" + result["_stderr"]


def test_livekit_streams_two_turns_on_one_connection(
    server: Server, clips: list[Clip], tmp_path: Path
):
    """The plugin's `STT.stream()` with its defaults (keepalive every 5 s, endpointing 300 ms,
    vad_events, word timestamps), fed two turns in real time with 2.5 s of silence between:
    one connection, no error, START/END_OF_SPEECH paired, one START per turn, the finals'
    words right."""
    turns = [clips[0], clips[3]]  # 7.1 s and 6.1 s, 44 words
    before = sessions(server)
    result = run_client(
        "livekit_stream.py",
        "--base-url",
        f"{server.http}/waves/v1",
        "--key",
        server.key,
        *turn_files(turns, tmp_path),
        "--gap",
        "2.5",
        timeout=120,
    )
    connections = sessions(server) - before

    assert result["errors"] == [] and result["exception"] is None, failure(result)
    assert connections == 1, failure(result)
    events = result["events"]
    marks = [e["type"] for e in events if e["type"] in ("start_of_speech", "end_of_speech")]
    assert marks == ["start_of_speech", "end_of_speech"] * len(turns), (marks, events)
    finals = [e["text"] for e in events if e["type"] == "final_transcript"]
    hypothesis = " ".join(finals)
    reference = " ".join(c.text for c in turns)
    assert corpus_wer([reference], [hypothesis]) <= MAX_WER, (hypothesis, events)


def test_livekit_recognize_posts_to_rest(server: Server, clips: list[Clip], tmp_path: Path):
    """The plugin's batch path, `STT.recognize()` (a WAV POSTed to `{base_url}/stt/`), with
    its defaults: one FINAL_TRANSCRIPT with the words right."""
    turns = [clips[1], clips[4]]
    result = run_client(
        "livekit_stream.py",
        "--base-url",
        f"{server.http}/waves/v1",
        "--key",
        server.key,
        *turn_files(turns, tmp_path),
        "--batch",
        timeout=60,
    )
    assert result["errors"] == [] and result["type"] == "final_transcript", failure(result)
    reference = " ".join(c.text for c in turns)
    assert corpus_wer([reference], [result["text"]]) <= MAX_WER, result["text"]
    assert result["language"] == "en"


def test_pipecat_pipeline_with_vad_frames_and_a_long_hold(
    server: Server, clips: list[Clip], tmp_path: Path
):
    """`SmallestSTTService` with its default settings (endpointing, emotion/gender detection,
    numerals=auto, no_format_delay, its silence keepalive after 10 s idle) in a pipeline:
    a turn with the VAD frames Pipecat's VAD emits (the service finalizes on
    VADUserStoppedSpeakingFrame), 14 s without any audio, another turn: one connection, no
    ErrorFrame, one final per turn, the words right."""
    turns = [clips[3], clips[2]]  # 6.1 s and 5.3 s, 34 words
    before = sessions(server)
    result = run_client(
        "pipecat_pipeline.py",
        "--base-url",
        server.ws,
        "--key",
        server.key,
        *turn_files(turns, tmp_path),
        "--hold",
        "14",
        timeout=150,
    )
    connections = sessions(server) - before

    assert result["error_frames"] == [] and result["pipeline_errors"] == [], failure(result)
    assert connections == 1, (result["connection_events"], failure(result))
    assert not [e for e in result["connection_events"] if e["event"] == "on_connection_error"]
    texts = [t["text"] for t in result["transcripts"]]
    reference = " ".join(c.text for c in turns)
    assert corpus_wer([reference], [" ".join(texts)]) <= MAX_WER, texts
    # The second turn's words arrive after the hold, not lost with a closed socket.
    second = [t for t in result["transcripts"] if t["t"] > 14]
    assert corpus_wer([turns[1].text], [" ".join(t["text"] for t in second)]) <= 0.25, texts


def test_pipecat_pulse_2_setting(server: Server, clips: list[Clip], tmp_path: Path):
    """Pipecat's other model, `SmallestSTTModel.PULSE_2` (English only), the one setting
    changed: accepted as an alias of pulse, so the service stays usable and transcribes."""
    turns = [clips[1], clips[4]]  # 3.0 s and 3.3 s, 16 words
    before = sessions(server)
    result = run_client(
        "pipecat_pipeline.py",
        "--base-url",
        server.ws,
        "--key",
        server.key,
        *turn_files(turns, tmp_path),
        "--hold",
        "1",
        "--model",
        "pulse-2",
        timeout=90,
    )

    assert result["error_frames"] == [] and result["pipeline_errors"] == [], failure(result)
    assert sessions(server) - before == 1, failure(result)
    texts = [t["text"] for t in result["transcripts"]]
    assert corpus_wer([" ".join(c.text for c in turns)], [" ".join(texts)]) <= MAX_WER, texts


def test_sdk_rest_transcribes_a_file(server: Server, clips: list[Clip], tmp_path: Path):
    """`client.waves.speech_to_text.transcribe(model="pulse", language="en", request=bytes)`,
    the SDK's two required arguments and nothing else: its typed response, the words right,
    the fields its types declare (request_id, metadata)."""
    parts = []
    for clip in clips:
        parts += [clip.audio, silence(1.0)]
    audio = join(*parts)
    wav = tmp_path / "five.wav"
    wav.write_bytes(encode_file(audio, "wav", "pcm_s16le", 16000, 1))
    result = run_client(
        "sdk.py", "rest", "--url", server.http, "--key", server.key, "--file", str(wav)
    )
    response = result["response"]

    assert result["class"] == "TranscriptionResponse", response
    assert response["status"] == "success", response
    reference = " ".join(c.text for c in clips)
    assert corpus_wer([reference], [response["transcription"]]) <= MAX_WER, response
    assert response["language"] == "en"
    assert abs(response["metadata"]["duration"] - audio.size / 16000) < 0.15, response
    assert response["metadata"]["fileSize"] == wav.stat().st_size
    assert isinstance(response.get("request_id"), str) and response["request_id"], response
    # The metadata the SDK's TranscriptionResponseMetadata declares, where it can be known.
    metadata = response["metadata"]
    assert metadata["processing_time_ms"] > 0 and metadata["num_chunks"] >= 1, metadata
    assert metadata["rtfx"] == pytest.approx(
        metadata["duration"] / (metadata["processing_time_ms"] / 1000), rel=0.05
    ), metadata


def test_sdk_streaming_helper(server: Server, clips: list[Clip], tmp_path: Path):
    """`stream_speech_to_text(client, language="en")` (its defaults: model pulse, 16 kHz
    linear16), three turns sent at twice real time in 50 ms chunks, then its typed
    close_stream: finals with the words right, one `is_last`, no error event."""
    turns = [clips[1], clips[4], clips[2]]  # 36 words
    before = sessions(server)
    result = run_client(
        "sdk.py",
        "stream",
        "--url",
        server.http,
        "--key",
        server.key,
        *turn_files(turns, tmp_path),
        "--gap",
        "1.5",
        timeout=120,
    )
    events = result["events"]

    assert result["send_error"] == [], failure(result)
    assert sessions(server) - before == 1
    assert not [e for e in events if e.get("type") == "error" or "error" in e], events
    assert [e for e in events if e.get("is_last")] == events[-1:], events
    finals = [e["transcript"] for e in events if e.get("is_final") and e.get("transcript")]
    reference = " ".join(c.text for c in turns)
    assert corpus_wer([reference], [" ".join(finals)]) <= MAX_WER, finals
    # Every message parsed as the SDK's transcription type (no diarization asked for).
    assert {e["class"] for e in events} == {"TranscriptionEvent"}, events


def test_sdk_streaming_helper_typed_options(server: Server, clips: list[Clip], tmp_path: Path):
    """The helper's typed keywords that the hosted API documents and pulse-stt used to
    refuse or ignore, as the helper puts them on the wire: redaction as lists of entity
    kinds (comma-joined), the `multi-asian` language group, `vad` (alias of vad_events),
    `vad_threshold`, `vad_min_speech_ms`; with diarization, whose integer `speaker` ids
    pulse-stt keeps (docs/CLIENTS.md: the SDK's types say string)."""
    turns = [clips[1], clips[2]]  # no names or numbers in them: redaction leaves them whole
    options = {
        "language": "multi-asian",
        "redact_pii": ["first_name", "last_name", "phone_number"],
        "redact_pci": ["credit_card", "cvv"],
        "vad": True,
        "vad_threshold": 0.5,
        "vad_min_speech_ms": 150,
        "diarize": True,
        "word_timestamps": True,
    }
    result = run_client(
        "sdk.py",
        "stream",
        "--url",
        server.http,
        "--key",
        server.key,
        *turn_files(turns, tmp_path),
        "--options",
        json.dumps(options),
        timeout=120,
    )
    events = result["events"]

    assert result["send_error"] == [], failure(result)
    assert not [e for e in events if e.get("type") == "error" or "error" in e], events
    assert [e for e in events if e.get("is_last")] == events[-1:], events
    kinds = [e.get("type") for e in events]
    assert kinds.count("speech_started") == kinds.count("speech_ended") == len(turns), kinds
    finals = [e for e in events if e.get("is_final") and e.get("transcript")]
    reference = " ".join(c.text for c in turns)
    text = " ".join(e["transcript"] for e in finals)
    assert corpus_wer([reference], [text]) <= MAX_WER, text
    assert {e["language"] for e in finals} == {"en"}, finals
    speakers = [w["speaker"] for e in finals for w in e["words"]]
    assert speakers and all(type(s) is int for s in speakers), finals
