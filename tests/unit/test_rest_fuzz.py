"""Hostile REST bodies against the real ASGI app, in process, on a stand-in engine.

The app, its routes, the body reader, the JSON `{"url": ...}` path, the URL checks, the
parameter parser, the container sniffer and the database are the real ones; only the
model is replaced by a decoder that returns one word per second of audio, so hypothesis
can throw thousands of bodies at it. Whatever comes in, the answer is 200, 400, 401 or
413 with a JSON error that says what was wrong, never a 500.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from pulse_stt.api.app import create_app
from pulse_stt.api.context import ServerContext
from pulse_stt.config import Settings
from pulse_stt.engine.engine import Engine
from pulse_stt.engine.scheduler import DecodeScheduler
from pulse_stt.engine.types import DecodeJob, Hypothesis, Word
from pulse_stt.store.db import Store
from pulse_stt.text.itn import NemoInverseNormalizer
from tests.support.audio import tone, wav_bytes
from tests.support.hostile_inputs import low_rate_wav

KEY = "pstt_rest_fuzz_key_0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
UPLOAD_LIMIT = 256 * 1024
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
ALLOWED = {200, 400, 401, 413}


def _one_word_per_second(job: DecodeJob) -> Hypothesis:
    seconds = int(job.audio.size / 16000)
    words = tuple(Word(f"w{i}", float(i), i + 0.5, 0.9) for i in range(max(1, seconds)))
    return Hypothesis(" ".join(w.text for w in words), words, language="en")


@contextlib.contextmanager
def app_client(tmp: Path, **settings: Any) -> Iterator[TestClient]:
    """The real app on a real SQLite store, with the stand-in engine."""
    config = Settings(
        data_dir=tmp, cache_dir=tmp / "cache", max_upload_bytes=UPLOAD_LIMIT, **settings
    )
    engine = Engine.__new__(Engine)  # everything but the model: the real scheduler
    engine.scheduler = DecodeScheduler(_one_word_per_second, workers=1)
    engine.model_dir = Path("/models/stand-in")
    store = Store(config.resolved_database_url())
    store.ensure_key("fuzz", KEY)
    ctx = ServerContext(config, engine, store, NemoInverseNormalizer(tmp / "itn"))
    try:
        with TestClient(create_app(ctx), raise_server_exceptions=False) as test_client:
            yield test_client
    finally:
        ctx.close()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with app_client(tmp_path_factory.mktemp("rest-fuzz")) as test_client:
        yield test_client


def tone_wav(seconds: float = 1.0) -> bytes:
    return wav_bytes(tone(seconds))


def check_answer(response: object) -> dict[str, object]:
    """A status we allow, and for errors a JSON body that says what was wrong."""
    status = response.status_code  # type: ignore[attr-defined]
    assert status in ALLOWED, (status, response.text)  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    if status != 200:
        assert body["status"] == "error"
        assert isinstance(body["message"], str) and len(body["message"]) > 10
    return body


def post(
    client: TestClient, body: bytes, content_type: str | None, query: str = "model=pulse"
) -> dict[str, object]:
    headers = dict(AUTH)
    if content_type is not None:
        headers["Content-Type"] = content_type
    return check_answer(client.post(f"/waves/v1/stt/?{query}", content=body, headers=headers))


CONTENT_TYPES = st.sampled_from(
    [
        None,
        "application/octet-stream",
        "audio/wav",
        "audio/mpeg",
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "text/plain",
        "multipart/form-data; boundary=x",
        "",
    ]
) | st.text(max_size=40).filter(lambda t: "\n" not in t and "\r" not in t)


@FUZZ
@given(body=st.binary(max_size=4000), content_type=CONTENT_TYPES)
def test_any_bytes_with_any_content_type(
    client: TestClient, body: bytes, content_type: str | None
) -> None:
    # UnicodeEncodeError: httpx cannot put that header on the wire; nothing was sent.
    with contextlib.suppress(UnicodeEncodeError):
        post(client, body, content_type)


@FUZZ
@given(
    cut=st.integers(0, len(tone_wav())),
    flips=st.lists(st.tuples(st.integers(0, len(tone_wav()) - 1), st.integers(1, 255)), max_size=6),
)
def test_damaged_real_files(client: TestClient, cut: int, flips: list[tuple[int, int]]) -> None:
    data = bytearray(tone_wav())
    for position, mask in flips:
        data[position] ^= mask
    post(client, bytes(data[:cut]), "audio/wav")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=15,
)


@FUZZ
@given(payload=JSON_VALUES)
def test_any_json_body(client: TestClient, payload: object) -> None:
    body = post(client, json.dumps(payload).encode(), "application/json")
    assert body["status"] == "error"  # no url, so nothing to transcribe


def _no_dns_needed(url: str) -> bool:
    """URLs whose refusal needs no name lookup (the test machine has no DNS to ask)."""
    try:
        parts = urlsplit(url)
        return parts.scheme not in ("http", "https") or not parts.hostname
    except ValueError:
        return True


BLOCKED_HOSTS = ("127.0.0.1", "localhost", "10.1.2.3", "169.254.169.254", "[::1]", "0.0.0.0")


@FUZZ
@given(
    url=st.text(max_size=80).filter(_no_dns_needed)
    | st.builds(
        "{}://{}{}".format,
        st.sampled_from(["http", "https", "file", "gopher", "ftp", "data", "javascript", "HTTP"]),
        st.sampled_from(BLOCKED_HOSTS),
        st.sampled_from(["", "/", "/a.wav", ":22/x", ":0/", "/../../etc/passwd"]),
    )
)
def test_json_urls_that_must_be_refused(client: TestClient, url: str) -> None:
    body = post(client, json.dumps({"url": url}).encode(), "application/json")
    assert body["status"] == "error"
    assert body["error"] == "bad_request"


def test_deeply_nested_json_is_a_clear_400(client: TestClient) -> None:
    for nested in ("[" * 30_000 + "]" * 30_000, '{"url":' * 7000 + "1" + "}" * 7000):
        body = post(client, nested.encode(), "application/json")
        assert body["error"] == "bad_request"
        assert "JSON" in str(body["message"])


def test_json_body_over_its_limit_is_413(client: TestClient) -> None:
    body = post(client, json.dumps({"url": "x" * 70_000}).encode(), "application/json")
    assert body["error"] == "too_large"


@FUZZ
@given(
    query=st.dictionaries(
        st.sampled_from(
            ["model", "language", "word_timestamps", "diarize", "redact_pii", "format", "numerals"]
        )
        | st.text(max_size=10),
        st.text(max_size=20),
        max_size=5,
    )
)
def test_any_query_on_a_real_file(client: TestClient, query: dict[str, str]) -> None:
    from urllib.parse import urlencode

    post(client, tone_wav(0.5), "audio/wav", urlencode(query))


def test_a_real_file_is_transcribed_and_limits_hold(client: TestClient) -> None:
    body = post(client, tone_wav(2.0), "audio/wav", "model=pulse&word_timestamps=true")
    assert body["status"] == "success"
    assert post(client, b"\0" * (UPLOAD_LIMIT + 1), "audio/wav")["error"] == "too_large"
    assert post(client, b"", "audio/wav")["error"] == "empty_body"
    unauthorized = client.post("/waves/v1/stt/?model=pulse", content=tone_wav())
    assert unauthorized.status_code == 401


def test_a_tiny_file_that_expands_into_hours_is_refused_quickly(tmp_path: Path) -> None:
    """10 kB of 8-bit audio declared at 1 Hz: 2.8 hours, refused at the limit (here 60 s)."""
    bomb = low_rate_wav(1, bytes(range(256)) * 40)
    with app_client(tmp_path, max_file_audio_s=60) as limited:
        started = time.monotonic()
        body = post(limited, bomb, "audio/wav")
        assert body["error"] == "too_long"
        assert "60 s" in str(body["message"]) and "max_file_audio_s" in str(body["message"])
        assert time.monotonic() - started < 20
        assert post(limited, tone_wav(2.0), "audio/wav")["status"] == "success"


def test_a_28_kb_wav_declaring_1_hz_is_refused_before_decoding(tmp_path: Path) -> None:
    """Issue 20 row 10: with the default max_file_audio_s (4 h) a 28 kB WAV declaring 1 Hz
    (7.8 hours) was decoded and run through VAD up to the limit, 34 s of CPU, before its
    413. The header declares its length: it is refused before decoding, faster than a 2 s
    file is transcribed."""
    bomb = low_rate_wav(1, bytes(range(256)) * 110)
    assert len(bomb) < 29_000
    with app_client(tmp_path) as defaults:
        started = time.monotonic()
        assert post(defaults, tone_wav(2.0), "audio/wav")["status"] == "success"
        real_file_s = time.monotonic() - started
        started = time.monotonic()
        body = post(defaults, bomb, "audio/wav")
        bomb_s = time.monotonic() - started
        assert body["error"] == "too_long", body
        assert "max_file_audio_s" in str(body["message"])
        assert bomb_s < max(real_file_s, 0.2), (bomb_s, real_file_s)


def test_a_wav_declaring_a_rate_no_speech_has_is_refused_before_decoding(tmp_path: Path) -> None:
    """2 Hz, 14 kB: under the duration limit (2 hours) but no recording of speech; the
    declared rate is refused (400) instead of resampling each byte into 8000 samples."""
    with app_client(tmp_path) as defaults:
        body = post(defaults, low_rate_wav(2, bytes(range(256)) * 56), "audio/wav")
        assert body["error"] == "bad_audio", body
        assert "2 Hz" in str(body["message"])
        assert post(defaults, wav_bytes(tone(1.0, rate=8000), 8000), "audio/wav")["status"] == (
            "success"
        )
