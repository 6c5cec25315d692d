"""PII and PCI redaction (`text.redact.SessionRedactor`), numbered per session."""

from __future__ import annotations

import pytest
from stdnum import iban, luhn

from pulse_stt.text.redact import SessionRedactor
from pulse_stt.text.tokens import Token, render


def toks(text: str) -> list[Token]:
    """One token per word: word i spans [i, i + 0.5] s with confidence 0.9 - i/100."""
    return [
        Token(w, float(i), i + 0.5, round(0.9 - i / 100, 2)) for i, w in enumerate(text.split())
    ]


def redact(text: str, *, pii: bool = True, pci: bool = True) -> tuple[str, list[str]]:
    out, used = SessionRedactor(pii=pii, pci=pci).redact(toks(text))
    return render(out), used


SIXTEEN_SPOKEN = " ".join(["four"] + ["one"] * 15)  # 4111 1111 1111 1111


def test_fixtures_are_what_they_claim() -> None:
    assert luhn.is_valid("4111111111111111")
    assert not luhn.is_valid("1234567812345678")
    assert iban.is_valid("DE89 3704 0044 0532 0130 00")
    assert not iban.is_valid("DE88 3704 0044 0532 0130 00")


def test_nothing_enabled_changes_nothing() -> None:
    tokens = toks("My name is John Smith and my card is 4111111111111111.")
    out, used = SessionRedactor(pii=False, pci=False).redact(tokens)
    assert out == tokens
    assert used == []


def test_empty_input() -> None:
    assert SessionRedactor(pii=True, pci=True).redact([]) == ([], [])


# -- PCI -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the number 4111111111111111 came up", "the number [ACCOUNTNUMBER_1] came up"),
        ("My card number is 4111 1111 1111 1111.", "My card number is [ACCOUNTNUMBER_1]."),
        ("it is 4111-1111-1111-1111 ok", "it is [ACCOUNTNUMBER_1] ok"),
        # a misheard digit (no Luhn) still counts after "card"
        ("card 1234567812345678 please", "card [ACCOUNTNUMBER_1] please"),
        ("my visa is 1234567812345678.", "my visa is [ACCOUNTNUMBER_1]."),
        (f"it is {SIXTEEN_SPOKEN}", "it is [ACCOUNTNUMBER_1]"),
        ("IBAN DE89 3704 0044 0532 0130 00 thanks", "IBAN [ACCOUNTNUMBER_1] thanks"),
        ("the CVV is 123.", "the CVV is [ACCOUNTNUMBER_1]."),
        ("the security code is 1234", "the security code is [ACCOUNTNUMBER_1]"),
        ("it expires 08/27", "it expires [ACCOUNTNUMBER_1]"),
        ("the expiry date is 12/25", "the expiry date is [ACCOUNTNUMBER_1]"),
        ("valid thru 0825", "valid thru [ACCOUNTNUMBER_1]"),
        ("my account number is 12345678", "my account number is [ACCOUNTNUMBER_1]"),
        ("routing number 021000021", "routing number [ACCOUNTNUMBER_1]"),
        ("my zip code is 94107", "my zip code is [ADDRESS_1]"),
        ("my zip is 94107-1234.", "my zip is [ADDRESS_1]."),
    ],
)
def test_pci_patterns(text: str, expected: str) -> None:
    rendered, used = redact(text, pii=False, pci=True)
    assert rendered == expected
    assert used == [expected[expected.index("[") : expected.index("]") + 1]]


@pytest.mark.parametrize(
    "text",
    [
        "order 1234567812345678 please",  # no card context, no Luhn
        "IBAN DE88 3704 0044 0532 0130 00 thanks",  # bad IBAN checksum
        "the price is 123 dollars",  # digits without a CVV cue
        "my zip code is 941",  # not five digits
        "My card is here.",
        "He was not an ill-disposed young man.",
    ],
)
def test_pci_leaves_non_matches(text: str) -> None:
    assert redact(text, pii=False, pci=True) == (text, [])


