"""`pulse_stt.api.params`: query strings → validated `StreamParams`, or a `ParamError`."""

from __future__ import annotations

import random
import string
from typing import Any

import pytest

from pulse_stt.api.params import PULSE_PRO_STREAMING_MESSAGE, ParamError, parse_stream_params
from pulse_stt.protocol import MULTI_EU_LANGUAGES, Keyword, StreamParams

LIVE = {"model": "pulse"}  # the minimum the /waves/v1/stt/live path accepts

BOOL_PARAMS = (
    "word_timestamps",
    "sentence_timestamps",
    "diarize",
    "itn_normalize",
    "punctuate",
    "capitalize",
    "format",
    "finalize_on_words",
    "vad_events",
    "vad",
    "full_transcript",
)


def live(**query: str) -> StreamParams:
    return parse_stream_params({**LIVE, **query}, legacy_path=False)


def legacy(**query: str) -> StreamParams:
    return parse_stream_params(query, legacy_path=True)


def param_error(query: dict[str, str], *, legacy_path: bool = False) -> ParamError:
    full = query if legacy_path else {**LIVE, **query}
    with pytest.raises(ParamError) as info:
        parse_stream_params(full, legacy_path=legacy_path)
    return info.value


# -- defaults ------------------------------------------------------------------------------


@pytest.mark.parametrize("legacy_path", [True, False])
def test_defaults(legacy_path: bool) -> None:
    params = parse_stream_params({} if legacy_path else dict(LIVE), legacy_path=legacy_path)
    assert params.language.requested == "multi-eu"
    assert params.language.fixed is None
    assert params.language.candidates == ("de", "en", "fr", "it", "nl", "pt", "ru", "es")
    assert params.language.candidates == MULTI_EU_LANGUAGES
    assert params.encoding == "linear16"
    assert params.sample_rate == 16000
    assert params.eou_timeout_ms == 800
    assert params.finalize_on_words is True
    assert params.max_words is None
    assert params.keywords == ()
    assert params.vad_events is False
    assert params.full_transcript is False
    assert params.external_session_id is None
    text = params.text
    assert (text.punctuate, text.capitalize, text.format) == (True, True, True)
    assert (text.itn_normalize, text.diarize, text.sentence_timestamps) == (False, False, False)
    assert (text.redact_pii, text.redact_pci) == (frozenset(), frozenset())
    assert text.numerals == "auto"


def test_word_timestamps_default_differs_by_path() -> None:
    assert legacy().text.word_timestamps is True
    assert live().text.word_timestamps is False
    assert legacy(word_timestamps="false").text.word_timestamps is False
    assert live(word_timestamps="true").text.word_timestamps is True


# -- model (live path only) ----------------------------------------------------------------


@pytest.mark.parametrize("query", [{}, {"model": ""}, {"model": "  "}])
def test_live_path_requires_model(query: dict[str, str]) -> None:
    with pytest.raises(ParamError) as info:
        parse_stream_params(query, legacy_path=False)
    assert info.value.param == "model"
    assert info.value.allowed == "pulse"


def test_live_path_rejects_unknown_model() -> None:
    with pytest.raises(ParamError) as info:
        parse_stream_params({"model": "whisper-large"}, legacy_path=False)
    assert info.value.param == "model"
    assert "whisper-large" in info.value.message


@pytest.mark.parametrize("model", ["pulse-pro", "PULSE-PRO", " pulse-pro "])
def test_live_path_pulse_pro_has_exact_message(model: str) -> None:
    with pytest.raises(ParamError) as info:
        parse_stream_params({"model": model}, legacy_path=False)
    assert info.value.param == "model"
    assert info.value.message == PULSE_PRO_STREAMING_MESSAGE
    assert str(info.value) == PULSE_PRO_STREAMING_MESSAGE


@pytest.mark.parametrize("model", ["pulse", "Pulse", " pulse "])
def test_live_path_accepts_pulse(model: str) -> None:
    assert isinstance(parse_stream_params({"model": model}, legacy_path=False), StreamParams)


@pytest.mark.parametrize("query", [{}, {"model": "pulse-pro"}, {"model": "nonsense"}])
def test_legacy_path_ignores_model(query: dict[str, str]) -> None:
    assert isinstance(parse_stream_params(query, legacy_path=True), StreamParams)


# -- booleans ------------------------------------------------------------------------------


@pytest.mark.parametrize("legacy_path", [True, False])
@pytest.mark.parametrize("value", ["yes", "1", "no", "0", "", "on"])
@pytest.mark.parametrize("name", BOOL_PARAMS)
def test_bool_params_reject_non_boolean(name: str, value: str, legacy_path: bool) -> None:
    err = param_error({name: value}, legacy_path=legacy_path)
    assert err.param == name
    assert name in err.message
    assert err.allowed == "true, false"


@pytest.mark.parametrize("name", BOOL_PARAMS)
def test_bool_params_accept_true_false_any_case(name: str) -> None:
    on = live(**{name: " TRUE "})
    off = live(**{name: "False"})
    assert on != off


def test_invalid_vad_rejected_even_when_vad_events_true() -> None:
    err = param_error({"vad_events": "true", "vad": "yes"})
    assert err.param == "vad"


