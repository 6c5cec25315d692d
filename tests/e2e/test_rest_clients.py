"""What the ecosystem's clients send and read on REST and at the handshake (issue 16):
redaction kind lists, language groups, model=pulse-2, request_id and the SDK's metadata,
and the Pulse Pro webhook round trip to a real local receiver (POST and GET)."""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest

from tests.support.audio import Clip, encode_file, espeak, join, pcm16, silence, wer
from tests.support.client import chunks, play
from tests.support.server import Server, running_server

pytestmark = pytest.mark.e2e

STT = "/waves/v1/stt/"
# Pipecat's SmallestSTTService query with its default settings (pipecat-ai 1.14).
PIPECAT_Q = (
    "language=en&encoding=linear16&sample_rate=16000&word_timestamps=false"
    "&full_transcript=false&sentence_timestamps=false&redact_pii=false&redact_pci=false"
    "&numerals=auto&diarize=false&endpointing=true&format=true&emotion_detection=true"
    "&gender_detection=true&itn_normalize=false&no_format_delay=false"
)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that may call 127.0.0.1 (the test's webhook receiver and file host)."""
    data = tmp_path_factory.mktemp("clients-server")
    with running_server(data, allow_private_urls="true", webhook_backoff_s="0.2") as running:
        yield running
    log = running.log.read_text()
    assert "Traceback" not in log and "ERROR" not in log, log[-5000:]


@pytest.fixture(scope="module")
def speech(clips: list[Clip]) -> tuple[np.ndarray, str]:
    return join(clips[1].audio, silence(0.8), clips[2].audio), clips[1].text + " " + clips[2].text


def post(server: Server, query: str, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{server.http}{STT}?{query}",
        content=body,
        headers={**server.headers(), "Content-Type": "application/octet-stream", **headers},
        timeout=300,
    )


def test_request_id_and_metadata_on_success(srv: Server, speech) -> None:
    audio, reference = speech
    body = encode_file(audio, "wav", "pcm_s16le")
    response = post(
        srv,
        "model=pulse&language=en",
        body,
        **{"Content-Disposition": 'attachment; filename="call.wav"'},
    )
    assert response.status_code == 200, response.text
    data = response.json()
    assert wer(reference, data["transcription"]) <= 0.12
    request_id = data["request_id"]
    assert uuid.UUID(request_id) and response.headers["x-request-id"] == request_id
    meta = data["metadata"]
    assert meta["fileSize"] == len(body) and abs(meta["duration"] - audio.size / 16000) < 0.15
    assert meta["processing_time_ms"] > 0 and meta["num_chunks"] >= 1
    assert meta["rtfx"] == pytest.approx(
        meta["duration"] * 1000 / meta["processing_time_ms"], rel=0.02
    )
    assert meta["filename"] == "call.wav"
    again = post(srv, "model=pulse&language=en", body).json()
    assert again["request_id"] != request_id and "filename" not in again["metadata"]


def test_request_id_on_every_error(srv: Server) -> None:
    answers = [
        httpx.post(f"{srv.http}{STT}?model=pulse", content=b"x"),  # 401
        post(srv, "model=nope", b"x"),  # 400 invalid_parameter
        post(srv, "model=pulse", b""),  # 400 empty_body
        post(srv, "model=pulse", b"not audio at all" * 10),  # 400 bad_audio
    ]
    for response in answers:
        assert response.status_code in (400, 401), response.text
        data = response.json()
        assert data["status"] == "error" and uuid.UUID(data["request_id"])
        assert response.headers["x-request-id"] == data["request_id"]


def test_filename_of_a_url_body(srv: Server, speech, tmp_path: Path) -> None:
    audio, _ = speech
    (tmp_path / "my call.mp3").write_bytes(encode_file(audio, "mp3", "libmp3lame", 44100, 1))
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/my%20call.mp3?sig=1"
        response = httpx.post(
            f"{srv.http}{STT}?model=pulse&language=en",
            json={"url": url},
            headers=srv.headers(),
            timeout=300,
        )
    finally:
        httpd.shutdown()
    assert response.status_code == 200, response.text
    assert response.json()["metadata"]["filename"] == "my call.mp3"


def test_redact_only_the_kinds_asked_for(srv: Server, tmp_path: Path) -> None:
    audio = espeak(
        "Please charge my visa, four one one one, one one one one, one one one one, "
        "one one one one. Then call me at four one five, five five five, two six seven one.",
        tmp_path,
        speed=140,
    )
    body = encode_file(audio, "wav", "pcm_s16le")
    response = post(srv, "model=pulse&language=en&redact_pci=credit_card&redact_pii=email", body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert "[ACCOUNTNUMBER_1]" in data["transcription"], data["transcription"]
    assert data["redacted_entities"] == ["[ACCOUNTNUMBER_1]"]
    assert "4111" not in data["transcription"].replace(" ", "").replace("-", "")
    assert re.search(r"\d", data["transcription"]), data["transcription"]  # the phone stays
    both = post(srv, "model=pulse&language=en&redact_pci=credit_card&redact_pii=phone_number", body)
    assert set(both.json()["redacted_entities"]) == {"[ACCOUNTNUMBER_1]", "[PHONENUMBER_1]"}
    bad = post(srv, "model=pulse&redact_pci=credit_card,passport", body)
    assert bad.status_code == 400
    assert bad.json()["param"] == "redact_pci" and "credit_card" in bad.json()["allowed"]


def test_language_groups_and_pulse_2_on_rest(srv: Server, speech) -> None:
    audio, reference = speech
    body = encode_file(audio, "wav", "pcm_s16le")
    queries = (
        "model=pulse&language=multi-indic",
        "model=pulse&language=multi-asian",
        "model=pulse-2",
        "model=pulse-2&language=en&emotion_detection=true&gender_detection=true",
    )
    for query in queries:
        response = post(srv, query, body)
        assert response.status_code == 200, (query, response.text)
        data = response.json()
        assert data["language"] == "en", query
        assert wer(reference, data["transcription"]) <= 0.15, (query, data["transcription"])
        assert "emotions" not in data and "gender" not in data  # not produced: omitted
    german = post(srv, "model=pulse-2&language=de", body)
    assert german.status_code == 400 and german.json()["param"] == "language"


def test_pipecat_default_query_with_pulse_2_streams(srv: Server, speech) -> None:
    audio, reference = speech
    steps = [*chunks(pcm16(join(audio, silence(0.5))), 8000), {"type": "finalize"}]
    for model in ("pulse", "pulse-2"):
        got = play(srv, f"model={model}&{PIPECAT_Q}", [*steps, {"type": "close_stream"}])
        assert not [m for m in got.messages if m.get("type") == "error"], got.messages
        assert wer(reference, got.final_text) <= 0.15, (model, got.final_text)
    query = "model=pulse&language=multi-indic&sample_rate=16000&redact_pci=credit_card,cvv"
    got = play(srv, query, [*steps, {"type": "close_stream"}])
    assert wer(reference, got.final_text) <= 0.15 and got.finals[-1]["language"] == "en"


# -- Pulse Pro webhook -------------------------------------------------------------------


class _Receiver(http.server.BaseHTTPRequestHandler):
    calls: list[tuple[str, str, bytes]]
    fail_first: int

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        self.calls.append((self.command, self.path, body))
        failing = type(self).fail_first > 0
        type(self).fail_first -= 1
        self.send_response(503 if failing else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"calls": [], "fail_first": 0})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()


def _wait_for(handler: type[_Receiver], count: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while len(handler.calls) < count:
        assert time.monotonic() < deadline, "the webhook was not called in time"
        time.sleep(0.2)


def test_webhook_post_round_trip_with_a_retry(srv: Server, speech, receiver) -> None:
    base, handler = receiver
    handler.fail_first = 1  # the first delivery gets a 503: retried after the backoff
    audio, reference = speech
    query = (
        f"model=pulse-pro&language=en&word_timestamps=true&webhook_url={base}/hook%3Fk%3D1"
        "&webhook_extra=order-7"
    )
    started = time.monotonic()
    response = post(srv, query, encode_file(audio, "wav", "pcm_s16le"))
    assert time.monotonic() - started < 5  # answered before transcribing
    assert response.status_code == 200, response.text
    accepted = response.json()
    assert accepted["status"] == "processing" and set(accepted) == {"status", "request_id"}
    _wait_for(handler, 2)
    (m1, path1, _), (m2, path2, body) = handler.calls
    assert (m1, m2) == ("POST", "POST") and path1 == path2 == "/hook?k=1"
    result = json.loads(body)
    assert result["status"] == "success" and result["request_id"] == accepted["request_id"]
    assert result["webhook_extra"] == "order-7"
    assert wer(reference, result["transcription"]) <= 0.12, result["transcription"]
    assert result["words"] and result["metadata"]["num_chunks"] >= 1
    metrics = httpx.get(f"{srv.http}/metrics").text
    assert re.search(r'pulse_stt_webhook_deliveries_total\{outcome="delivered"\} [1-9]', metrics)


def test_webhook_get_round_trip(srv: Server, speech, receiver) -> None:
    base, handler = receiver
    audio, reference = speech
    query = f"model=pulse-pro&language=en&webhook_url={base}/cb&webhook_method=GET"
    response = post(srv, query, encode_file(audio, "wav", "pcm_s16le"))
    assert response.status_code == 200 and response.json()["status"] == "processing"
    _wait_for(handler, 1)
    method, path, body = handler.calls[0]
    assert method == "GET" and body == b""
    fields = parse_qs(urlsplit(path).query)
    assert fields["request_id"] == [response.json()["request_id"]]
    assert fields["status"] == ["success"] and "webhook_extra" not in fields
    result = json.loads(fields["result"][0])
    assert wer(reference, result["transcription"]) <= 0.12


def test_webhook_errors(srv: Server, receiver) -> None:
    base, handler = receiver
    bad = post(srv, "model=pulse-pro&webhook_url=ftp://x/cb", b"x")
    assert bad.status_code == 400 and bad.json()["param"] == "webhook_url"
    bad = post(srv, f"model=pulse-pro&webhook_url={base}/cb&webhook_method=PUT", b"x")
    assert bad.status_code == 400 and bad.json()["param"] == "webhook_method"
    # undecodable audio: accepted, then the error a synchronous request gets is delivered
    accepted = post(srv, f"model=pulse-pro&webhook_url={base}/cb&webhook_extra=e", b"nope" * 50)
    assert accepted.status_code == 200
    _wait_for(handler, 1, timeout=60)
    result = json.loads(handler.calls[0][2])
    assert result["status"] == "error" and result["error"] == "bad_audio"
    assert result["request_id"] == accepted.json()["request_id"] and result["webhook_extra"] == "e"