def test_card_wins_over_phone_when_both_are_on() -> None:
    assert redact("call 4111 1111 1111 1111 now") == (
        "call [ACCOUNTNUMBER_1] now",
        ["[ACCOUNTNUMBER_1]"],
    )


def test_redacted_span_keeps_times_and_weakest_confidence() -> None:
    tokens = toks("card 4111 1111 1111 1111.")
    out, _ = SessionRedactor(pii=False, pci=True).redact(tokens)
    assert out == [tokens[0], Token("[ACCOUNTNUMBER_1].", 1.0, 4.5, 0.86)]


def test_spoken_card_span_covers_all_sixteen_words() -> None:
    tokens = toks(f"it is {SIXTEEN_SPOKEN}")
    out, _ = SessionRedactor(pii=False, pci=True).redact(tokens)
    assert out[:2] == tokens[:2]
    assert len(out) == 3
    assert (out[2].start, out[2].end) == (tokens[2].start, tokens[-1].end)


# -- PII -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call 415-555-2671 now", "call [PHONENUMBER_1] now"),
        ("call me at 5551234.", "call me at [PHONENUMBER_1]."),
        ("call five five five one two three four.", "call [PHONENUMBER_1]."),
        ("email john.doe@example.com thanks", "email [EMAIL_1] thanks"),
        ("email jane dot doe at gmail dot com thanks", "email [EMAIL_1] thanks"),
        ("I live at 42 Elm Street.", "I live at [ADDRESS_1]."),
        ("Send it to 1600 Pennsylvania Avenue please", "Send it to [ADDRESS_1] please"),
        ("My name is John Smith.", "My name is [FIRSTNAME_1] [LASTNAME_1]."),
        ("My name is Mark.", "My name is [FIRSTNAME_1]."),
        ("Call me Mark.", "Call me [FIRSTNAME_1]."),
        ("I spoke to Mr. Johnson today.", "I spoke to Mr. [LASTNAME_1] today."),
        ("Mrs. Garcia called", "Mrs. [LASTNAME_1] called"),
    ],
)
def test_pii_patterns(text: str, expected: str) -> None:
    rendered, used = redact(text, pii=True, pci=False)
    assert rendered == expected
    assert used and all(label in expected for label in used)


@pytest.mark.parametrize(
    "text",
    [
        "Will you call Mark tomorrow?",  # common words that are names only after a cue
        "May I help you?",
        "I hope you have a grace period.",
        "My card is here.",
        "He was not an ill-disposed young man.",
        "The meeting is at 3 pm.",
    ],
)
def test_pii_leaves_ordinary_sentences(text: str) -> None:
    assert redact(text, pii=True, pci=True) == (text, [])


def test_ambiguous_first_name_before_a_surname_counts() -> None:
    assert redact("Will Smith is here", pci=False) == (
        "[FIRSTNAME_1] [LASTNAME_1] is here",
        ["[FIRSTNAME_1]", "[LASTNAME_1]"],
    )


def test_pii_only_does_not_redact_cards_as_accounts() -> None:
    assert redact("card 4111111111111111 thanks", pii=True, pci=False) == (
        "card 4111111111111111 thanks",
        [],
    )


def test_pci_only_does_not_redact_names_phones_or_emails() -> None:
    text = "My name is John Smith, call 415-555-2671 or john.doe@example.com."
    assert redact(text, pii=False, pci=True) == (text, [])


@pytest.mark.parametrize(
    ("text", "pii", "pci", "allowed"),
    [
        (
            "card 4111 1111 1111 1111",
            True,
            False,
            {"card 4111 1111 1111 1111", "card [PHONENUMBER_1]"},
        ),
        (
            f"it is {SIXTEEN_SPOKEN}",
            True,
            False,
            {f"it is {SIXTEEN_SPOKEN}", "it is [PHONENUMBER_1]"},
        ),
        (
            "order 1234 5678 1234 5678 please",
            True,
            True,
            {"order 1234 5678 1234 5678 please", "order [PHONENUMBER_1] please"},
        ),
    ],
)
def test_long_spaced_digit_run_is_not_cut_into_a_phone_number(
    text: str, pii: bool, pci: bool, allowed: set[str]
) -> None:
    rendered, _ = redact(text, pii=pii, pci=pci)
    assert rendered in allowed


