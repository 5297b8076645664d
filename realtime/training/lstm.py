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

    The same function as NoteLSTM, laid out for the fewest graph nodes: onnxruntime spends about
    a microsecond per node at this size, more than the arithmetic. The four embeddings become one
    block-diagonal table (four rows gathered and summed = the four embeddings concatenated), the
    four heads one linear layer, and two tensors cross the boundary each way instead of six.
    """

    def __init__(self, model: NoteLSTM) -> None:
        super().__init__()
        rows = [FIELD_SIZES[f] + 1 for f in FIELDS]
        cols = [e.weight.shape[1] for e in model.embed]
        table = torch.zeros(sum(rows), sum(cols))
        r = c = 0
        for embed, n_rows, n_cols in zip(model.embed, rows, cols):
            table[r:r + n_rows, c:c + n_cols] = embed.weight.detach()
            r, c = r + n_rows, c + n_cols
        self.register_buffer("table", table)
        self.register_buffer("offsets", torch.tensor([sum(rows[:i]) for i in range(len(rows))]))
        self.lstm = model.lstm
        self.head = nn.Linear(model.hidden, sum(FIELD_SIZES.values()))
        self.head.weight.data = torch.cat([h.weight.detach() for h in model.heads])
        self.head.bias.data = torch.cat([h.bias.detach() for h in model.heads])

    def forward(self, note: torch.Tensor, state: torch.Tensor):
        x = self.table[note + self.offsets].sum(1)
        y, (h, c) = self.lstm(x.unsqueeze(1), (state[0], state[1]))
        return self.head(y[:, 0]), torch.stack([h, c])


class ControlledNoteLSTM(NoteLSTM):
    """NoteLSTM that also hears a control vector with every note (density, register, dynamics, key...).

    Controls arrive in their natural units (see realtime/model/controls.py) and are scaled to 0..1
    inside the network, so the exported graph takes what the card documents. They enter twice: into
    the LSTM with the note (so they shape what the state remembers) and straight into the heads (so a
    control such as dynamics can move the velocity head at once, without waiting for the state).
    """

    def __init__(self, hidden: int, layers: int, low, high, dropout: float = 0.2) -> None:
        super().__init__(hidden, layers, dropout)
        self.n_controls = len(low)
        low_t = torch.as_tensor(low, dtype=torch.float32)
        self.register_buffer("control_low", low_t)
        self.register_buffer("control_scale", 1.0 / (torch.as_tensor(high, dtype=torch.float32) - low_t))
        self.lstm = nn.LSTM(sum(EMBED_SIZES.values()) + self.n_controls, hidden, layers, batch_first=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.control_heads = nn.Linear(self.n_controls, sum(FIELD_SIZES.values()))

    def forward(self, tokens: torch.Tensor, controls: torch.Tensor, state=None):
        """tokens (batch, time, 4), controls (batch, time, n_controls) -> four logit tensors, new state."""
        c = (controls - self.control_low) * self.control_scale
        x = torch.cat([emb(tokens[..., i]) for i, emb in enumerate(self.embed)] + [c], dim=-1)
        y, state = self.lstm(x, state)
        logits = torch.split(self.control_heads(c), [FIELD_SIZES[f] for f in FIELDS], dim=-1)
        return [head(self.drop(y)) + extra for head, extra in zip(self.heads, logits)], state


class ControlledSingleStep(SingleStep):
    """SingleStep with a control input: the note's embeddings and the scaled controls feed the LSTM,
    and one linear layer over [LSTM output, scaled controls] gives all logits (one node, not two)."""

    def __init__(self, model: ControlledNoteLSTM) -> None:
        super().__init__(model)
        self.register_buffer("control_low", model.control_low.detach().clone())
        self.register_buffer("control_scale", model.control_scale.detach().clone())
        self.head = nn.Linear(model.hidden + model.n_controls, sum(FIELD_SIZES.values()))
        self.head.weight.data = torch.cat([torch.cat([h.weight.detach() for h in model.heads]),
                                           model.control_heads.weight.detach()], dim=1)
        self.head.bias.data = torch.cat([h.bias.detach() for h in model.heads]) + model.control_heads.bias.detach()

    def forward(self, note: torch.Tensor, control: torch.Tensor, state: torch.Tensor):
        c = (control - self.control_low) * self.control_scale
        x = torch.cat([self.table[note + self.offsets].sum(1), c], dim=1)
        y, (h, cell) = self.lstm(x.unsqueeze(1), (state[0], state[1]))
        return self.head(torch.cat([y[:, 0], c], dim=1)), torch.stack([h, cell])
