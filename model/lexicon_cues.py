"""Sentiment knowledge as token cues: lexicon polarity, negation, degree, emoji polarity.

The lexicon (model/knowledge/lexicon.json, built by training.knowledge from HowNet, NTUSD, DUTIR
and the Emoji Sentiment Ranking) gives each token at most one cue. The classifier learns one
vector per cue and adds it to the token's vector, so a sentiment word it never saw in training
still leans the right way. The cues of a model's vocabulary are saved with its weights
(`encoder.token_cues`), so serving needs no lexicon file.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

LEXICON = Path(__file__).resolve().parent / "knowledge" / "lexicon.json"

# Cue ids; 0 is "no cue" (and padding). Earlier lists win when a token is in several.
CUES = ("none", "negation", "degree", "emoji_positive", "emoji_negative", "positive", "negative")


@cache
def _table() -> dict[str, int]:
    data = json.loads(LEXICON.read_text(encoding="utf-8"))
    table: dict[str, int] = {}
    for cue_id, name in reversed(list(enumerate(CUES))[1:]):
        for word in data[name]:
            table[word] = cue_id
    return table


def cue(token: str) -> int:
    return _table().get(token, 0)


def lexicon_words() -> set[str]:
    """Every token the lexicon has a cue for."""
    return set(_table())


def emoji_words() -> set[str]:
    """The emoji and Weibo emoticons with a polarity: always in a knowledge model's vocabulary,
    so one never seen in training still carries its prior."""
    emoji = (CUES.index("emoji_positive"), CUES.index("emoji_negative"))
    return {w for w, c in _table().items() if c in emoji}
