"""How likely each item is to have produced a question's grams: a multinomial naive Bayes view.

Why a second view beside the index's overlap: the overlap asks how much of the question an item's
vocabulary *explains*, weighting each gram by how rare it is among items; it does not ask how
*typical* the gram is of the item. 补 is in half the items, yet an item whose residents' questions say
补 in almost every line is more likely the one meant than an item that mentions it once in a step.
Naive Bayes counts exactly that, from the same texts (names and aliases counted more, questions,
steps and conditions less, and the item's cue words from ``intents/cues*.toml``), so it is rebuilt
with every knowledge snapshot and learns nothing from any question set.

Measured on the single-item questions of the eight question sets nobody had read then (2,511): ranking
by the index's score alone put the right item first for 96.6 %, by score plus one point per nat for
97.7 %. Alone the view is about as good as the score and wrong on different questions, which is why
the two are combined and neither replaces the other. The decision uses it more carefully than that
(see ``ItemIndex._reranked``): the rules read the gaps between scores, and those stay the index's.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Iterable, Mapping, Sequence

from bot.understanding.grams import grams_of

#: How much one occurrence of a gram in each kind of text counts: a name or alias says the most.
FIELD_COUNTS: Mapping[str, float] = {"alias": 2.0, "question": 1.0, "cue": 1.0, "body": 0.3}
#: Additive (Lidstone) smoothing: a gram the item never uses is unlikely, not impossible.
SMOOTHING = 0.1


class Likelihood:
    """Per item, the log-probability of each gram it uses, above the log-probability of one it never
    uses (``_extra``), and that floor itself (``_unseen``): a question's log-likelihood under an
    item is then ``n * unseen + sum(extra of the grams the item knows)``: one table look-up per gram
    and item, no logarithm at question time."""

    def __init__(self, texts: Sequence[Mapping[str, Iterable[tuple[str, ...]]]]) -> None:
        """``texts``: per item (in index order), field name (see ``FIELD_COUNTS``) → the cores of
        its texts in that field."""
        counts: list[Counter[str]] = []
        for fields in texts:
            own: Counter[str] = Counter()
            for field, cores in fields.items():
                weight = FIELD_COUNTS[field]
                for segments in cores:
                    for gram in grams_of(segments):
                        own[gram] += weight
            counts.append(own)
        self.vocabulary = frozenset().union(*counts) if counts else frozenset()
        size = len(self.vocabulary)
        self._unseen: list[float] = []
        self._extra: list[dict[str, float]] = []
        for own in counts:
            denominator = sum(own.values()) + SMOOTHING * size
            unseen = math.log(SMOOTHING / denominator) if denominator else 0.0
            self._unseen.append(unseen)
            self._extra.append({g: math.log((c + SMOOTHING) / denominator) - unseen for g, c in own.items()})

    def relative(self, grams: set[str], indexes: Sequence[int]) -> dict[int, float]:
        """Log-likelihood of the question's grams under each item of ``indexes``, minus the best of
        them (so the likeliest item gets 0, the others how many nats less likely they are)."""
        known = grams & self.vocabulary
        if not known or not indexes:
            return {}
        count, grams_known = len(known), tuple(known)
        zeros = (0.0,) * count
        scores = {}
        for index in indexes:  # a C-level look-up per gram: cheaper than intersecting with the item's table
            scores[index] = count * self._unseen[index] + sum(map(self._extra[index].get, grams_known, zeros))
        best = max(scores.values())
        return {index: score - best for index, score in scores.items()}