def test_vad_alias() -> None:
    assert live(vad="true").vad_events is True
    assert live(vad_events="true").vad_events is True
    assert live(vad="false", vad_events="false").vad_events is False
    assert live(vad="true", vad_events="false").vad_events is True


# -- sample rate, encoding -----------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 24000, 44100, 48000])
def test_sample_rate_valid(rate: int) -> None:
    assert live(sample_rate=str(rate)).sample_rate == rate
    assert live(sample_rate=f" {rate} ").sample_rate == rate


@pytest.mark.parametrize("raw", ["44000", "abc", "", "16000.0", "-16000", "0"])
def test_sample_rate_invalid(raw: str) -> None:
    err = param_error({"sample_rate": raw})
    assert err.param == "sample_rate"
    assert err.allowed is not None
    assert "16000" in err.allowed
    assert "44000" not in err.allowed


@pytest.mark.parametrize("encoding", ["linear16", "linear32", "alaw", "mulaw", "opus", "ogg_opus"])
def test_encoding_valid(encoding: str) -> None:
    assert live(encoding=encoding).encoding == encoding
    assert live(encoding=encoding.upper()).encoding == encoding


@pytest.mark.parametrize("encoding", ["pcm", "flac", "linear8", ""])
def test_encoding_invalid(encoding: str) -> None:
    err = param_error({"encoding": encoding})
    assert err.param == "encoding"
    assert err.allowed is not None
    assert "linear16" in err.allowed


# -- integers ------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [("100", 100), ("10000", 10000), ("1500", 1500)])
def test_eou_timeout_bounds_inclusive(raw: str, expected: int) -> None:
    assert live(eou_timeout_ms=raw).eou_timeout_ms == expected


def test_eou_timeout_empty_is_default() -> None:
    assert live(eou_timeout_ms="").eou_timeout_ms == 800


@pytest.mark.parametrize("raw", ["99", "10001", "0", "-800", "abc", "1.5", "800ms"])
def test_eou_timeout_out_of_range(raw: str) -> None:
    err = param_error({"eou_timeout_ms": raw})
    assert err.param == "eou_timeout_ms"
    assert err.allowed == "100..10000"


@pytest.mark.parametrize(("raw", "expected"), [("1", 1), ("10000", 10000), ("", None)])
def test_max_words_valid(raw: str, expected: int | None) -> None:
    assert live(max_words=raw).max_words == expected


@pytest.mark.parametrize("raw", ["0", "10001", "-1", "many"])
def test_max_words_invalid(raw: str) -> None:
    err = param_error({"max_words": raw})
    assert err.param == "max_words"
    assert err.allowed == "1..10000"


# -- keywords ------------------------------------------------------------------------------


def test_keywords_parsed_with_intensifiers() -> None:
    params = live(keywords="small language model:3.5, Pulse ,I:20,zero:0")
    assert params.keywords == (
        Keyword("small language model", 3.5),
        Keyword("Pulse", 1.0),
        Keyword("I", 20.0),
        Keyword("zero", 0.0),
    )


def test_keywords_without_intensifier_default_to_one() -> None:
    assert live(keywords="alpha,beta").keywords == (Keyword("alpha", 1.0), Keyword("beta", 1.0))


def test_keywords_empty_entries_skipped() -> None:
    assert live(keywords=",, alpha ,,").keywords == (Keyword("alpha", 1.0),)
    assert live(keywords="  ").keywords == ()


def test_keywords_intensifier_out_of_range() -> None:
    err = param_error({"keywords": "I:20,smiling:26"})
    assert err.param == "keywords"
    assert "smiling:26" in err.message
    assert err.allowed == "0..20"


@pytest.mark.parametrize("raw", ["x:abc", "x:-1", "x:20.01", "x:nan", "x:inf"])
def test_keywords_bad_intensifier(raw: str) -> None:
    err = param_error({"keywords": raw})
    assert err.param == "keywords"
    assert raw in err.message


@pytest.mark.parametrize("raw", [":5", "  :5", "ok,:5"])
def test_keywords_missing_phrase(raw: str) -> None:
    err = param_error({"keywords": raw})
    assert err.param == "keywords"
    assert ":5" in err.message


def test_keywords_count_limit() -> None:
    hundred = ",".join(f"w{i}" for i in range(100))
    assert len(live(keywords=hundred).keywords) == 100
    err = param_error({"keywords": hundred + ",w100"})
    assert err.param == "keywords"
    assert "101" in err.message


# -- text options --------------------------------------------------------------------------


def test_format_false_forces_formatting_off() -> None:
    text = live(format="false", punctuate="true", capitalize="true", itn_normalize="true").text
    assert text.format is False
    assert (text.punctuate, text.capitalize, text.itn_normalize) == (False, False, False)


def test_format_true_keeps_individual_switches() -> None:
    text = live(format="true", punctuate="false", itn_normalize="true").text
    assert (text.punctuate, text.capitalize, text.itn_normalize) == (False, True, True)


@pytest.mark.parametrize("value", ["auto", "true", "false", "TRUE"])
def test_numerals_choices(value: str) -> None:
    assert live(numerals=value).text.numerals == value.lower()


