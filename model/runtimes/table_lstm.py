"""The classifier on the CPU with its input side folded into lookup tables (the table runtime).

A token's vector (word, plus the mean of its characters' vectors, plus its cue's) and so its
LSTM input gates, W_ih x + b_ih + b_hh, depend on nothing but its vocabulary id. They are
computed once at load time for every id, per direction: a (V, 4H) table. At run time a step's
input gates are one row lookup, which removes half of the LSTM's multiply-adds and all of the
embedding arithmetic; ONNX Runtime already ran them near this CPU's peak, so fewer of them is
what is left to gain (benchmarks/README.md).

The recurrence runs in PyTorch over the rows sorted longest first. At each step only the rows
still inside their text take part, as packing does, so padding costs nothing and a chunk may be
large; max and mean pooling are kept as a running max and sum, so no (T, B, 2H) output is ever
built. The probabilities are the PyTorch model's to within float rounding (tests check 1e-5).
Each time step is a handful of PyTorch calls from Python, which hold the GIL between them, so
the runtime uses one core: chunks side by side on threads only contend (benchmarks/README.md).

Under end pooling only the forward direction runs: the backward one's output at the last token
is a table lookup (model.runtimes.first_step). A peephole LSTM's gates add their peephole terms
in the step; its input side folds the same way.

The runtime's record, the models it folds and what its tables cost are in table.py.
"""

from __future__ import annotations

import torch
from torch import Tensor

from model.network import SentimentClassifier
from model.runtimes.first_step import backward_first_step
from model.runtimes.table import unsupported


def _folded(
    emb: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor
) -> tuple[Tensor, Tensor]:
    """One direction's (input-gate table (V, 4H), recurrent weights (H, 4H)).

    PyTorch's gate order (input, forget, cell, output) is kept and the cell gate's pre-activation
    doubled, so that one sigmoid covers all four: tanh(x) = 2 sigmoid(2x) - 1, and PyTorch's
    tanh runs about 6x slower than its sigmoid on this CPU. The output gate comes last because a
    peephole LSTM's output gate reads the new cell state, so it is squashed after the others.
    """
    h = w_hh.shape[1]
    scale = torch.ones(4 * h)
    scale[2 * h : 3 * h] = 2.0
    table = (emb @ w_ih.T + b_ih + b_hh) * scale
    return table.contiguous(), (w_hh.T * scale).contiguous()


