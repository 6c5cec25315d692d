"""Control frames (`api.control`), the key store (`store.db`) and transcript shaping."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pulse_stt.api.control import Control, ControlError, parse_control
from pulse_stt.engine.types import Hypothesis, Word
from pulse_stt.protocol import TextOptions
from pulse_stt.store.db import Store
from pulse_stt.text.format import TimedWord, Utterance, shape_transcript

# -- control frames ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type":"finalize"}', Control.FINALIZE),
        ('{"type": "close_stream"}', Control.CLOSE_STREAM),
        ('{"type":"end"}', Control.CLOSE_STREAM),  # legacy spelling
        (' {"type":"finalize","extra":[1,2]} ', Control.FINALIZE),
    ],
)
def test_parse_control_valid(text: str, expected: Control) -> None:
    assert parse_control(text) is expected


@pytest.mark.parametrize(
    "text",
    [
        "finalize",  # not JSON
        "",
        "{",
        '["finalize"]',  # a JSON array
        '"finalize"',  # a JSON string
        "null",
        '{"type":"flush"}',  # unknown type
        '{"type":"FINALIZE"}',
        '{"kind":"finalize"}',  # missing type
        "{}",
        '{"type":5}',
        '{"type":null}',
        "[" * 100_000,  # deep nesting must not escape as RecursionError
    ],
)
def test_parse_control_invalid_mentions_what_to_send(text: str) -> None:
    with pytest.raises(ControlError) as info:
        parse_control(text)
    message = str(info.value)
    assert "finalize" in message
    assert "close_stream" in message


def test_control_error_says_what_was_wrong() -> None:
    with pytest.raises(ControlError, match="not JSON"):
        parse_control("hello")
    with pytest.raises(ControlError, match="JSON object"):
        parse_control("[1]")
    with pytest.raises(ControlError, match="'flush'"):
        parse_control('{"type":"flush"}')


# -- key store -----------------------------------------------------------------------------


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "sub" / "k.db"  # the parent folder does not exist yet


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{db_path}")
    yield s
    s.close()


def test_create_and_authenticate(store: Store) -> None:
    key, secret = store.create_key("alice")
    assert secret.startswith("pstt_")
    assert len(secret) > 40
    assert key.name == "alice"
    assert key.revoked_at is None
    assert key.hint == "pstt_…" + secret[-4:]
    found = store.authenticate(secret)
    assert found is not None
    assert found.id == key.id
    assert found.name == "alice"


def test_secrets_are_random(store: Store) -> None:
    secrets = {store.create_key(f"k{i}")[1] for i in range(5)}
    assert len(secrets) == 5


def test_wrong_secret_is_rejected(store: Store) -> None:
    _, secret = store.create_key("alice")
    assert store.authenticate(secret + "x") is None
    assert store.authenticate(secret[:-1]) is None
    assert store.authenticate("") is None
    assert store.authenticate("pstt_" + "A" * 43) is None


def test_revoked_key_is_rejected(store: Store) -> None:
    key, secret = store.create_key("alice")
    other, other_secret = store.create_key("bob")
    assert store.active_key_count() == 2
    assert store.revoke_key(key.id) is True
    assert store.revoke_key(key.id) is False  # already revoked
    assert store.revoke_key(9999) is False
    assert store.authenticate(secret) is None
    assert store.authenticate(other_secret) is not None
    assert store.active_key_count() == 1
    listed = {k.id: k for k in store.list_keys()}
    assert listed[key.id].revoked_at is not None
    assert listed[other.id].revoked_at is None


def test_ensure_key_idempotent_and_keeps_a_revocation(store: Store) -> None:
    secret = "pstt_configured_0123456789abcdef"
    first = store.ensure_key("env", secret)
    second = store.ensure_key("env", secret)
    assert first.id == second.id
    assert len(store.list_keys()) == 1
    assert store.authenticate(secret) is not None
    store.revoke_key(first.id)
    assert store.authenticate(secret) is None
    third = store.ensure_key("env", secret)
    assert third.id == first.id
    assert third.revoked_at is not None  # only `enable_key` undoes a revocation
    assert store.authenticate(secret) is None
    assert store.enable_key(first.id)
    found = store.authenticate(secret)
    assert found is not None and found.id == first.id
    assert len(store.list_keys()) == 1


def test_ensure_key_with_secret_of_created_key(store: Store) -> None:
    key, secret = store.create_key("alice")
    assert store.ensure_key("other-name", secret).id == key.id
    assert len(store.list_keys()) == 1


def test_usage_recorded_and_summed(store: Store) -> None:
    a, _ = store.create_key("a")
    b, _ = store.create_key("b")
    c, _ = store.create_key("c")
    started = datetime.now(UTC)
    store.record_usage(
        key_id=a.id, session_id="s1", endpoint="/live", audio_seconds=1.5, started_at=started
    )
    store.record_usage(
        key_id=a.id,
        session_id="s2",
        endpoint="/live",
        audio_seconds=2.25,
        started_at=started,
        external_session_id="ext-1",
    )
    store.record_usage(
        key_id=b.id, session_id="s3", endpoint="/rest", audio_seconds=0.1234, started_at=started
    )
    assert store.usage_seconds(a.id) == pytest.approx(3.75)
    assert store.usage_seconds(b.id) == pytest.approx(0.123)  # stored to the millisecond
    assert store.usage_seconds(c.id) == 0.0
    listed = {k.name: k.audio_seconds for k in store.list_keys()}
    assert listed == pytest.approx({"a": 3.75, "b": 0.123, "c": 0.0})
    assert [k.name for k in store.list_keys()] == ["a", "b", "c"]


def test_data_survives_reopen(db_path: Path) -> None:
    first = Store(f"sqlite:///{db_path}")
    key, secret = first.create_key("alice")
    first.close()
    second = Store(f"sqlite:///{db_path}")
    try:
        found = second.authenticate(secret)
        assert found is not None and found.id == key.id
    finally:
        second.close()


def test_secret_not_stored_in_plain_text(store: Store, db_path: Path) -> None:
    secrets = [store.create_key(f"k{i}")[1] for i in range(3)]
    secrets.append("pstt_configured_0123456789abcdef")
    store.ensure_key("env", secrets[-1])
    store.close()
    raw = db_path.read_bytes()
    with sqlite3.connect(db_path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        cells = [
            str(value)
            for table in tables
            for row in conn.execute(f'SELECT * FROM "{table}"')
            for value in row
        ]
    assert "api_keys" in tables
    assert cells
    for secret in secrets:
        assert secret.encode() not in raw
        assert secret[10:].encode() not in raw  # not even the part after the hint
        assert not any(secret in cell or secret[10:] in cell for cell in cells)


# -- transcript shaping --------------------------------------------------------------------

HYP = Hypothesis(
    text=" Hello, world. How are you? Fine!",
    words=(
        Word(" Hello,", 0.0, 0.4, 0.9),
        Word(" world.", 0.4, 0.9, 0.8),
        Word(" How", 1.2, 1.4, 0.7),
        Word(" are", 1.4, 1.5, 0.95),
        Word(" you?", 1.5, 1.9, 0.6),
        Word(" Fine!", 2.5, 2.9, 0.99),
    ),
    language="en",
)


def options(**switches: bool) -> TextOptions:
    return TextOptions(word_timestamps=True, **switches)


def test_shape_default_keeps_text_and_shifts_times() -> None:
    out = shape_transcript(HYP, 10.0, options())
    assert out.text == "Hello, world. How are you? Fine!"
    assert [w.text for w in out.words] == ["Hello,", "world.", "How", "are", "you?", "Fine!"]
    assert out.words[0] == TimedWord("Hello,", 10.0, 10.4, 0.9)
    assert [(w.start, w.end) for w in out.words] == [
        (10.0, 10.4),
        (10.4, 10.9),
        (11.2, 11.4),
        (11.4, 11.5),
        (11.5, 11.9),
        (12.5, 12.9),
    ]
    assert [w.confidence for w in out.words] == [0.9, 0.8, 0.7, 0.95, 0.6, 0.99]
    assert out.language == "en"
    assert out.languages == ("en",)


def test_shape_times_rounded_to_milliseconds() -> None:
    hyp = Hypothesis("a", (Word("a", 0.1, 0.2, 1.0),))
    out = shape_transcript(hyp, 1 / 3, options())
    assert (out.words[0].start, out.words[0].end) == (0.433, 0.533)


def test_shape_utterances_split_at_sentence_ends() -> None:
    out = shape_transcript(HYP, 10.0, options())
    assert out.utterances == (
        Utterance("Hello, world.", 10.0, 10.9),
        Utterance("How are you?", 11.2, 11.9),
        Utterance("Fine!", 12.5, 12.9),
    )


def test_shape_trailing_words_form_last_utterance() -> None:
    hyp = Hypothesis(
        "One. Two three", (Word("One.", 0, 1, 1), Word("Two", 1, 2, 1), Word("three", 2, 3, 1))
    )
    out = shape_transcript(hyp, 0.0, options())
    assert [u.text for u in out.utterances] == ["One.", "Two three"]


def test_shape_titles_and_initials_do_not_end_sentences() -> None:
    words = ("And", "Mr.", "J.", "Dashwood", "came.", "Dr.", "Lee", "left.")
    hyp = Hypothesis(
        " ".join(words), tuple(Word(f" {w}", i, i + 1.0, 1.0) for i, w in enumerate(words))
    )
    out = shape_transcript(hyp, 0.0, options())
    assert [u.text for u in out.utterances] == ["And Mr. J. Dashwood came.", "Dr. Lee left."]


def test_shape_no_punctuation() -> None:
    out = shape_transcript(HYP, 10.0, options(punctuate=False))
    assert out.text == "Hello world How are you Fine"
    assert [w.text for w in out.words] == ["Hello", "world", "How", "are", "you", "Fine"]
    for char in ".,?!":
        assert char not in out.text
        assert all(char not in u.text for u in out.utterances)
    # sentences are still found from the decoder's punctuation
    assert [u.text for u in out.utterances] == ["Hello world", "How are you", "Fine"]
    assert out.words[-1].start == 12.5


def test_shape_no_capitals() -> None:
    out = shape_transcript(HYP, 0.0, options(capitalize=False))
    assert out.text == "hello, world. how are you? fine!"
    assert [w.text for w in out.words] == ["hello,", "world.", "how", "are", "you?", "fine!"]
    assert [u.text for u in out.utterances] == ["hello, world.", "how are you?", "fine!"]


def test_shape_neither() -> None:
    out = shape_transcript(HYP, 0.0, options(punctuate=False, capitalize=False))
    assert out.text == "hello world how are you fine"
    assert [u.text for u in out.utterances] == ["hello world", "how are you", "fine"]


def test_shape_drops_words_that_were_only_punctuation() -> None:
    hyp = Hypothesis("Yes ...", (Word("Yes", 0, 1, 1), Word(" ...", 1, 2, 1)))
    assert [w.text for w in shape_transcript(hyp, 0.0, options()).words] == ["Yes", "..."]
    out = shape_transcript(hyp, 0.0, options(punctuate=False))
    assert [w.text for w in out.words] == ["Yes"]
    assert out.text == "Yes"


def test_shape_empty_hypothesis() -> None:
    out = shape_transcript(Hypothesis(""), 3.0, options())
    assert (out.text, out.words, out.utterances) == ("", (), ())
    assert out.languages == ()


def test_shape_language_candidates_reported() -> None:
    hyp = Hypothesis("Hallo", (), language="de", language_candidates=("de", "nl"))
    out = shape_transcript(hyp, 0.0, options())
    assert out.language == "de"
    assert out.languages == ("de", "nl")
    assert out.utterances == ()  # no word timings, no utterances


def test_no_punctuation_keeps_decimal_numbers() -> None:
    words = ("It", "costs", "3.5", "dollars.")
    hyp = Hypothesis(
        "It costs 3.5 dollars.", tuple(Word(w, i, i + 1, 1) for i, w in enumerate(words))
    )
    out = shape_transcript(hyp, 0.0, options(punctuate=False))
    assert out.text == "It costs 3.5 dollars"
    assert out.words[2].text == "3.5"