# -- numbering -------------------------------------------------------------------------------


def test_same_value_same_label_new_value_next_number() -> None:
    redactor = SessionRedactor(pii=True, pci=False)
    first, used1 = redactor.redact(toks("call 415-555-2671 now"))
    again, used2 = redactor.redact(toks("yes 415-555-2671 again"))
    other, used3 = redactor.redact(toks("or 212-555-0199 instead"))
    assert render(first) == "call [PHONENUMBER_1] now"
    assert render(again) == "yes [PHONENUMBER_1] again"
    assert render(other) == "or [PHONENUMBER_2] instead"
    assert (used1, used2, used3) == (["[PHONENUMBER_1]"], ["[PHONENUMBER_1]"], ["[PHONENUMBER_2]"])


def test_numbering_is_per_kind() -> None:
    redactor = SessionRedactor(pii=True, pci=True)
    out, used = redactor.redact(toks("My name is John Smith, card 4111111111111111, call 5551234."))
    assert render(out) == (
        "My name is [FIRSTNAME_1] [LASTNAME_1], card [ACCOUNTNUMBER_1], call [PHONENUMBER_1]."
    )
    assert used == ["[FIRSTNAME_1]", "[LASTNAME_1]", "[ACCOUNTNUMBER_1]", "[PHONENUMBER_1]"]


def test_used_lists_labels_in_order_without_duplicates() -> None:
    redactor = SessionRedactor(pii=True, pci=False)
    out, used = redactor.redact(
        toks("Call 415-555-2671, my name is John Smith, call 415-555-2671 again and John too.")
    )
    assert render(out) == (
        "Call [PHONENUMBER_1], my name is [FIRSTNAME_1] [LASTNAME_1], "
        "call [PHONENUMBER_1] again and [FIRSTNAME_1] too."
    )
    assert used == ["[PHONENUMBER_1]", "[FIRSTNAME_1]", "[LASTNAME_1]"]


def test_partials_do_not_consume_numbers() -> None:
    redactor = SessionRedactor(pii=True, pci=False)
    partial, used = redactor.redact(toks("try 5551234"), commit=False)
    assert render(partial) == "try [PHONENUMBER_1]"  # tentatively numbered
    assert used == ["[PHONENUMBER_1]"]
    final, _ = redactor.redact(toks("try 5559876"), commit=True)
    assert render(final) == "try [PHONENUMBER_1]"  # the partial's value was not remembered
    final, _ = redactor.redact(toks("try 5551234"), commit=True)
    assert render(final) == "try [PHONENUMBER_2]"


def test_partials_number_several_new_values_tentatively_in_order() -> None:
    redactor = SessionRedactor(pii=True, pci=False)
    redactor.redact(toks("call 5551234"))
    partial, used = redactor.redact(toks("call 5559876 or 5550000 or 5551234"), commit=False)
    assert used == ["[PHONENUMBER_2]", "[PHONENUMBER_3]", "[PHONENUMBER_1]"]
    assert render(partial) == "call [PHONENUMBER_2] or [PHONENUMBER_3] or [PHONENUMBER_1]"
    final, _ = redactor.redact(toks("call 5550000"))
    assert render(final) == "call [PHONENUMBER_2]"


def test_sessions_number_independently() -> None:
    a = SessionRedactor(pii=True, pci=False)
    b = SessionRedactor(pii=True, pci=False)
    a.redact(toks("call 5551234"))
    out, _ = b.redact(toks("call 5559876"))
    assert render(out) == "call [PHONENUMBER_1]"


def test_untouched_tokens_are_the_same_objects() -> None:
    tokens = toks("Please call 415-555-2671 today.")
    out, _ = SessionRedactor(pii=True, pci=True).redact(tokens)
    assert out[0] is tokens[0] and out[1] is tokens[1] and out[3] is tokens[3]
    assert out[2] == Token("[PHONENUMBER_1]", 2.0, 2.5, 0.88)
