"""Client: options → query string (checked by the server's own parser) and server addresses."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from pulse_stt.api.params import parse_file_params, parse_stream_params
from pulse_stt.client import FileOptions, ParameterError, PulseError, StreamOptions
from pulse_stt.client.endpoints import Endpoints, resolve_api_key
from pulse_stt.client.options import keywords_param
from pulse_stt.protocol import Keyword


def _query(options: StreamOptions | FileOptions) -> dict[str, str]:
    return dict(parse_qsl(options.query_string(), keep_blank_values=True))


def test_defaults_send_only_what_the_client_must_declare() -> None:
    assert _query(StreamOptions()) == {
        "model": "pulse",
        "encoding": "linear16",
        "sample_rate": "16000",
    }
    assert _query(FileOptions()) == {"model": "pulse"}


def test_every_streaming_parameter_reaches_the_server_as_asked() -> None:
    options = StreamOptions(
        language="de",
        encoding="mulaw",
        sample_rate=8000,
        word_timestamps=True,
        sentence_timestamps=True,
        diarize=True,
        redact_pii=True,
        redact_pci=True,
        numerals=True,
        itn_normalize=True,
        format=True,
        punctuate=False,
        capitalize=False,
        eou_timeout_ms=1200,
        finalize_on_words=False,
        max_words=40,
        keywords={"Kubernetes": 6, "small language model": 3.5},
        vad_events=True,
        full_transcript=True,
        external_session_id="call-42.a_b",
    )
    parsed = parse_stream_params(_query(options), legacy_path=False)
    assert parsed.language.fixed == "de"
    assert (parsed.encoding, parsed.sample_rate) == ("mulaw", 8000)
    text = parsed.text
    assert text.word_timestamps and text.sentence_timestamps and text.diarize
    assert text.redact_pii and text.redact_pci and text.itn_normalize
    assert text.numerals == "true"
    assert (text.punctuate, text.capitalize, text.format) == (False, False, True)
    assert parsed.eou_timeout_ms == 1200
    assert parsed.finalize_on_words is False and parsed.max_words == 40
    assert parsed.keywords == (Keyword("Kubernetes", 6.0), Keyword("small language model", 3.5))
    assert parsed.vad_events and parsed.full_transcript
    assert parsed.external_session_id == "call-42.a_b"


def test_every_file_parameter_reaches_the_server_as_asked() -> None:
    options = FileOptions(
        model="pulse-pro",
        language="multi",
        word_timestamps=True,
        diarize=True,
        redact_pii=True,
        redact_pci=False,
        itn_normalize=True,
        format=False,
    )
    parsed = parse_file_params(_query(options), legacy_path=False)
    assert parsed.pro and parsed.language.requested == "multi"
    assert parsed.text.word_timestamps and parsed.text.diarize and parsed.text.redact_pii
    assert not parsed.text.redact_pci
    # format=false forces punctuation, casing and ITN off (server rule)
    assert not (parsed.text.punctuate or parsed.text.capitalize or parsed.text.itn_normalize)


def test_extra_passes_parameters_this_client_does_not_know() -> None:
    query = _query(StreamOptions(extra={"future_flag": "on", "language": "fr"}))
    assert query["future_flag"] == "on" and query["language"] == "fr"


@pytest.mark.parametrize(
    ("keywords", "wire"),
    [
        ("Kubernetes:6, gRPC", "Kubernetes:6,gRPC"),
        (["Kubernetes:6", "gRPC"], "Kubernetes:6,gRPC"),
        ({"Kubernetes": 6, "small language model": 3.5}, "Kubernetes:6,small language model:3.5"),
    ],
)
def test_keywords_in_any_form(keywords: object, wire: str) -> None:
    assert keywords_param(keywords) == wire  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "param"),
    [
        (lambda: StreamOptions(encoding="mp3"), "encoding"),  # type: ignore[arg-type]
        (lambda: StreamOptions(sample_rate=11025), "sample_rate"),
        (lambda: StreamOptions(model="pulse-pro"), "model"),
        (lambda: StreamOptions(eou_timeout_ms=50), "eou_timeout_ms"),
        (lambda: StreamOptions(max_words=0), "max_words"),
        (lambda: StreamOptions(numerals="sometimes"), "numerals"),  # type: ignore[arg-type]
        (lambda: StreamOptions(keywords={"x": 21}), "keywords"),
        (lambda: StreamOptions(keywords="x:lots"), "keywords"),
        (lambda: StreamOptions(keywords=[f"w{i}" for i in range(101)]), "keywords"),
        (lambda: StreamOptions(external_session_id="has space"), "external_session_id"),
        (lambda: StreamOptions(language="en us"), "language"),
        (lambda: FileOptions(model="whisper"), "model"),
    ],
)
def test_obvious_mistakes_fail_before_connecting_naming_the_parameter(
    make: object, param: str
) -> None:
    with pytest.raises(ParameterError) as caught:
        make()  # type: ignore[operator]
    assert caught.value.param == param
    assert param in str(caught.value)


@pytest.mark.parametrize(
    ("base", "live", "rest"),
    [
        (
            "https://api.smallest.ai",
            "wss://api.smallest.ai/waves/v1/stt/live",
            "https://api.smallest.ai/waves/v1/stt/",
        ),
        (
            "http://127.0.0.1:8000/",
            "ws://127.0.0.1:8000/waves/v1/stt/live",
            "http://127.0.0.1:8000/waves/v1/stt/",
        ),
        ("ws://host:9000", "ws://host:9000/waves/v1/stt/live", "http://host:9000/waves/v1/stt/"),
        ("wss://h/stt", "wss://h/stt/waves/v1/stt/live", "https://h/stt/waves/v1/stt/"),
        ("localhost:8000", "ws://localhost:8000/waves/v1/stt/live", None),
    ],
)
def test_one_base_url_gives_both_addresses(base: str, live: str, rest: str | None) -> None:
    endpoints = Endpoints.from_base_url(base)
    assert endpoints.live() == live
    if rest:
        assert endpoints.rest() == rest
    with_query = endpoints.live("model=pulse&language=en")
    assert urlsplit(with_query).query == "model=pulse&language=en"


def test_url_and_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULSE_STT_URL", raising=False)
    assert Endpoints.from_base_url().base_url == "http://127.0.0.1:8000"
    monkeypatch.setenv("PULSE_STT_URL", "https://stt.example.org")
    assert Endpoints.from_base_url().live().startswith("wss://stt.example.org/")
    assert Endpoints.from_base_url("http://other:1").base_url == "http://other:1"

    monkeypatch.setenv("PULSE_STT_API_KEY", "from-env")
    assert resolve_api_key(None) == "from-env"
    assert resolve_api_key("given") == "given"
    monkeypatch.delenv("PULSE_STT_API_KEY")
    with pytest.raises(PulseError, match="PULSE_STT_API_KEY"):
        resolve_api_key(None)


def test_an_unusable_url_says_what_to_give() -> None:
    with pytest.raises(PulseError, match=r"http\(s\)://host"):
        Endpoints.from_base_url("ftp://files.example.org")
