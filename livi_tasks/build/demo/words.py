"""Lyrics: each work gets 6-10 lines from a small grammar over its own slice of the word lists, so
works differ in what is sung."""

from __future__ import annotations

import numpy as np

NOUNS = """river mountain window candle garden ocean shadow thunder winter summer harbor station
letter mirror bottle engine ribbon pocket jacket ladder meadow valley forest island desert castle
bridge tower street highway morning evening midnight sunrise moonlight rainbow feather diamond
blanket kitchen doorway chimney lantern compass anchor pillow basket bucket hammer needle
button saddle wagon tunnel canyon glacier orchard vineyard prairie pasture cottage palace
temple village market circus theater museum library hospital factory railroad airplane rocket
planet comet galaxy volcano tornado blizzard lightning snowflake raindrop puddle pebble boulder
seashell sailor soldier farmer baker doctor teacher stranger brother sister daughter mother father
tiger rabbit horse eagle falcon dolphin turtle spider beetle butterfly sparrow pigeon donkey camel
elephant lion monkey penguin guitar trumpet violin piano drummer melody picture painting statue
carpet curtain cupboard elevator umbrella necklace bracelet helmet sweater pencil notebook
envelope ticket passport suitcase paddle lemon cherry apple orange banana potato tomato carrot
onion pepper honey butter coffee biscuit sandwich""".split()

VERBS = """carry follow whisper wander gather borrow remember forget promise travel dance shine
burn break chase build paint climb cross open fill find keep lose call wait watch write read
drive ride fly swim walk rise turn hide seek steal bring send throw catch pull push touch kiss
hear taste carve plant grow sail drift dream pray fight feed greet guard heal hunt knock lift
mend miss pour race ring roll save sell shake sweep swing teach tie trust wake wash wish wrap
yell cook count dig drag fold hang jump kick laugh lead melt polish""".split()

ADJECTIVES = """golden silver lonely gentle broken quiet wild bright hollow heavy empty frozen
burning secret shallow ancient crooked distant endless faded fragile hungry humble narrow
purple restless rusty sacred scarlet silent simple sleepy smoky sudden tender tired velvet
wooden yellow bitter brave clever cloudy crimson dusty eager fierce foggy friendly happy
honest icy lazy lucky muddy noisy pale proud rainy rough salty sandy shiny sharp shy steady
stormy sunny thin windy wise cozy giant magic modern royal amber bold calm chilly dizzy fancy
gloomy graceful grumpy jolly lively mellow misty nervous peaceful precious ragged shaggy sleek
slender spicy stubborn swift tiny weary wicked""".split()

# N, V and A are filled from a work's own nouns, verbs and adjectives; the rest is shared glue.
LINE_TEMPLATES = (
    "I will V the A N tonight",
    "you V my N like a A N",
    "the N and the N are A",
    "oh my A N come V with me",
    "we V across the A N",
    "every N I V is A",
    "take me back to the A N",
    "no N can V this A N",
    "V the N and V the N",
    "down by the N we V again",
    "they V the N in the A N",
    "A N falling on the N",
    "hold the N and V the A N",
    "I V your N under a A N",
    "when the N is A we V",
)
NOUNS_PER_WORK, VERBS_PER_WORK, ADJECTIVES_PER_WORK = 8, 6, 6


def write_lyrics(rng: np.random.Generator, work_ids: list[str]) -> dict[str, list[str]]:
    """Give each work its own vocabulary (disjoint while the word lists last) and 6-10 lines."""
    decks = {"N": _Deck(rng, NOUNS), "V": _Deck(rng, VERBS), "A": _Deck(rng, ADJECTIVES)}
    sizes = {"N": NOUNS_PER_WORK, "V": VERBS_PER_WORK, "A": ADJECTIVES_PER_WORK}
    lyrics = {}
    for work_id in work_ids:
        vocabulary = {slot: decks[slot].deal(size) for slot, size in sizes.items()}
        cursors = dict.fromkeys(vocabulary, 0)
        line_count = int(rng.integers(6, 11))
        templates = rng.permutation(len(LINE_TEMPLATES))[:line_count]
        lines = []
        for template_index in templates:
            words: list[str] = []
            for token in LINE_TEMPLATES[template_index].split():
                if token in vocabulary:
                    # Walk through the work's words so each is used before any repeats.
                    word = vocabulary[token][cursors[token] % len(vocabulary[token])]
                    cursors[token] += 1
                    if words and words[-1] == "a" and word[0] in "aeiou":
                        words[-1] = "an"
                    words.append(word)
                else:
                    words.append(token)
            lines.append(" ".join(words))
        lyrics[work_id] = lines
    return lyrics


class _Deck:
    """Deals words without replacement; reshuffles only once the list is used up."""

    def __init__(self, rng: np.random.Generator, words: list[str]):
        self.rng = rng
        self.words = words
        self.order: list[str] = []

    def deal(self, count: int) -> list[str]:
        dealt: list[str] = []
        while len(dealt) < count:
            if not self.order:
                self.order = [self.words[i] for i in self.rng.permutation(len(self.words))]
            word = self.order.pop()
            if word not in dealt:
                dealt.append(word)
        return dealt
