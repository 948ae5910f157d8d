"""IOB2-valid decoding: the best tag sequence under the scheme's rules (Viterbi), instead of each word's argmax.

A per-word classifier can answer I-LOC after O or after B-PER, which IOB2 does not allow; read word by
word, such a tag is repaired into a new entity, and a long name cut up by one wrong tag becomes
several wrong spans. Decoding keeps only sequences where I-X follows B-X or I-X and nothing opens a
sentence with I-: every allowed transition costs nothing, every other one is impossible (StructShot,
Yang & Katiyar, 2020, also learns the allowed transitions' weights; with ten sentences to train on,
the hard rules alone are what can be trusted).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def allowed_transitions(tags: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """[from, to] which tag may follow which, and [tag] which may open a sentence: I-X only after B-X or I-X."""
    inside_type = [tag[2:] if tag.startswith("I-") else None for tag in tags]
    opens = np.array([entity_type is None for entity_type in inside_type])
    follows = np.array([[entity_type is None or previous[2:] == entity_type and previous[:2] in ("B-", "I-")
                         for entity_type in inside_type] for previous in tags])
    return follows, opens


def best_tags(log_probabilities: np.ndarray, tags: Sequence[str]) -> list[str]:
    """The allowed tag sequence with the highest sum of per-word log-probabilities ([words, tags] in)."""
    if len(log_probabilities) == 0:
        return []
    follows, opens = allowed_transitions(tags)
    transition = np.where(follows, 0.0, -np.inf)
    score = np.where(opens, log_probabilities[0], -np.inf)
    back = []
    for word_scores in log_probabilities[1:]:
        candidates = score[:, None] + transition  # [from, to]
        back.append(candidates.argmax(0))
        score = candidates.max(0) + word_scores
    path = [int(score.argmax())]
    for pointers in reversed(back):
        path.append(int(pointers[path[-1]]))
    return [tags[index] for index in reversed(path)]
