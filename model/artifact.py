"""A model artifact is a directory: safetensors weights plus plain JSON, never a pickle.

    model.safetensors   weights (state_dict)
    config.json         classifier + tokenizer config, labels, max_len, vocab fingerprint, version
    vocab.json          the token list
    reference.json      drift reference statistics from the validation split
    metrics.json        training and test metrics
    README.md           model card

The version string is derived from the weights' hash, so it changes whenever the weights do and
a corrupted weights file is detected on load.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from model import strict_json
from model.drift_reference import Reference
from model.network import ClassifierConfig, SentimentClassifier
from model.text import Tokenizer, TokenizerConfig
from model.vocab import Vocab

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
VOCAB = "vocab.json"
REFERENCE = "reference.json"
METRICS = "metrics.json"
# The licence notice of weights derived from another project's (Apache 2.0 asks that it travel
# with every derived work, and that changes be stated).
NOTICE = "NOTICE"
DEFAULT_DIR = Path(__file__).resolve().parent / "default"


class ArtifactError(ValueError):
    """The artifact is missing, corrupt, or does not match itself (vocabulary, config, weights)."""


@dataclass
class LoadedModel:
    model: SentimentClassifier
    config: ClassifierConfig
    tokenizer: Tokenizer
    vocab: Vocab
    max_len: int
    version: str
    device: torch.device
    path: Path
    reference: Reference | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.config.labels


def resolve_path(name_or_path: str | Path) -> Path:
    """`default` is the model shipped inside the package; anything else is a directory path."""
    if str(name_or_path) == "default":
        return DEFAULT_DIR
    return Path(name_or_path).expanduser()


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but CUDA is not available; use auto or cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    return dev


def weights_version(weights_file: Path) -> str:
    return "v" + hashlib.sha256(weights_file.read_bytes()).hexdigest()[:12]


def save(
    path: str | Path,
    model: SentimentClassifier,
    vocab: Vocab,
    max_len: int,
    tokenizer_config: TokenizerConfig,
    reference: Reference | None = None,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """Write the artifact directory and return its version string."""
    if model.cfg.vocab_size != len(vocab):
        raise ArtifactError(f"model has {model.cfg.vocab_size} embeddings, vocab {len(vocab)}")
    out = Path(path)
    config = {
        "format_version": FORMAT_VERSION,
        "classifier": model.cfg.to_dict(),
        "tokenizer": tokenizer_config.to_dict(),
        "max_len": max_len,
        "vocab_size": len(vocab),
        "vocab_fingerprint": vocab.fingerprint(),
        "oov": "chars" if vocab.char_fallback else "unk",
        **(extra or {}),
    }
    version = write_directory(out, model, vocab, config, WEIGHTS, versioned=True)
    if reference is not None:
        (out / REFERENCE).write_text(json.dumps(reference.to_dict(), indent=2), encoding="utf-8")
    if metrics is not None:
        (out / METRICS).write_text(strict_json.dumps(metrics, indent=2), encoding="utf-8")
    return version


def write_directory(
    out: Path,
    module: torch.nn.Module,
    vocab: Vocab,
    config: dict[str, Any],
    weights: str,
    versioned: bool = False,
) -> str:
    """The files every artifact has: the module's weights as safetensors, `config` as JSON (with
    `version`, the weights' hash, added when `versioned`) and the vocabulary; returns the hash."""
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(out / weights))
    version = weights_version(out / weights)
    if versioned:
        config = {**config, "version": version}
    text = json.dumps(config, ensure_ascii=False, indent=2)
    (out / CONFIG).write_text(text, encoding="utf-8")
    vocab.save(out / VOCAB)
    return version


def carry_notice(source: Path, out: Path, change: str) -> None:
    """Copy `source`'s NOTICE, if it has one, into `out` with `change` stated under it."""
    notice = source / NOTICE
    if notice.is_file():
        text = notice.read_text(encoding="utf-8").rstrip("\n")
        (out / NOTICE).write_text(f"{text}\n\nModified: {change}\n", encoding="utf-8")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ArtifactError(f"{path.parent}: missing {path.name}; not a model artifact") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{path}: not valid JSON ({e})") from e


def load(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the classifier from config.json and load its weights strictly.

    Refuses, with an ArtifactError naming the problem, an artifact whose weights hash, vocabulary
    or config disagree with each other.
    """
    root = resolve_path(path)
    if not root.is_dir():
        raise ArtifactError(f"model artifact {root} is not a directory")
    cfg_json = _read_json(root / CONFIG)
    if cfg_json.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{root}: format_version {cfg_json.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    try:
        vocab = Vocab.load(root / VOCAB, char_fallback=cfg_json.get("oov") == "chars")
    except FileNotFoundError as e:
        raise ArtifactError(f"{root}: missing {VOCAB}") from e
    except ValueError as e:
        raise ArtifactError(str(e)) from e
    if len(vocab) != cfg_json.get("vocab_size") or vocab.fingerprint() != cfg_json.get(
        "vocab_fingerprint"
    ):
        raise ArtifactError(
            f"{root}: vocabulary mismatch: {VOCAB} has {len(vocab)} tokens "
            f"(fingerprint {vocab.fingerprint()}), config expects {cfg_json.get('vocab_size')} "
            f"({cfg_json.get('vocab_fingerprint')})"
        )
    try:
        config = ClassifierConfig.from_dict(cfg_json["classifier"])
        tok_config = TokenizerConfig.from_dict(cfg_json.get("tokenizer", {}))
        max_len = int(cfg_json["max_len"])
    except (KeyError, TypeError, ValueError) as e:
        raise ArtifactError(f"{root}: bad config.json: {e}") from e
    if config.vocab_size != len(vocab):
        raise ArtifactError(f"{root}: classifier vocab_size {config.vocab_size} != {len(vocab)}")
    weights = root / WEIGHTS
    if not weights.is_file():
        raise ArtifactError(f"{root}: missing {WEIGHTS}")
    version = weights_version(weights)
    if version != cfg_json.get("version"):
        raise ArtifactError(
            f"{root}: weights hash {version} does not match config version "
            f"{cfg_json.get('version')}: the weights file is corrupt or from another model"
        )
    try:
        state = load_file(str(weights))
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise ArtifactError(f"{root}: cannot read {WEIGHTS}: {e}") from e
    dev = resolve_device(device)
    model = SentimentClassifier(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ArtifactError(f"{root}: weights do not fit the config: {e}") from e
    model.to(dev).eval()
    ref_path = root / REFERENCE
    reference = Reference.from_dict(_read_json(ref_path)) if ref_path.exists() else None
    met_path = root / METRICS
    metrics = _read_json(met_path) if met_path.exists() else {}
    return LoadedModel(
        model=model,
        config=config,
        tokenizer=Tokenizer(tok_config),
        vocab=vocab,
        max_len=max_len,
        version=version,
        device=dev,
        path=root,
        reference=reference,
        metrics=metrics,
    )
