"""Text pipeline shared by training and serving: normalise, segment, and nothing else.

Training and the service call the same `Tokenizer.tokenize`, so a post is turned into the same
tokens on both sides; the tokenizer's settings are stored in the artifact's config.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
import unicodedata
from dataclasses import asdict, dataclass

import jieba

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

log = logging.getLogger(__name__)
_jieba_lock = threading.Lock()
_jieba_ready = False


def _init_jieba() -> None:
    """Load jieba's dictionary once, quietly, with its cache in a writable temp dir.

    jieba writes a cache next to itself by default, which fails on a read-only root filesystem
    (the Kubernetes deployment), so the cache goes to TMPDIR instead.
    """
    global _jieba_ready
    with _jieba_lock:
        if _jieba_ready:
            return
        jieba.setLogLevel(logging.WARNING)
        jieba.dt.tmp_dir = os.environ.get("JIEBA_CACHE_DIR", tempfile.gettempdir())
        jieba.initialize()
        _jieba_ready = True


def normalize(text: str) -> str:
    """Full-width to half-width, placeholders for URLs/mentions/topics, squeezed punctuation."""
    text = unicodedata.normalize("NFKC", text)
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

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class Tokenizer:
    """Normalise then segment with jieba; placeholders and emoji survive as single tokens.

    Negation words (不, 没, 别, 未, 无 ...) are never dropped: there is no stop-word list at all,
    only whitespace is removed.
    """

    def __init__(self, config: TokenizerConfig | None = None) -> None:
        self.config = config or TokenizerConfig()
        _init_jieba()

    def tokenize(self, text: str) -> list[str]:
        norm = normalize(text[: self.config.max_chars * 2])[: self.config.max_chars]
        tokens: list[str] = []
        for piece in _SPECIAL.split(norm):
            if not piece:
                continue
            if piece in PLACEHOLDERS or _EMOJI.fullmatch(piece):
                tokens.append(piece)
                continue
            tokens.extend(t for t in jieba.lcut(piece, HMM=self.config.hmm) if not t.isspace())
        return tokens

    def tokenize_many(self, texts: list[str]) -> list[list[str]]:
        return [self.tokenize(t) for t in texts]
