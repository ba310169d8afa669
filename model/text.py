"""Text pipeline shared by training and serving: normalise, segment, and nothing else.

Training and the service call the same `Tokenizer.tokenize`, so a post is turned into the same
tokens on both sides; the tokenizer's settings are stored in the artifact's config. An artifact
written before a setting existed loads with that setting's old behaviour (`LEGACY`), so an old
model keeps its exact tokens.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, fields
from functools import cache
from typing import Any

from model.segmenters import SEGMENTERS, WORD_SEGMENTERS, segmenter

URL_TOKEN = "<url>"
USER_TOKEN = "<user>"
TOPIC_TOKEN = "<topic>"
PLACEHOLDERS = (URL_TOKEN, USER_TOKEN, TOPIC_TOKEN)

_URL = re.compile(
    r"(?:https?://|www\.)[^\s\u4e00-\u9fff，。！？、；：“”‘’（）《》【】]+", re.IGNORECASE
)
# Weibo style: @name ends at whitespace, punctuation or a colon.
_MENTION = re.compile(r"@[\w\u4e00-\u9fff\-]{1,30}")
# Weibo topics are #...# with no newline inside; NFKC has already turned ＃ into #.
_TOPIC = re.compile(r"#[^#\n]{1,40}#")
# Emoji and pictographs: each one becomes its own token, since they carry sentiment (😭, 👍).
_EMOJI = re.compile(
    "["
    "\U0001f300-\U0001f5ff"
    "\U0001f600-\U0001f64f"
    "\U0001f680-\U0001f6ff"
    "\U0001f900-\U0001f9ff"
    "\U0001fa70-\U0001faff"
    "\u2600-\u27bf"
    "\u2b50\u2b55\u2764"
    "]"
)
# "!!!!!" and "？？？" keep their emphasis as one mark plus nothing else; "。。。" becomes "。".
_REPEATED_PUNCT = re.compile(r"([!?.,~。！？，、…\-])\1+")
_REPEATED_WS = re.compile(r"\s+")
_SPECIAL = re.compile(
    "(" + "|".join(re.escape(p) for p in PLACEHOLDERS) + "|" + _EMOJI.pattern + ")"
)
# Weibo's bracket emoticons ([哈哈], [泪], [怒], [doge]) have a fixed meaning; as text they would
# be split into their characters and read as the words they name, or as brackets.
_EMOTICON = re.compile(r"\[[\u4e00-\u9fffa-z]{1,8}\]")
_SPECIAL_WITH_EMOTICONS = re.compile(_SPECIAL.pattern[:-1] + "|" + _EMOTICON.pattern + ")")
# Without normalisation no placeholder was put in: "<url>" written in a post is plain text.
_RAW_SPECIAL = re.compile("(" + _EMOJI.pattern + ")")
_RAW_SPECIAL_WITH_EMOTICONS = re.compile("(" + _EMOJI.pattern + "|" + _EMOTICON.pattern + ")")


@cache
def _t2s() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


def normalize(text: str, t2s: bool = False) -> str:
    """Full-width to half-width, placeholders for URLs/mentions/topics, squeezed punctuation,
    and with `t2s` Traditional characters to Simplified (OpenCC), so that a Taiwan or Hong Kong
    post meets the same vocabulary as a mainland one."""
    text = unicodedata.normalize("NFKC", text)
    if t2s:
        text = _t2s().convert(text)
    text = _URL.sub(f" {URL_TOKEN} ", text)
    text = _TOPIC.sub(f" {TOPIC_TOKEN} ", text)
    text = _MENTION.sub(f" {USER_TOKEN} ", text)
    text = _REPEATED_PUNCT.sub(r"\1", text)
    text = text.lower()
    return _REPEATED_WS.sub(" ", text).strip()


@dataclass(frozen=True)
class TokenizerConfig:
    """Everything that changes the tokens; saved in the artifact so serving matches training."""

    max_chars: int = 1000  # segmentation cost grows with length; posts beyond this are cut first
    hmm: bool = True  # jieba's HMM finds unknown words (names, slang) that the dictionary lacks
    segmenter: str = "rjieba"  # jieba's algorithm and dictionary in native code; or "jieba"
    # Domain words and slang (yyds, 绝绝子, product names) the dictionary lacks, kept whole.
    user_words: tuple[str, ...] = ()
    t2s: bool = True  # Traditional to Simplified before segmenting
    emoticons: bool = True  # Weibo's [哈哈]-style emoticons as tokens of their own
    # False: the text as written, no normalize() at all (no NFKC, lower case or placeholders),
    # for a model trained on raw text such as Senta, whose vocabulary has both ！ and !.
    normalize: bool = True

    def __post_init__(self) -> None:
        if self.segmenter not in SEGMENTERS:
            raise ValueError(f"segmenter must be one of {SEGMENTERS}, got {self.segmenter!r}")
        if self.max_chars < 1:
            raise ValueError("max_chars must be >= 1")
        object.__setattr__(self, "user_words", tuple(self.user_words))
        if self.user_words and self.segmenter not in WORD_SEGMENTERS:
            raise ValueError(
                f"user_words need a word segmenter {WORD_SEGMENTERS}, not {self.segmenter!r}"
            )
        if any(not isinstance(w, str) or not w.strip() for w in self.user_words):
            raise ValueError("user_words must be non-empty strings")
        if self.t2s and not self.normalize:
            raise ValueError("t2s is part of normalisation: with normalize=False set t2s=False")

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["user_words"] = list(self.user_words)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TokenizerConfig:
        """As saved in an artifact; a setting it lacks takes its value from before it existed."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown tokenizer config keys: {sorted(unknown)}")
        return cls(**{**LEGACY, **d})