def test_numerals_invalid() -> None:
    assert param_error({"numerals": "yes"}).param == "numerals"


# -- external_session_id -------------------------------------------------------------------


@pytest.mark.parametrize("value", ["a", "abc-DEF_1.2", "x" * 128])
def test_external_session_id_valid(value: str) -> None:
    assert live(external_session_id=value).external_session_id == value


@pytest.mark.parametrize("value", ["x" * 129, "a b", "", "a/b", "ä", "id\n"])
def test_external_session_id_invalid(value: str) -> None:
    assert param_error({"external_session_id": value}).param == "external_session_id"


# -- language ------------------------------------------------------------------------------


def test_language_multi_has_many_candidates() -> None:
    language = live(language="multi").language
    assert language.fixed is None
    assert language.requested == "multi"
    assert len(language.candidates) > 50
    assert set(MULTI_EU_LANGUAGES) <= set(language.candidates)
    assert {"ja", "zh", "hi"} <= set(language.candidates)


@pytest.mark.parametrize("raw", ["de", "DE", " de "])
def test_language_fixed(raw: str) -> None:
    language = live(language=raw).language
    assert (language.requested, language.fixed, language.candidates) == ("de", "de", ("de",))


def test_language_empty_is_multi_eu() -> None:
    assert live(language="").language.candidates == MULTI_EU_LANGUAGES


@pytest.mark.parametrize("raw", ["xx", "english", "en-US", "multi_eu"])
def test_language_invalid(raw: str) -> None:
    err = param_error({"language": raw})
    assert err.param == "language"
    assert err.allowed is not None
    assert err.allowed.startswith("multi-eu, multi, ")


# -- misc ----------------------------------------------------------------------------------


@pytest.mark.parametrize("legacy_path", [True, False])
def test_unknown_params_ignored(legacy_path: bool) -> None:
    base: dict[str, str] = {} if legacy_path else dict(LIVE)
    plain = parse_stream_params(base, legacy_path=legacy_path)
    extra = {**base, "foo": "bar", "token": "x y z", "sample_rate_hz": "nope"}
    assert parse_stream_params(extra, legacy_path=legacy_path) == plain


def test_param_error_to_json() -> None:
    err = param_error({"sample_rate": "44000"})
    body = err.to_json()
    assert body["status"] == "error"
    assert body["error"] == "invalid_parameter"
    assert body["param"] == "sample_rate"
    assert body["message"] == err.message
    assert "44000" in body["message"]
    assert body["allowed"] == "8000, 16000, 22050, 24000, 44100, 48000"


def test_param_error_to_json_without_allowed() -> None:
    body = ParamError("external_session_id", "bad id").to_json()
    assert body == {
        "status": "error",
        "error": "invalid_parameter",
        "param": "external_session_id",
        "message": "bad id",
    }
    assert issubclass(ParamError, ValueError)


# -- robustness: any query either parses or is a ParamError ---------------------------------

_FUZZ_KEYS = (
    *BOOL_PARAMS,
    "model",
    "language",
    "encoding",
    "sample_rate",
    "numerals",
    "eou_timeout_ms",
    "max_words",
    "keywords",
    "external_session_id",
    "unknown",
)
_FUZZ_VALUES = (
    "",
    " ",
    "true",
    "FALSE",
    "yes",
    "1",
    "pulse",
    "pulse-pro",
    "16000",
    "44000",
    "-1",
    "1e3",
    "nan",
    "inf",
    "1" * 5000,
    "de",
    "multi",
    "a:b",
    "x:1,y:2",
    "::",
    ":",
    "\x00",
    "٣",
    ",,,",
)


def _check_total(query: dict[str, str]) -> None:
    for legacy_path in (True, False):
        try:
            result = parse_stream_params(query, legacy_path=legacy_path)
        except ParamError as exc:
            assert exc.param
            assert exc.message
        else:
            assert isinstance(result, StreamParams)


def test_random_queries_parse_or_raise_param_error() -> None:
    """Seeded stdlib fuzzing (always runs; the hypothesis variant below needs hypothesis)."""
    rng = random.Random(20240601)
    alphabet = string.printable + "äß٣\x00"
    for _ in range(2000):
        query: dict[str, str] = {}
        for _ in range(rng.randint(0, 6)):
            if rng.random() < 0.7:
                value = rng.choice(_FUZZ_VALUES)
            else:
                value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
            query[rng.choice(_FUZZ_KEYS)] = value
        _check_total(query)


def test_property_parse_or_param_error() -> None:
    hypothesis: Any = pytest.importorskip("hypothesis")
    st: Any = pytest.importorskip("hypothesis.strategies")
    keys = st.one_of(st.sampled_from(_FUZZ_KEYS), st.text(max_size=12))
    values = st.one_of(st.sampled_from(_FUZZ_VALUES), st.text(max_size=40))

    @hypothesis.settings(max_examples=300, deadline=None)
    @hypothesis.given(st.dictionaries(keys, values, max_size=8))
    def check(query: dict[str, str]) -> None:
        _check_total(query)

    check()
