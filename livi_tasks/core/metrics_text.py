"""Word error rate for judging transcripts against known lyrics.

Texts are compared after :func:`normalise_text`: lowercase, apostrophes dropped ("don't" ->
"dont", so spelling variants of contractions agree), every other non-alphanumeric character a
word boundary. WER is word-level Levenshtein distance (substitutions + deletions + insertions)
divided by the number of reference words.
"""

from __future__ import annotations

import re
from typing import Iterable

_APOSTROPHES = re.compile(r"['\u2019\u2018`]")
_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalise_text(text: str) -> str:
    """Lowercase, apostrophes removed, punctuation and symbols turned into single spaces."""
    return _NON_WORD.sub(" ", _APOSTROPHES.sub("", text.lower())).strip()


def normalised_words(text: str) -> list[str]:
    return normalise_text(text).split()


def word_edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Minimum number of word substitutions, deletions and insertions turning reference into hypothesis."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp_word in enumerate(hypothesis, start=1):
            current[j] = min(
                previous[j] + 1,  # deletion
                current[j - 1] + 1,  # insertion
                previous[j - 1] + (ref_word != hyp_word),  # substitution or match
            )
        previous = current
    return previous[-1]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER of one hypothesis; an empty reference counts every hypothesis word as an error (WER = their number)."""
    ref_words, hyp_words = normalised_words(reference), normalised_words(hypothesis)
    return word_edit_distance(ref_words, hyp_words) / max(1, len(ref_words))


def corpus_word_error_rate(pairs: Iterable[tuple[str, str]]) -> float:
    """Total edits over total reference words of (reference, hypothesis) pairs: long texts weigh more."""
    edits = words = 0
    for reference, hypothesis in pairs:
        ref_words = normalised_words(reference)
        edits += word_edit_distance(ref_words, normalised_words(hypothesis))
        words += len(ref_words)
    return edits / max(1, words)
