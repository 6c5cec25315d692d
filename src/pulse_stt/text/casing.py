"""Sentence case for transcripts Whisper wrote in capitals.

Whisper writes short or shouted fragments in capitals ("ASK NOT!"). With `capitalize=true`
a transcript is rewritten in sentence case when it is *shouted*: every word that has
letters (redaction tokens and keyword spellings aside) is in capitals, and at least one
such word has two letters or more. Sentence case lowercases the words and capitalises the
first letter of the transcript and of every sentence after it (and English "I", "I'm"...).

Kept as written, in a shouted transcript:
- acronyms: a short list of well-known ones (`NASA`, `FBI`, `USA`, `BBC`...) and any word
  of two or more letters without a vowel (`NBC`, `HTML`, `XYZ`; y counts as a vowel);
- a final that is one word of two to four letters (`FDI.`, `ABC`): more likely an acronym
  than a shouted word, so it is kept, unless it is a common short word (`NO.`, `YES!`,
  `STOP`, `HELP` become `No.`, `Yes!`, `Stop`, `Help`); a longer single word (`HELLO.`)
  gets sentence case;
- keyword spellings: a word (or phrase) the session boosted with `keywords=` keeps the
  keyword's own spelling;
- redaction tokens (`[FIRSTNAME_1]`).

A transcript in mixed case is left exactly as the model wrote it, acronyms included.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from pulse_stt.text.format import REDACTION_TOKEN
from pulse_stt.text.sentences import ends_sentence
from pulse_stt.text.tokens import Token, with_text

ACRONYMS = frozenset(
    """AI API ATM BBC BMW CBS CEO CFO CIA CNN CPU CTO DIY DNA DVD FAQ FBI FDA GDP GPS GPU
    HIV HTML ID IBM IMF IQ IRS ISO KGB MBA MRI NASA NATO NBA NFL NHS NSA NYC OK PDF SMS
    SQL SUV TV UFO UK UNESCO UNICEF URL USA USB USSR VIP VPN WTO XML""".split()
    # Not here, though acronyms too: words they spell in some language (WHO, US, IT, UN,
    # EU, MIT, PIN, LED, AIDS).
)
# No vowel, yet ordinary words or titles: sentence-cased like any other word.
_NOT_ACRONYMS = frozenset("MR MRS MS DR ST JR SR HMM MM MHM SHH PSST BRR GRR TSK PFFT".split())
# Common short words (en, and a few of es/fr/de/it/pt): a one-word final that is one of
# them was shouted, not an acronym.
_SHORT_WORDS = frozenset(
    """A AH AHA ALL AM AN AND ANY ARE AS AT AW AWW BE BYE BUT BY CAN COME DO DONE DUDE EH
    FINE FOR GO GOOD GOSH HA HAH HAHA HE HELL HELP HEY HI HIM HIS HM HOLA HOW I IF IN IS IT
    JA JUST KEEP LOOK ME MINE MY NAH NEIN NICE NO NON NOPE NOT NOW OF OFF OH OHH OK OKAY
    OMG ON ONE OOPS OR OUCH OUI OUR OUT OW OWW RUN SAFE SEE SHE SI SO SORRY STOP SURE
    TAKE THAT THE THEM THEN THIS TO TOO TWO UGH UH UM UP US WAIT WE WELL WHAT WHEN WHO
    WHY WOW YAY YEAH YEP YES YET YO YOU YUP""".split()
) | {"SÍ", "JÁ", "NÃO", "AÏE", "ÇA"}
_VOWELS = frozenset("AEIOUYÀÁÂÃÄÅÆÈÉÊËÌÍÎÏÒÓÔÕÖØÙÚÛÜÝŸ")
_EDGE = re.compile(r"^\W+|\W+$")
_POSSESSIVE = re.compile(r"['’]S$")
_ENGLISH_I = frozenset({"i", "i'm", "i'll", "i've", "i'd", "i’m", "i’ll", "i’ve", "i’d"})


def _core(text: str) -> str:
    """The word without the punctuation around it."""
    return _EDGE.sub("", text)


def _is_acronym(core: str) -> bool:
    bare = _POSSESSIVE.sub("", core)
    if bare in ACRONYMS:
        return True
    letters = [c for c in bare if c.isalpha()]
    return (
        len(letters) >= 2
        and bare.upper() == bare
        and bare not in _NOT_ACRONYMS
        and not any(c in _VOWELS for c in letters)
    )


def _kept_alone(core: str) -> bool:
    """A final of this one word keeps its capitals."""
    bare = _POSSESSIVE.sub("", core)
    letters = sum(c.isalpha() for c in bare)
    return _is_acronym(core) or (2 <= letters <= 4 and bare not in _SHORT_WORDS)


def keyword_spellings(phrases: Iterable[str]) -> frozenset[str]:
    """What keeps its spelling: each keyword phrase, and each of its words."""
    kept: set[str] = set()
    for phrase in phrases:
        kept.add(phrase)
        kept.update(_core(w) for w in phrase.split())
    return frozenset(k for k in kept if k)


def _protected(token: Token, keep: frozenset[str]) -> bool:
    return bool(REDACTION_TOKEN.search(token.text)) or _core(token.text) in keep


def is_shouted(tokens: Sequence[Token], keep: frozenset[str] = frozenset()) -> bool:
    """Every word with letters is in capitals (keywords and redaction tokens aside), and
    one of them has two letters or more."""
    words = [_core(t.text) for t in tokens if not _protected(t, keep)]
    cased = [w for w in words if any(c.isalpha() for c in w)]
    if not any(sum(c.isalpha() for c in w) >= 2 for w in cased):
        return False
    return all(w == w.upper() for w in cased)


def _capitalize_first(text: str) -> str:
    for i, char in enumerate(text):
        if char.isalpha():
            return text[:i] + char.upper() + text[i + 1 :]
    return text


def sentence_case(
    tokens: Sequence[Token], *, keep: frozenset[str] = frozenset(), language: str | None = None
) -> list[Token]:
    """`tokens` in sentence case when they are shouted (see the module's rule); otherwise
    unchanged."""
    if not is_shouted(tokens, keep):
        return list(tokens)
    english = language in (None, "en")
    lettered = [t for t in tokens if any(c.isalpha() for c in t.text)]
    if len(lettered) == 1 and _kept_alone(_core(lettered[0].text)):
        return list(tokens)
    out: list[Token] = []
    starts_sentence = True
    for token in tokens:
        core = _core(token.text)
        text = token.text
        if _protected(token, keep):
            pass
        elif _is_acronym(core):
            text = re.sub(r"(['’])S\b", r"\1s", text)  # "NASA'S" → "NASA's"
        else:
            text = text.lower()
            if starts_sentence or (english and core.lower() in _ENGLISH_I):
                text = _capitalize_first(text)
        out.append(with_text(token, text) if text != token.text else token)
        if any(c.isalnum() for c in token.text):
            starts_sentence = ends_sentence(token.text)
    return out
