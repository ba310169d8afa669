"""Which tokens drove a decision: attention weights, or gradient x input.

With attention pooling the pooling's own weights say how much each position counted. Otherwise
each token's score is the gradient of the predicted label's log-odds (its logit minus the
log-sum-exp of the others) with respect to the token's embedding, dotted with that embedding
(gradient x input), divided by the sum of absolute scores of its text: positive scores pushed
toward the predicted label, negative ones against it. The absolute scores of a text sum to 1
either way.
"""

from __future__ import annotations

import torch

from model.network import SentimentClassifier


def token_scores(
    model: SentimentClassifier, seqs: list[list[int]], device: torch.device, batch_size: int = 64
) -> list[list[float]]:
    """One score per id of each sequence, in order; an empty sequence gets an empty list."""
    out: list[list[float]] = [[] for _ in seqs]
    order = sorted((i for i in range(len(seqs)) if seqs[i]), key=lambda i: len(seqs[i]))
    was_training = model.training
    model.eval()  # dropout off: explanations must be deterministic
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = max(len(seqs[i]) for i in idx)
            ids = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, : len(seqs[i])] = torch.tensor(seqs[i], dtype=torch.long)
            lengths = torch.tensor([len(seqs[i]) for i in idx], dtype=torch.long)
            scores = _batch_scores(model, ids.to(device), lengths)  # (B, T)
            for row, i in enumerate(idx):
                out[i] = scores[row, : len(seqs[i])].tolist()
    finally:
        model.train(was_training)
    return out


def _batch_scores(
    model: SentimentClassifier, ids: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    if model.cfg.pooling == "attention":
        with torch.no_grad():
            model(ids, lengths)
        assert model.pool.last_weights is not None
        return model.pool.last_weights.detach().float().cpu()  # (B, T), rows sum to 1
    # Inference mode tensors cannot take part in autograd, so this needs grad mode explicitly;
    # autograd.grad leaves the parameters' .grad untouched, which matters for a shared model.
    with torch.inference_mode(False), torch.enable_grad():
        emb = model.encoder.embed(ids).detach().requires_grad_(True)  # (B, T, E)
        logits = model(ids, lengths, emb=emb)  # (B, N)
        pred = logits.argmax(1, keepdim=True)  # (B, 1)
        # The log-odds of the predicted label against the rest: unlike its probability it does
        # not saturate on confident predictions, and unlike its bare logit it counts the others.
        others = logits.scatter(1, pred, float("-inf")).logsumexp(1)  # (B,)
        margin = (logits.gather(1, pred).squeeze(1) - others).sum()
        (grad,) = torch.autograd.grad(margin, emb)
        raw = (grad * emb).sum(-1).detach()  # (B, T)
    raw = raw.masked_fill(ids == model.cfg.pad_id, 0.0)
    return (raw / raw.abs().sum(1, keepdim=True).clamp(min=1e-12)).float().cpu()


def top_tokens(
    tokens: list[str], scores: list[float], top_k: int | None
) -> list[tuple[str, float]]:
    """(token, score) pairs: all in text order when top_k is None, else the top_k by |score|."""
    pairs = list(zip(tokens, scores, strict=True))
    if top_k is None:
        return pairs
    return sorted(pairs, key=lambda p: -abs(p[1]))[:top_k]