# What artifacts written before each setting existed did: jieba, no user dictionary, no
# conversion, emoticons split as text.
LEGACY: dict[str, Any] = {"segmenter": "jieba", "user_words": (), "t2s": False, "emoticons": False}


def read_user_words(path: str) -> tuple[str, ...]:
    """A user dictionary file: one word a line (jieba's `word [freq] [tag]` lines are accepted,
    only the word is used); blank lines and `#` comments are skipped."""
    from pathlib import Path

    words = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            words.append(line.split()[0])
    return tuple(dict.fromkeys(words))


class Tokenizer:
    """Normalise then segment; placeholders, emoji and emoticons survive as single tokens.

    Negation words (不, 没, 别, 未, 无 ...) are never dropped: there is no stop-word list at all,
    only whitespace is removed.
    """

    def __init__(self, config: TokenizerConfig | None = None) -> None:
        self.config = config or TokenizerConfig()
        c = self.config
        self._cut = segmenter(c.segmenter, c.hmm, c.user_words)
        if c.normalize:
            self._special = _SPECIAL_WITH_EMOTICONS if c.emoticons else _SPECIAL
            self._placeholders: tuple[str, ...] = PLACEHOLDERS
        else:
            self._special = _RAW_SPECIAL_WITH_EMOTICONS if c.emoticons else _RAW_SPECIAL
            self._placeholders = ()
        if c.t2s:
            _t2s()  # load OpenCC's tables now, not on the first post

    def tokenize(self, text: str) -> list[str]:
        c = self.config
        if c.normalize:
            norm = normalize(text[: c.max_chars * 2], c.t2s)[: c.max_chars]
        else:
            norm = text[: c.max_chars]
        tokens: list[str] = []
        cut = self._cut
        for piece in self._special.split(norm):
            if not piece:
                continue
            if piece in self._placeholders or self._special.fullmatch(piece):
                tokens.append(piece)
                continue
            tokens.extend(t for t in cut(piece) if not t.isspace())
        return tokens

    def tokenize_many(self, texts: list[str]) -> list[list[str]]:
        return [self.tokenize(t) for t in texts]
