"""Redaction of what Whisper writes: digit runs in every separator style, e-mails written
and spoken (in several languages), names inside other entities; and the model outputs
observed through the real server (tests/unit/fixtures/redaction_outputs.json)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pulse_stt.protocol import RedactEntity
from pulse_stt.text.redact import SessionRedactor
from pulse_stt.text.redact_view import detection_view
from pulse_stt.text.tokens import Token, render
from tests.support.redaction import LABEL, TOKEN_KIND

OUTPUTS = Path(__file__).parent / "fixtures" / "redaction_outputs.json"


def toks(text: str) -> list[Token]:
    return [Token(w, float(i), i + 0.5, 0.9) for i, w in enumerate(text.split())]


def redact(
    text: str, *, pii: bool = True, pci: bool = True, language: str | None = None
) -> tuple[str, list[str]]:
    out, used = SessionRedactor(pii=pii, pci=pci).redact(toks(text), language=language)
    return render(out), used


# -- digit runs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Call me back at 5, 5, 5, 2, 3, 4, 9, 8, 7, 6.",
        "call 5-5-5-1-2-3-4567 now",
        "call 5-5-5, 1-2-3, 4-5-6-7 now",
        "call 555.123.4567 now",
        "call 555, 123, 4567 now",
        "call five five five 123 4567 now",
        "call five, five, five, one, two, three, four, five, six, seven now",
        "call 5,5,5,1,2,3,4,5,6,7 now",
        "call (415) 555-2671 now",
    ],
)
def test_digit_runs_in_any_style_are_phone_numbers(text: str) -> None:
    rendered, used = redact(text, pci=False)
    assert used == ["[PHONENUMBER_1]"], rendered
    assert not re.search(r"\d", rendered.replace("[PHONENUMBER_1]", "")), rendered


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Meine Nummer ist null drei null, eins zwei drei, vier fünf sechs sieben.", "de"),
        ("Mi número es seis uno dos, tres cuatro cinco, seis siete ocho.", "es"),
        ("Il mio numero è tre tre tre, uno due tre, quattro cinque sei sette.", "it"),
        ("O meu número é nove um dois, três quatro cinco, seis sete oito.", "pt"),
        ("Mon numéro est zéro six, 12, 34, 56, 78.", "fr"),
    ],
)
def test_digit_words_of_the_spoken_language(text: str, language: str) -> None:
    rendered, used = redact(text, pci=False, language=language)
    assert used == ["[PHONENUMBER_1]"], rendered


def test_other_languages_digit_words_are_not_digits_in_english() -> None:
    view, _ = detection_view(toks("the bill is due tre sei"), "en")
    assert view == "the bill is due tre sei"
    view, _ = detection_view(toks("tre sei"), "it")
    assert view == "3 6"


@pytest.mark.parametrize(
    "text",
    [
        "My card is 4111, 1111, 1111, 1111.",
        "My card is 4-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1.",
        "My card is four one one one 1111 1111 one one one one.",
        "Meine Kartennummer ist 4111 1111 1111 1111.",
    ],
)
def test_card_numbers_in_any_style(text: str) -> None:
    rendered, used = redact(text, pii=True, pci=True)
    assert used == ["[ACCOUNTNUMBER_1]"], rendered


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The security code is 7, 3, 1.", "The security code is [ACCOUNTNUMBER_1]."),
        ("The CVV is seven three one.", "The CVV is [ACCOUNTNUMBER_1]."),
        ("It expires 08/27.", "It expires [ACCOUNTNUMBER_1]."),
        ("My account number is 1, 2, 3, 4, 5, 6, 7, 8.", "My account number is [ACCOUNTNUMBER_1]."),
    ],
)
def test_cvv_expiry_account_in_written_styles(text: str, expected: str) -> None:
    assert redact(text, pii=False, pci=True)[0] == expected


@pytest.mark.parametrize(
    "text",
    [
        "My IBAN is D E 8 9, 3 7 0 4, 0 0 4 4, 0 5 3 2, 0 1 3 0, 0 0.",
        "My IBAN is DE 89 3704 0044 0532 0130 00.",
        # The model lost "IBAN" and the country letters: 18 digits are still an account.
        "I'm repeating it time, 3 7 0 4 0 0 4 4 0 5 3 2 0 1 3 0 0 0",
    ],
)
def test_ibans_spelled_out_and_long_digit_runs(text: str) -> None:
    rendered, used = redact(text, pii=False, pci=True)
    assert used == ["[ACCOUNTNUMBER_1]"], rendered
    assert not re.search(r"\d", rendered.replace("[ACCOUNTNUMBER_1]", "")), rendered


@pytest.mark.parametrize(
    "text",
    [
        "I counted 1, 2, 3 and then 4.",
        "It costs 1,000,000 dollars.",
        "The meeting is at 3:30 on May 5, 2024.",
        "We sold 1, 2 or 3 units.",
        "We went there in 2019, 2020, 2021.",
    ],
)
def test_short_or_grouped_numbers_are_not_phone_numbers(text: str) -> None:
    assert redact(text) == (text, [])


# -- e-mails ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("my email is john dot smith at example dot com.", None),
        ("my email is john.smith@example.com.", None),
        ("my email is John.Smith at example.com.", None),
        ("my email is John Smith at example.com.", None),
        ("my email is john smith at example dot com.", None),
        ("my email is john underscore smith at example dot co dot uk.", None),
        ("Meine E-Mail ist anna punkt schmidt at beispiel punkt de.", "de"),
        ("Mi correo es maria punto garcia arroba gmail punto com.", "es"),
        ("Mon adresse est pierre point martin arobase gmail point com.", "fr"),
        ("La mia email è marco punto rossi chiocciola gmail punto com.", "it"),
        ("O meu email é joao ponto silva arroba gmail ponto com.", "pt"),
        ("My email is john.smitha.ample.com.", None),  # "smith at example" run together
    ],
)
def test_emails_written_and_spoken(text: str, language: str | None) -> None:
    rendered, used = redact(text, language=language)
    assert used == ["[EMAIL_1]"], rendered
    assert rendered.endswith("[EMAIL_1]."), rendered


def test_written_and_spoken_forms_of_one_address_share_a_label() -> None:
    redactor = SessionRedactor(pii=True)
    a, _ = redactor.redact(toks("write to john.smith@example.com"))
    b, _ = redactor.redact(toks("that is john dot smith at example dot com"))
    c, _ = redactor.redact(toks("or jane@example.com"))
    assert [render(x) for x in (a, b, c)] == [
        "write to [EMAIL_1]",
        "that is [EMAIL_1]",
        "or [EMAIL_2]",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Contact us at example.com today.",
        "Visit us at the store.",
        "I work at home.",
        "See www.news.example.com today.",
        "It is on docs.python.org now.",
    ],
)
def test_websites_and_places_are_not_emails(text: str) -> None:
    assert redact(text) == (text, [])


# -- names inside other entities --------------------------------------------------------------


@pytest.mark.parametrize(
    "email",
    [
        "sarah dot johnson at gmail dot com",
        "sarah.johnson@gmail.com",
        "Sarah Johnson at gmail.com",
        "sarah johnson at gmail dot com",
        "Sarah.Johnson at gmail.com",
        "Sarah.Johnsonatgmail.com",  # observed: "at" run into the word
        "Sarah. Johnson at gmail.com",  # observed: the model wrote the dot as a full stop
    ],
)
def test_name_then_the_same_persons_email(email: str) -> None:
    rendered, used = redact(f"My name is Sarah Johnson, and my email is {email}.")
    assert rendered == "My name is [FIRSTNAME_1] [LASTNAME_1], and my email is [EMAIL_1]."
    assert used == ["[FIRSTNAME_1]", "[LASTNAME_1]", "[EMAIL_1]"]


def test_lower_case_name_words_before_at_belong_to_the_address() -> None:
    rendered, _ = redact("This is Michael Brown. Write to michael brown at outlook dot com.")
    assert rendered == "This is [FIRSTNAME_1] [LASTNAME_1]. Write to [EMAIL_1]."


def test_names_inside_an_email_that_is_not_redacted() -> None:
    redactor = SessionRedactor(entities={RedactEntity.FIRST_NAME, RedactEntity.LAST_NAME})
    first, _ = redactor.redact(toks("My name is Sarah Johnson."))
    later, used = redactor.redact(
        toks("my email is sarah.johnson@gmail.com or sarah dot johnson at gmail dot com")
    )
    assert render(first) == "My name is [FIRSTNAME_1] [LASTNAME_1]."
    assert render(later) == (
        "my email is [FIRSTNAME_1].[LASTNAME_1]@gmail.com or "
        "[FIRSTNAME_1] dot [LASTNAME_1] at gmail dot com"
    )
    assert used == ["[FIRSTNAME_1]", "[LASTNAME_1]"]
    assert later[2].start == 2.0 and later[2].end == 2.5  # the word keeps its times


def test_a_name_said_again_in_lower_case_keeps_its_number() -> None:
    redactor = SessionRedactor(pii=True)
    redactor.redact(toks("My name is Sarah Johnson."))
    redactor.redact(toks("And this is Mr. Garcia."))
    out, _ = redactor.redact(toks("so sarah and johnson and garcia"))
    assert render(out) == "so [FIRSTNAME_1] and [LASTNAME_1] and [LASTNAME_2]"


def test_partials_do_not_remember_names() -> None:
    redactor = SessionRedactor(pii=True)
    redactor.redact(toks("My name is Sarah Johnson."), commit=False)
    out, _ = redactor.redact(toks("so sarah said"))
    assert render(out) == "so sarah said"


def test_ambiguous_names_said_again_only_count_capitalised() -> None:
    redactor = SessionRedactor(pii=True)
    redactor.redact(toks("My name is Mark."))
    out, _ = redactor.redact(toks("I will mark it, Mark."))
    assert render(out) == "I will mark it, [FIRSTNAME_1]."


# -- what the model wrote (observed through the real server) ----------------------------------


def _observed(*, entities: bool) -> list[dict]:
    """Observed outputs that hold every entity spoken (`expect` lists them), or none."""
    records = json.loads(OUTPUTS.read_text())
    return [r for r in records if r["expect"] is not None and bool(r["expect"]) == entities]


def _id(record: dict) -> str:
    return f"{record['lang']}-{record['rate']}-{record['output'][:40]}"


@pytest.mark.parametrize("record", _observed(entities=True), ids=_id)
def test_observed_model_outputs(record: dict) -> None:
    out, used = SessionRedactor(pii=True, pci=True).redact(
        toks(record["output"]), language=record["lang"]
    )
    rendered = render(out)
    assert sorted(LABEL.findall(rendered)) == sorted(TOKEN_KIND[k] for k in record["expect"]), (
        rendered
    )
    assert used and all(label in rendered for label in used)
    for secret in record["secrets"]:
        assert secret.lower() not in rendered.lower(), rendered
    assert not re.search(r"\d(?:[\s.,/-]*\d){2,}", rendered), rendered


@pytest.mark.parametrize("record", _observed(entities=False), ids=_id)
def test_observed_outputs_without_entities_stay(record: dict) -> None:
    out, used = SessionRedactor(pii=True, pci=True).redact(
        toks(record["output"]), language=record["lang"]
    )
    assert (render(out), used) == (record["output"], [])
