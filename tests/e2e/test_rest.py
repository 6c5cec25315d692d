"""Whole-file REST: every container, both models, URL bodies and their guard, bad bodies."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.audio import Clip, encode_file, join, silence, wer
from tests.support.server import Server, running_server

pytestmark = pytest.mark.e2e

STT = "/waves/v1/stt/"
LEGACY = "/waves/v1/pulse/get_text"


def post(server: Server, path: str, body: bytes, query: str = "", **headers: str) -> httpx.Response:
    return httpx.post(
        f"{server.http}{path}?{query}",
        content=body,
        headers={**server.headers(), "Content-Type": "application/octet-stream", **headers},
        timeout=300,
    )


@pytest.fixture(scope="module")
def speech(clips: list[Clip]) -> tuple[np.ndarray, str]:
    return join(clips[1].audio, silence(0.8), clips[2].audio), clips[1].text + " " + clips[2].text


@pytest.mark.parametrize(
    ("fmt", "codec", "rate", "channels"),
    [
        ("wav", "pcm_s16le", 16000, 1),
        ("mp3", "libmp3lame", 44100, 2),
        ("flac", "flac", 48000, 2),
        ("ogg", "libopus", 48000, 1),
        ("webm", "libopus", 48000, 2),
        ("ipod", "aac", 44100, 2),  # .m4a
    ],
)
def test_every_container(server: Server, speech, fmt: str, codec: str, rate: int, channels: int):
    audio, reference = speech
    body = encode_file(audio, fmt, codec, rate, channels)
    response = post(server, STT, body, "model=pulse&language=en")
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["status"] == "success"
    assert wer(reference, data["transcription"]) <= 0.12, data["transcription"]
    assert data["language"] == "en"
    assert data["metadata"]["fileSize"] == len(body)
    assert abs(data["metadata"]["duration"] - audio.size / 16000) < 0.15
    assert "words" not in data and "utterances" not in data  # word_timestamps defaults to false


def test_word_timestamps_utterances_and_legacy_path(server: Server, speech) -> None:
    audio, reference = speech
    body = encode_file(audio, "wav", "pcm_s16le")
    data = post(server, LEGACY, body, "language=en&word_timestamps=true").json()
    assert wer(reference, data["transcription"]) <= 0.12
    words = data["words"]
    assert len(words) >= 15
    assert all(0 <= w["start"] <= w["end"] <= audio.size / 16000 + 0.01 for w in words)
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)
    assert len(data["utterances"]) >= 2
    assert data["utterances"][0]["start"] == words[0]["start"]


def test_pulse_pro_and_long_file_with_many_turns(server: Server, clips: list[Clip]) -> None:
    parts, texts = [], []
    for _ in range(2):
        for clip in clips:
            parts += [clip.audio, silence(1.0)]
            texts.append(clip.text)
    audio, reference = join(*parts), " ".join(texts)
    body = encode_file(audio, "flac", "flac")
    pulse = post(server, STT, body, "model=pulse&language=en").json()
    pro = post(server, STT, body, "model=pulse-pro&language=en").json()
    assert wer(reference, pulse["transcription"]) <= 0.12, pulse["transcription"]
    assert wer(reference, pro["transcription"]) <= 0.12, pro["transcription"]
    assert abs(pulse["metadata"]["duration"] - audio.size / 16000) < 0.1


def test_parameters_and_auth(server: Server, speech) -> None:
    body = encode_file(speech[0], "wav", "pcm_s16le")
    missing = post(server, STT, body, "language=en")
    assert missing.status_code == 400 and missing.json()["param"] == "model"
    bad = post(server, STT, body, "model=pulse&word_timestamps=maybe")
    assert bad.status_code == 400 and bad.json()["param"] == "word_timestamps"
    no_key = httpx.post(f"{server.http}{STT}?model=pulse", content=body)
    assert no_key.status_code == 401 and no_key.json()["status"] == "error"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", "empty_body"),
        (b"this is not audio at all" * 50, "bad_audio"),
        (bytes(4096), "bad_audio"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "bad_audio"),
    ],
)
def test_bad_bodies_get_clear_400s(server: Server, body: bytes, error: str) -> None:
    response = post(server, STT, body, "model=pulse")
    assert response.status_code == 400
    data = response.json()
    assert data["status"] == "error" and data["error"] == error
    assert "send" in data["message"]


def test_truncated_file_transcribes_what_arrived(server: Server, clips: list[Clip]) -> None:
    audio = join(clips[0].audio, silence(0.8), clips[1].audio)
    body = encode_file(audio, "mp3", "libmp3lame", 44100, 1)
    kept = (clips[0].audio.size + 0.6 * 16000) / audio.size  # the first clip and most of the gap
    data = post(server, STT, body[: int(len(body) * kept)], "model=pulse&language=en").json()
    assert data["status"] == "success"
    assert clips[0].matches(data["transcription"], 0.1), data["transcription"]
    assert abs(data["metadata"]["duration"] - kept * audio.size / 16000) < 0.5


def test_url_bodies_are_refused_for_internal_addresses(server: Server) -> None:
    for url in (
        "http://127.0.0.1:9/x.wav",
        "http://localhost/x.wav",
        "http://169.254.169.254/",
        "http://[::1]/a",
        "file:///etc/passwd",
        "ftp://example.com/a.wav",
    ):
        response = httpx.post(
            f"{server.http}{STT}?model=pulse", json={"url": url}, headers=server.headers()
        )
        assert response.status_code == 400, url
        assert response.json()["status"] == "error"
    response = httpx.post(
        f"{server.http}{STT}?model=pulse", json={"uri": "x"}, headers=server.headers()
    )
    assert response.status_code == 400 and '{"url"' in response.json()["message"]


@pytest.fixture(scope="module")
def file_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("files")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()


def test_url_fetch_and_size_limit_when_operator_allows_private(
    tmp_path: Path, file_host: tuple[str, Path], speech
) -> None:
    base, root = file_host
    audio, reference = speech
    (root / "speech.mp3").write_bytes(encode_file(audio, "mp3", "libmp3lame", 44100, 1))
    (root / "big.wav").write_bytes(encode_file(join(audio, audio, audio), "wav", "pcm_s16le"))
    with running_server(tmp_path, allow_private_urls="true", max_upload_bytes="150000") as srv:
        ok = httpx.post(
            f"{srv.http}{STT}?model=pulse&language=en",
            json={"url": f"{base}/speech.mp3"},
            headers=srv.headers(),
            timeout=120,
        )
        assert ok.status_code == 200, ok.text
        assert wer(reference, ok.json()["transcription"]) <= 0.12
        big = httpx.post(
            f"{srv.http}{STT}?model=pulse", json={"url": f"{base}/big.wav"}, headers=srv.headers()
        )
        assert big.status_code == 413
        upload = post(srv, STT, (root / "big.wav").read_bytes(), "model=pulse")
        assert upload.status_code == 413 and "limit" in upload.json()["message"]
        missing = httpx.post(
            f"{srv.http}{STT}?model=pulse", json={"url": f"{base}/nope.wav"}, headers=srv.headers()
        )
        assert missing.status_code == 400 and "404" in missing.json()["message"]