class TableForward:
    """logits = f(ids, lengths) for padded ids (B, T) and lengths (B,), on the CPU.

    The backward direction reads each text reversed, so both directions are the same forward
    recurrence over left-aligned rows of the same lengths: each step runs both at once, as one
    batched product over (D, rows, H), which halves the Python steps per post.
    """

    def __init__(self, model: SentimentClassifier) -> None:
        why = unsupported(model)
        if why is not None:
            raise ValueError(f"the table runtime cannot run this model: {why}")
        cfg = model.cfg
        self.hidden = cfg.hidden_size
        self.pooling = cfg.pooling
        self.vocab = cfg.vocab_size
        lstm = model.encoder.lstm
        # End pooling needs the backward direction at the last token only: its first step.
        recurrent = ["", "_reverse"] if cfg.bidirectional and cfg.pooling != "end" else [""]

        def weights(name: str) -> Tensor:
            return getattr(lstm, name).detach().float().cpu()

        with torch.inference_mode():
            emb = model.encoder.embed(torch.arange(cfg.vocab_size).unsqueeze(0))[0]  # (V, E)
            emb = emb.float().cpu()
            folded = [
                _folded(emb, *(weights(f"{name}_l0{suffix}")
                               for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
                for suffix in recurrent
            ]  # fmt: skip
            # Direction d's row for id v is table[d * V + v].
            self.table = torch.cat([t for t, _ in folded]).contiguous()  # (D*V, 4H)
            self.recurrent = torch.stack([r for _, r in folded])  # (D, H, 4H)
            self.back: Tensor | None = None
            if cfg.pooling == "end" and cfg.bidirectional:
                self.back = backward_first_step(model)  # (V, H)
            # Peepholes (D, 1, H): input and forget together as (D, 1, 2, H), output alone.
            self.peep_if: Tensor | None = None
            self.peep_o: Tensor | None = None
            if cfg.peepholes:
                peep = torch.stack([weights(f"peephole_l0{suffix}") for suffix in recurrent])
                self.peep_if = peep[:, None, :2].contiguous()  # (D, 1, 2, H)
                self.peep_o = peep[:, None, 2].contiguous()  # (D, 1, H)
            self.hidden_w: Tensor | None = None
            self.hidden_b: Tensor | None = None
            if model.head_hidden is not None:
                self.hidden_w = model.head_hidden.weight.detach().float().cpu().T.contiguous()
                self.hidden_b = model.head_hidden.bias.detach().float().cpu()  # (P, Hh), (Hh,)
            self.head_w = model.head.weight.detach().float().cpu().T.contiguous()  # (F, N)
            self.head_b = model.head.bias.detach().float().cpu()

    @torch.inference_mode()
    def __call__(self, ids: Tensor, lengths: Tensor) -> Tensor:
        lengths, order = lengths.sort(descending=True, stable=True)
        steps = int(lengths[0])
        fwd = ids[order, :steps]  # (B, T), longest first: each step's live rows are a prefix
        rows = [fwd]
        if len(self.recurrent) == 2:  # each row's own tokens reversed, still left-aligned
            idx = (lengths.unsqueeze(1) - 1 - torch.arange(steps)).clamp(min=0)  # (B, T)
            rows.append(fwd.gather(1, idx) + self.vocab)
        ids_t = torch.stack(rows).permute(2, 0, 1).contiguous()  # (T, D, B)
        # live[t]: how many rows are still inside their text at step t
        live = (lengths.unsqueeze(0) > torch.arange(steps).unsqueeze(1)).sum(1).tolist()
        top, total, last = (torch.cat(list(x), dim=-1) for x in self._run(ids_t, live))
        # each (B, D*H): joins the directions as PyTorch's LSTM output does
        if self.pooling in ("last", "end"):
            pooled = last
            if self.back is not None:  # the backward direction's first step, at the last token
                end = fwd.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)  # (B,)
                pooled = torch.cat([last, self.back.index_select(0, end)], dim=-1)
        elif self.pooling == "max":
            pooled = top
        else:
            mean = total / lengths.unsqueeze(1)
            pooled = mean if self.pooling == "mean" else torch.cat([top, mean], dim=-1)
        if self.hidden_w is not None and self.hidden_b is not None:
            pooled = torch.addmm(self.hidden_b, pooled, self.hidden_w).tanh_()  # (B, Hh)
        logits = torch.addmm(self.head_b, pooled, self.head_w)  # (B, N)
        out = torch.empty_like(logits)
        out[order] = logits
        return out

    def _run(self, ids_t: Tensor, live: list[int]) -> tuple[Tensor, Tensor, Tensor]:
        """(running max, running sum, state at each row's end), each (D, B, H)."""
        h = self.hidden
        dirs, rows = ids_t.shape[1], ids_t.shape[2]
        state = torch.zeros(dirs, rows, h)
        cell = torch.zeros(dirs, rows, h)
        squashed = torch.empty(dirs, rows, h)
        top = torch.full((dirs, rows, h), float("-inf"))
        total = torch.zeros(dirs, rows, h)
        table, recurrent = self.table, self.recurrent
        peep_if, peep_o = self.peep_if, self.peep_o
        pool = self.pooling not in ("last", "end")
        for t, k in enumerate(live):
            s, c, sq = state[:, :k], cell[:, :k], squashed[:, :k]
            g = table.index_select(0, ids_t[t, :, :k].reshape(-1)).view(dirs, k, 4 * h)
            g.baddbmm_(s, recurrent)
            if peep_if is None:
                g.sigmoid_()  # i, f, sigmoid(2 x) of the cell gate, o
            else:  # i and f read c(t-1); o reads c(t), so it is squashed once c is new
                g.view(dirs, k, 4, h)[:, :, :2].addcmul_(c.unsqueeze(2), peep_if)
                g[..., : 3 * h].sigmoid_()
            cand = g[..., 2 * h : 3 * h].mul_(2.0).sub_(1.0)  # tanh of the cell gate
            c.mul_(g[..., h : 2 * h]).addcmul_(g[..., :h], cand)
            o = g[..., 3 * h :]
            if peep_o is not None:
                o.addcmul_(c, peep_o).sigmoid_()
            torch.mul(c, 2.0, out=sq).sigmoid_().mul_(2.0).sub_(1.0)  # tanh(c)
            torch.mul(sq, o, out=s)
            if pool:
                torch.maximum(top[:, :k], s, out=top[:, :k])
                total[:, :k] += s
        return top, total, state
