"""The model's own written forms, brought to one written form per entity and language.

Whisper writes many numbers itself, half-way and in its own styles: `5-5-5-1-2-3-4567`,
`23 dollars and 50 cents`, `4.30`, `half past 4`, `15 Prozent`. The grammar (NeMo, or
text2num for it/nl) turns spoken words into digits first; these rules then rewrite what is
left in digits plus words into the form the grammar itself writes for the spoken phrase,
so the result is the same whether the model wrote words, digits or a mix.

Rules match over the tokens' texts joined by spaces; a match covers whole tokens (closing
punctuation after it is kept) and its tokens are replaced by the written form, which spans
their times.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pulse_stt.text.numbers import DIGIT_RUN_BODY, digit_groups, format_digit_run, is_digit_run
from pulse_stt.text.tokens import Token, span_tokens

Rewrite = Callable[[re.Match[str]], str | None]
_TRAIL = "\"'”’.,;:!?)]}…"
_END = r"(?=[\"'”’.,;:!?)\]}…]*(?:\s|$))"  # a match ends where a token ends

# -- languages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Money:
    words: dict[str, str]  # currency word (regex) → symbol
    cents: str  # regex of the minor unit's words
    connector: str  # regex of "and" between the units
    decimal: str  # decimal mark in the written form
    style: str  # "{s}{a}", "{a} {s}" or "{s} {a}"


_MONEY = {
    "en": Money(
        {r"dollars?|bucks": "$", r"euros?": "€", r"pounds?": "£"},
        r"cents?|pence",
        "and",
        ".",
        "{s}{a}",
    ),
    "de": Money({r"euro": "€", r"dollar": "$", r"pfund": "£"}, r"cent", "und", ",", "{s}{a}"),
    "es": Money(
        {r"euros?": "€", r"d[óo]lar(?:es)?": "$"}, r"c[ée]ntimos?|centavos?", "y|con", ",", "{s}{a}"
    ),
    "fr": Money({r"euros?": "€", r"dollars?": "$"}, r"centimes?", "et", ",", "{a} {s}"),
    "pt": Money(
        {r"euros?": "€", r"d[óo]lar(?:es)?": "$"},
        r"c[êe]ntimos?|centavos?",
        "e|com",
        ",",
        "{s} {a}",
    ),
    "it": Money({r"euro": "€", r"dollar[io]": "$"}, r"centesim[io]", "e|con", ",", "{a} {s}"),
    "nl": Money({r"euro": "€", r"dollar": "$"}, r"cent", "en", ",", "{s} {a}"),
}
_PERCENT = {
    "en": (r"%|percent|per cent", "{n}%"),
    "de": (r"%|prozent", "{n} %"),
    "es": (r"%|por ciento", "{n} %"),
    "fr": (r"%|pour cent", "{n} %"),
    "pt": (r"%|por cento", "{n} %"),
    "it": (r"%|per cento|percento", "{n}%"),
    "nl": (r"%|procent", "{n}%"),
}
_CUES = {
    "en": "call|number|phone|card|code|account|reach|dial|zip|pin",
    "de": "nummer|telefon|rufnummer|karte|kartennummer|konto|postleitzahl|code",
    "es": "número|teléfono|tarjeta|cuenta|código|llama",
    "fr": "numéro|téléphone|carte|compte|code|appelez",
    "pt": "número|telefone|cartão|conta|código|ligue",
    "it": "numero|telefono|carta|conto|codice|chiama|cap",
    "nl": "nummer|telefoon|kaart|rekening|code|postcode|bel",
}
_MONTHS_EN = "january|february|march|april|may|june|july|august|september|october|november|december"
_NUM = r"\d{1,3}(?:[.,]\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?"

# -- the rewriting machinery -------------------------------------------------------------------


def rewrite(tokens: list[Token], pattern: re.Pattern[str], written: Rewrite) -> list[Token]:
    """Replace each match of `pattern` over whole tokens by `written(match)` (None: keep)."""
    if not tokens:
        return tokens
    starts: list[int] = []
    at = 0
    for token in tokens:
        starts.append(at)
        at += len(token.text) + 1
    joined = " ".join(t.text for t in tokens)
    out: list[Token] = []
    done = 0  # tokens before this index are emitted or replaced
    for match in pattern.finditer(joined):
        if match.start() not in starts:
            continue
        first = starts.index(match.start())
        last = max(i for i, s in enumerate(starts) if s < match.end())
        if first < done:
            continue
        rest = tokens[last].text[match.end() - starts[last] :]
        if rest.strip(_TRAIL):
            continue  # the match ends inside a word
        text = written(match)
        if text is None:
            continue
        source = tokens[first : last + 1]
        if text == match.group(0):
            continue  # already in written form: the tokens stay as they are
        if source[0].text[:1].isupper() and text[:1].islower():
            text = text[:1].upper() + text[1:]
        texts = text.split(" ")
        texts[-1] += rest
        out += tokens[done:first]
        out += span_tokens(source, texts)
        done = last + 1
    return out + tokens[done:] if done else tokens


def _compile(regex: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\S)" + regex + _END, re.IGNORECASE)


def _amount(whole: str, cents: str | None, decimal: str) -> str:
    if cents is None or int(cents) == 0:
        return whole
    return f"{whole}{decimal}{int(cents):02d}"


# -- rules -----------------------------------------------------------------------------------


def _digit_runs(tokens: list[Token], language: str) -> list[Token]:
    cue = re.compile(rf"\b(?:{_CUES.get(language, _CUES['en'])})\b", re.IGNORECASE)
    words = [t.text for t in tokens]
    starts = [sum(len(w) + 1 for w in words[:i]) for i in range(len(words))]

    def written(match: re.Match[str]) -> str | None:
        index = starts.index(match.start())
        cued = bool(cue.search(" ".join(words[max(0, index - 5) : index])))
        if not is_digit_run(match.group(0).rstrip(".,"), cue=cued):
            return None
        return format_digit_run("".join(digit_groups(match.group(0))), language)

    return rewrite(tokens, re.compile(r"(?<!\S)" + DIGIT_RUN_BODY + _END), written)


def _money(tokens: list[Token], language: str) -> list[Token]:
    money = _MONEY[language]
    for word, symbol in money.words.items():
        lead = re.escape(symbol)
        hundreds = r"(?:\s(?:and|und|e|y|et|en)\s\d{1,2})?" if language == "en" else ""
        pattern = _compile(
            rf"(?:{lead})?(?P<a>(?:{_NUM}){hundreds})\s(?:{word})"
            rf"(?:,?\s(?:(?:{money.connector})\s)?(?P<c>\d{{1,2}})(?:\s(?:{money.cents}))?)?"
            rf"|{lead}(?P<a2>\d+)\s(?:{money.connector})\s(?P<c2>\d{{1,2}})\s(?:{money.cents})"
        )

        def written(m: re.Match[str], symbol: str = symbol) -> str:
            whole = m.group("a") or m.group("a2")
            if " " in whole:  # "100 and 20 dollars": the model's "one hundred and twenty"
                parts = whole.split(" ")
                whole = str(int(parts[0]) + int(parts[-1]))
            a = _amount(whole, m.group("c") or m.group("c2"), money.decimal)
            return money.style.format(s=symbol, a=a)

        tokens = rewrite(tokens, pattern, written)
    return tokens


def _percent(tokens: list[Token], language: str) -> list[Token]:
    words, style = _PERCENT[language]
    pattern = _compile(rf"(?P<n>(?:{_NUM}))\s?(?:{words})")

    def written(m: re.Match[str]) -> str:
        return style.format(n=m.group("n"))

    return rewrite(tokens, pattern, written)


def _hour(text: str, shift: int = 0) -> int:
    return (int(text) + shift - 1) % 12 + 1 if int(text) <= 12 else int(text) + shift


def _times(tokens: list[Token], language: str) -> list[Token]:
    rules: list[tuple[str, Rewrite]] = [
        (r"0(?P<h>\d):(?P<m>\d\d)", lambda m: f"{m['h']}:{m['m']}"),
    ]
    if language == "en":
        rules += [
            (r"half\spast\s(?P<h>\d{1,2})", lambda m: f"{int(m['h'])}:30"),
            (r"(?:a\s)?quarter\spast\s(?P<h>\d{1,2})", lambda m: f"{int(m['h'])}:15"),
            (r"(?:a\s)?quarter\sto\s(?P<h>\d{1,2})", lambda m: f"{_hour(m['h'], -1)}:45"),
            (
                r"(?P<at>at|by|until|from|to|before|after|around)\s(?P<h>\d{1,2})\.(?P<m>[0-5]\d)",
                lambda m: f"{m['at']} {int(m['h'])}:{m['m']}",
            ),
        ]
    elif language == "de":
        rules += [
            (r"(?P<h>\d{1,2})[.:](?P<m>[0-5]\d)\sUhr", lambda m: f"{int(m['h'])}:{m['m']} Uhr"),
            (r"(?P<h>\d{1,2})\sUhr\s(?P<m>[0-5]\d)", lambda m: f"{int(m['h'])}:{m['m']} Uhr"),
            (r"halb\s(?P<h>\d{1,2})", lambda m: f"{_hour(m['h'], -1)}:30 Uhr"),
        ]
    elif language == "it":
        rules += [
            (r"(?P<h>\d{1,2})\se\s(?:mezza|mezzo)", lambda m: f"{int(m['h'])}:30"),
            (r"(?P<h>\d{1,2})\se\sun\squarto", lambda m: f"{int(m['h'])}:15"),
            (r"(?P<h>\d{1,2})\smeno\sun\squarto", lambda m: f"{_hour(m['h'], -1)}:45"),
            (
                r"(?P<at>alle|le|ore|dalle)\s(?P<h>\d{1,2})(?:[.:]|\se\s)(?P<m>[0-5]\d)",
                lambda m: f"{m['at']} {int(m['h'])}:{m['m']}",
            ),
        ]
    elif language == "nl":
        rules += [
            (r"half\s(?P<h>\d{1,2})", lambda m: f"{_hour(m['h'], -1)}:30"),
            (r"kwart\sover\s(?P<h>\d{1,2})", lambda m: f"{int(m['h'])}:15"),
            (r"kwart\svoor\s(?P<h>\d{1,2})", lambda m: f"{_hour(m['h'], -1)}:45"),
            (r"(?P<h>\d{1,2})[.:](?P<m>[0-5]\d)\suur", lambda m: f"{int(m['h'])}:{m['m']}"),
            (r"(?P<h>\d{1,2})\suur\s(?P<m>[0-5]\d)", lambda m: f"{int(m['h'])}:{m['m']}"),
        ]
    elif language in ("es", "pt"):
        half = "y media" if language == "es" else "e meia"
        rules.append((rf"(?P<h>\d{{1,2}})\s{half}", lambda m: f"{int(m['h'])}:30"))
    elif language == "fr":
        rules.append((r"(?P<h>\d{1,2})\s?h\s?(?P<m>[0-5]\d)", lambda m: f"{m['h']} h {m['m']}"))
    for regex, written in rules:
        tokens = rewrite(tokens, _compile(regex), written)
    return tokens


def _dates(tokens: list[Token], language: str) -> list[Token]:
    if language != "en":
        return tokens
    day = r"(?P<d>[0-3]?\d)(?:st|nd|rd|th)?"
    rules: list[tuple[str, Rewrite]] = [
        (
            rf"(?:the\s)?{day}\s(?:of\s)?(?P<mo>{_MONTHS_EN})",
            lambda m: f"{m['mo'].title()} {int(m['d'])}",
        ),
        (rf"(?P<mo>{_MONTHS_EN})\s(?:the\s)?{day}", lambda m: f"{m['mo'].title()} {int(m['d'])}"),
    ]
    for regex, written in rules:
        tokens = rewrite(tokens, _compile(regex), written)
    return tokens


def canonicalise(tokens: Sequence[Token], language: str, *, full: bool = True) -> list[Token]:
    """Rewrite the model's written forms; `full=False` (numerals=true): digit runs only."""
    out = _digit_runs(list(tokens), language)
    if not full or language not in _MONEY:
        return out
    for rule in (_money, _percent, _times, _dates):
        out = rule(out, language)
    return out
