"""Parameters the ecosystem's clients send (issue 16): redaction kind lists, the
multi-indic / multi-asian groups, model=pulse-2, the accepted-but-unused flags and the
Pulse Pro webhook parameters."""

from __future__ import annotations

import pytest

from pulse_stt.api.params import ParamError, parse_file_params, parse_stream_params
from pulse_stt.protocol import (
    MULTI_ASIAN_LANGUAGES,
    MULTI_INDIC_LANGUAGES,
    PCI_ENTITIES,
    PII_ENTITIES,
    RedactEntity,
    Webhook,
)


def live(**query: str):  # type: ignore[no-untyped-def]
    return parse_stream_params({"model": "pulse", **query}, legacy_path=False)


def rest(**query: str):  # type: ignore[no-untyped-def]
    return parse_file_params({"model": "pulse", **query}, legacy_path=False)


def error(parse, **query: str) -> ParamError:  # type: ignore[no-untyped-def]
    with pytest.raises(ParamError) as caught:
        parse(**query)
    return caught.value


# -- redaction ---------------------------------------------------------------------------


@pytest.mark.parametrize("parse", [live, rest])
def test_redact_true_false_keep_their_meaning(parse) -> None:  # type: ignore[no-untyped-def]
    text = parse(redact_pii="true", redact_pci="false").text
    assert text.redact_pii == PII_ENTITIES and text.redact_pci == frozenset()
    text = parse(redact_pii="FALSE", redact_pci="True").text
    assert text.redact_pii == frozenset() and text.redact_pci == PCI_ENTITIES


@pytest.mark.parametrize("parse", [live, rest])
def test_redact_lists_of_kinds_and_aliases(parse) -> None:  # type: ignore[no-untyped-def]
    text = parse(redact_pci="credit_card,CVV", redact_pii="Phone-Number, email").text
    assert text.redact_pci == {RedactEntity.CREDIT_CARD, RedactEntity.CVV}
    assert text.redact_pii == {RedactEntity.PHONE_NUMBER, RedactEntity.EMAIL}
    # aliases: token names, Presidio names, short forms; a name is first and last name
    text = parse(redact_pii="PERSON,PHONENUMBER", redact_pci="CREDIT_CARD,zip,IBAN_CODE").text
    assert text.redact_pii == {
        RedactEntity.FIRST_NAME,
        RedactEntity.LAST_NAME,
        RedactEntity.PHONE_NUMBER,
    }
    assert text.redact_pci == {RedactEntity.CREDIT_CARD, RedactEntity.ZIP_CODE, RedactEntity.IBAN}
    assert parse(redact_pii="").text.redact_pii == frozenset()  # an empty list: nothing


@pytest.mark.parametrize("parse", [live, rest])
def test_unknown_redact_kind_is_a_400_listing_the_kinds(parse) -> None:  # type: ignore[no-untyped-def]
    err = error(parse, redact_pci="credit_card,passport")
    assert err.param == "redact_pci" and "'passport'" in err.message
    assert err.allowed is not None
    assert err.allowed.startswith("true, false, ") and "credit_card" in err.allowed
    assert error(parse, redact_pii="yes").param == "redact_pii"


# -- languages and models ----------------------------------------------------------------


@pytest.mark.parametrize("parse", [live, rest])
def test_language_groups(parse) -> None:  # type: ignore[no-untyped-def]
    indic = parse(language="multi-indic").language
    assert (indic.fixed, indic.candidates) == (None, MULTI_INDIC_LANGUAGES)
    asian = parse(language="Multi-Asian").language
    assert (asian.fixed, asian.candidates) == (None, MULTI_ASIAN_LANGUAGES)
    assert "or" not in MULTI_INDIC_LANGUAGES  # Whisper has no Odia


def test_group_members_are_languages_whisper_knows() -> None:
    from pulse_stt.api.params import whisper_languages

    known = set(whisper_languages())
    assert set(MULTI_INDIC_LANGUAGES) <= known and set(MULTI_ASIAN_LANGUAGES) <= known


@pytest.mark.parametrize("parse", [live, rest])
def test_pulse_2_is_pulse_pinned_to_english(parse) -> None:  # type: ignore[no-untyped-def]
    assert parse(model="pulse-2").language.fixed == "en"  # no language: English
    assert parse(model="pulse-2", language="en").language.fixed == "en"
    for other in ("de", "multi", "multi-eu"):
        err = error(parse, model="pulse-2", language=other)
        assert err.param == "language" and err.allowed == "en"
        assert "English-only" in err.message


def test_pulse_2_runs_on_the_pulse_engine() -> None:
    assert rest(model="pulse-2").pro is False


@pytest.mark.parametrize("parse", [live, rest])
@pytest.mark.parametrize("name", ["emotion_detection", "gender_detection", "no_format_delay"])
def test_accepted_flags_are_validated_booleans(parse, name: str) -> None:  # type: ignore[no-untyped-def]
    parse(**{name: "true"})
    parse(**{name: "false"})
    assert error(parse, **{name: "maybe"}).param == name


def test_pipecats_default_query_is_accepted() -> None:
    query = {
        "model": "pulse", "language": "en", "encoding": "linear16", "sample_rate": "16000",
        "word_timestamps": "false", "full_transcript": "false", "sentence_timestamps": "false",
        "redact_pii": "false", "redact_pci": "false", "numerals": "auto", "diarize": "false",
        "endpointing": "true", "format": "true", "emotion_detection": "true",
        "gender_detection": "true", "itn_normalize": "false", "no_format_delay": "false",
    }  # fmt: skip
    params = parse_stream_params(query, legacy_path=False)
    assert params.language.fixed == "en" and params.text.numerals == "auto"
    assert parse_stream_params({**query, "model": "pulse-2"}, legacy_path=False)


# -- webhook -----------------------------------------------------------------------------


def test_webhook_parameters_of_pulse_pro() -> None:
    pro = {"model": "pulse-pro"}
    params = parse_file_params({**pro, "webhook_url": "https://example.com/cb"}, legacy_path=False)
    assert params.webhook == Webhook("https://example.com/cb", "POST", None)
    params = parse_file_params(
        {**pro, "webhook_url": "http://h/cb?x=1", "webhook_method": "get", "webhook_extra": "42"},
        legacy_path=False,
    )
    assert params.webhook == Webhook("http://h/cb?x=1", "GET", "42")
    # model=pulse answers in-line, as the hosted API does: the webhook is Pulse Pro's
    assert rest(webhook_url="https://example.com/cb").webhook is None


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"webhook_url": "ftp://example.com/cb"}, "webhook_url"),
        ({"webhook_url": "/relative"}, "webhook_url"),
        ({"webhook_url": "https://x/" + "a" * 3000}, "webhook_url"),
        ({"webhook_url": "https://x/cb", "webhook_method": "PUT"}, "webhook_method"),
        ({"webhook_url": "https://x/cb", "webhook_extra": "e" * 9000}, "webhook_extra"),
    ],
)
def test_bad_webhook_parameters_are_400(query: dict[str, str], param: str) -> None:
    with pytest.raises(ParamError) as caught:
        parse_file_params({"model": "pulse-pro", **query}, legacy_path=False)
    assert caught.value.param == param
