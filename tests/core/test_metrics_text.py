"""Word error rate: normalisation and word-level Levenshtein distance."""

from __future__ import annotations

import pytest

from livi_tasks.core.metrics_text import corpus_word_error_rate, normalise_text, word_edit_distance, word_error_rate


def test_normalise_text_lowercases_and_strips_punctuation() -> None:
    assert normalise_text("Don't STOP -- me, now!\n(Again)") == "dont stop me now again"
    assert normalise_text("♪ ... ♪") == ""


@pytest.mark.parametrize(
    ("reference", "hypothesis", "edits"),
    [
        ("a b c", "a b c", 0),
        ("a b c", "a x c", 1),  # substitution
        ("a b c", "a c", 1),  # deletion
        ("a b c", "a b b c", 1),  # insertion
        ("a b c d", "b c d e", 2),  # shifted: one deletion and one insertion
        ("", "a b", 2),
        ("a b", "", 2),
    ],
)
def test_word_edit_distance(reference: str, hypothesis: str, edits: int) -> None:
    assert word_edit_distance(reference.split(), hypothesis.split()) == edits


def test_word_error_rate_ignores_case_and_punctuation() -> None:
    assert word_error_rate("Oh my scarlet sister, come open with me", "oh my scarlet sister come open with me.") == 0.0
    assert word_error_rate("the quiet river sings", "the river sings loudly") == pytest.approx(2 / 4)
    assert word_error_rate("", "") == 0.0


def test_corpus_wer_weights_by_reference_length() -> None:
    pairs = [("a b c d e f g h i j", "a b c d e f g h i j"), ("x y", "")]
    assert corpus_word_error_rate(pairs) == pytest.approx(2 / 12)
