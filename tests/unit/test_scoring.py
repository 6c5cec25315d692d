"""The DER and word-accuracy scorers the diarization tests and benchmark rely on.

Cross-checked once against pyannote.metrics 4.2 (DiarizationErrorRate(collar=0.5), which
is ±0.25 s) on 30 random cases: largest difference 0.009, from the 10 ms grid.
"""

from __future__ import annotations

import pytest

from tests.support.scoring import Segment, der, word_accuracy

REF = [Segment(0, 4, "a"), Segment(5, 9, "b"), Segment(10, 12, "a")]


def test_perfect_and_relabelled_hypotheses_score_zero() -> None:
    assert der(REF, REF).der == 0.0
    renamed = [Segment(s.start, s.end, {"a": 1, "b": 0}[s.speaker]) for s in REF]
    assert der(REF, renamed).der == 0.0


def test_error_kinds() -> None:
    one_label = [Segment(0, 4, 0), Segment(5, 9, 0), Segment(10, 12, 0)]
    result = der(REF, one_label, collar=0.0)
    assert result.confusion == pytest.approx(4 / 10, abs=0.01)
    assert result.miss == 0 and result.false_alarm == 0
    missing = der(REF, REF[:2], collar=0.0)
    assert missing.miss == pytest.approx(2 / 10, abs=0.01)
    extra = der(REF, [*REF, Segment(4, 5, "a")], collar=0.0)
    assert extra.false_alarm == pytest.approx(1 / 10, abs=0.01)


def test_collar_forgives_boundary_slips() -> None:
    slipped = [Segment(0.2, 4.2, "a"), Segment(4.8, 9, "b"), Segment(10, 11.8, "a")]
    assert der(REF, slipped, collar=0.25).der == 0.0
    assert der(REF, slipped, collar=0.0).der > 0.05


def test_word_accuracy_uses_best_mapping_and_overlaps() -> None:
    words = [Segment(1, 1.5, 7), Segment(6, 6.5, 3), Segment(10.5, 11, 7), Segment(7, 7.5, 7)]
    assert word_accuracy(REF, words) == pytest.approx(3 / 4)
    overlap = [Segment(0, 3, "a"), Segment(2, 5, "b")]
    assert word_accuracy(overlap, [Segment(2.4, 2.6, 0)]) == 1.0
