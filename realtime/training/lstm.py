"""The network: an LSTM over note tokens with one output head per token field (torch only)."""

from __future__ import annotations

import torch
from torch import nn

from ..model.tokens import FIELD_SIZES, FIELDS

EMBED_SIZES = {"pitch": 64, "ioi": 16, "duration": 16, "velocity": 8}


class NoteLSTM(nn.Module):
    """Embeds the four fields of each note, runs a stacked LSTM, predicts the next note's fields."""

    def __init__(self, hidden: int = 256, layers: int = 2, dropout: float = 0.2) -> None:
        super().__init__()
        self.hidden, self.layers = hidden, layers
        # +1 for the start-of-sequence marker, which inputs use and outputs never predict
        self.embed = nn.ModuleList(nn.Embedding(FIELD_SIZES[f] + 1, EMBED_SIZES[f]) for f in FIELDS)
        self.lstm = nn.LSTM(sum(EMBED_SIZES.values()), hidden, layers, batch_first=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.heads = nn.ModuleList(nn.Linear(hidden, FIELD_SIZES[f]) for f in FIELDS)

    def forward(self, tokens: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        """tokens (batch, time, 4) -> list of four logit tensors (batch, time, classes), new state."""
        x = torch.cat([emb(tokens[..., i]) for i, emb in enumerate(self.embed)], dim=-1)
        y, state = self.lstm(x, state)
        y = self.drop(y)
        return [head(y) for head in self.heads], state


class SingleStep(nn.Module):
    """One note in, next-note logits out; the caller carries the state (h and c stacked).

    Two tensors in and two out, not six: at this size the per-call overhead of onnxruntime
    is a large part of a step, and it grows with the number of tensors crossing the boundary.
    """

    def __init__(self, model: NoteLSTM) -> None:
        super().__init__()
        self.model = model

    def forward(self, note: torch.Tensor, state: torch.Tensor):
        logits, (h, c) = self.model(note.unsqueeze(1), (state[0], state[1]))
        return torch.cat([x.squeeze(1) for x in logits], dim=-1), torch.stack([h, c])
