"""Transcript tokens: the words of one turn with their times, as every text stage sees them.

Stages (ITN, keyword correction, redaction, formatting) rewrite spans of tokens; a
rewritten span keeps the time span of the words it replaced, so `words[]` stays aligned
with the transcript.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from pulse_stt.engine.types import Hypothesis


@dataclass(frozen=True)
class Token:
    text: str
    start: float  # seconds since the connection's (or file's) first audio byte
    end: float
    confidence: float
    glued: bool = False  # written without a space before it (ITN or redaction output)


def tokens_from_hypothesis(hyp: Hypothesis, offset: float) -> list[Token]:
    """Words of a hypothesis, session-relative, knowing where the text had no space."""
    if not hyp.words:
        return [Token(w, offset, offset, 1.0) for w in hyp.text.split()]
    tokens: list[Token] = []
    cursor = 0
    for word in hyp.words:
        text = word.text.strip()
        if not text:
            continue
        found = hyp.text.find(text, cursor)
        glued = bool(tokens) and found == cursor and found > 0 and not hyp.text[found - 1].isspace()
        if found >= 0:
            cursor = found + len(text)
        if glued:  # Whisper splits "3.5%" into "3", ".5", "%": one written word, one token
            last = tokens[-1]
            tokens[-1] = Token(
                last.text + text,
                last.start,
                round(offset + word.end, 3),
                min(last.confidence, word.probability),
                last.glued,
            )
            continue
        tokens.append(
            Token(
                text,
                round(offset + word.start, 3),
                round(offset + word.end, 3),
                word.probability,
                glued,
            )
        )
    return tokens


def render(tokens: Sequence[Token]) -> str:
    parts: list[str] = []
    for token in tokens:
        if parts and not token.glued:
            parts.append(" ")
        parts.append(token.text)
    return "".join(parts)


def span_tokens(source: Sequence[Token], texts: Sequence[str]) -> list[Token]:
    """New tokens `texts` standing for the whole `source` span (times shared out evenly)."""
    if not texts:
        return []
    start, end = source[0].start, source[-1].end
    step = (end - start) / len(texts)
    confidence = min(t.confidence for t in source)
    return [
        Token(
            text,
            round(start + i * step, 3),
            round(start + (i + 1) * step, 3),
            confidence,
            glued=source[0].glued if i == 0 else False,
        )
        for i, text in enumerate(texts)
    ]


def with_text(token: Token, text: str) -> Token:
    return replace(token, text=text)
