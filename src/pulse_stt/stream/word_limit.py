"""`max_words` as a hard cap: no final and no partial of a stream carries more than N words.

Words are counted as the client sees them: written words of the shaped transcript (after
ITN, keywords, redaction and casing; a redaction token or "$23.50" is one word, as
`transcript.split()` counts them).

A turn's final with more than N words is sent as several finals of N words, in order: the
pieces before the last are `max_words` cuts (`speech_final:false`). What happens to the
last piece depends on the final:
- a final that ends the turn (silence, finalize, close): the last piece (N words or fewer)
  keeps the final's reason, so it alone is `speech_final:true` (`is_last` on close);
- a cut inside a turn (`max_words` reached on a partial, or the turn cut at the model's
  window): fewer than N words left over are not sent but carried into the turn's next
  final, in front of its words; so every `speech_final:false` `max_words` final has
  exactly N words and only a turn's last final may have fewer.

Partials show the carried words, then the partial's own: capped at the first N words,
which is what the next final will start with. A partial reaching N words asks for a cut
of the turn (so real-time turns end early, at the word boundary of its Nth word); a
burst, where no partial gets that chance, is split by the finals' own word timings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pulse_stt.protocol import FinalReason
from pulse_stt.text.tokens import Token

_CUT_AFTER_LAST_S = 0.1  # where to cut after a partial's last word, when it is the Nth


@dataclass(frozen=True)
class Piece:
    """One final to send: its words and its reason."""

    tokens: tuple[Token, ...]
    reason: FinalReason | None


def written_words(tokens: Sequence[Token]) -> list[list[Token]]:
    """Tokens grouped as written words (a glued token belongs to the word before it)."""
    words: list[list[Token]] = []
    for token in tokens:
        if words and token.glued:
            words[-1].append(token)
        else:
            words.append([token])
    return words


def _flat(words: Sequence[Sequence[Token]]) -> tuple[Token, ...]:
    return tuple(t for word in words for t in word)


class WordLimit:
    """One per stream: splits finals, caps partials, and holds the words carried over.
    `limit=None`: nothing is split or capped."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._carry: tuple[Token, ...] = ()

    @property
    def carry(self) -> tuple[Token, ...]:
        """Words of the open turn decoded but not sent yet (they start its next final)."""
        return self._carry

    def final(self, tokens: Sequence[Token], reason: FinalReason | None) -> list[Piece]:
        """The finals to send for a decoded final (none: every word is carried)."""
        if self.limit is None:
            return [Piece(tuple(tokens), reason)]
        words = written_words([*self._carry, *tokens])
        self._carry = ()
        size = self.limit
        chunks = [words[i : i + size] for i in range(0, len(words), size)]
        ends_turn = reason is not None and reason.ends_turn
        if not ends_turn and chunks and len(chunks[-1]) < size:
            self._carry = _flat(chunks.pop())
        if ends_turn and not chunks:
            return [Piece((), reason)]  # the turn's (empty) end is still owed
        pieces = [Piece(_flat(chunk), FinalReason.MAX_WORDS) for chunk in chunks]
        if ends_turn:
            pieces[-1] = Piece(pieces[-1].tokens, reason)
        return pieces

    def partial(self, tokens: Sequence[Token]) -> tuple[tuple[Token, ...], float | None]:
        """The partial to show (the carried words, then its own, at most N words) and,
        once it reaches N words, where to cut the turn: the end of its Nth word (seconds
        since the first audio byte)."""
        shown = (*self._carry, *tokens)
        if self.limit is None:
            return shown, None
        words = written_words(shown)
        if len(words) < self.limit:
            return shown, None
        # The carried words are fewer than N: the Nth word is the partial's own.
        nth = words[self.limit - 1][-1]
        if len(words) > self.limit:
            after = words[self.limit][0]
            cut = (nth.end + after.start) / 2 if after.start >= nth.end else nth.end
        else:
            cut = nth.end + _CUT_AFTER_LAST_S
        return _flat(words[: self.limit]), round(cut, 3)
