"""One rank of tests/test_training_ddp.py's gradient check, started by torchrun: `ddp_worker.py OUT_DIR`.

From a shared init, each rank (1) backpropagates its own fixed batch through the DDP-wrapped model
and keeps the gradients DDP leaves (the average over ranks, before clipping), then (2) runs one
`train_epoch` of the trainer over the shared windows (its shard: one batch, one Adam step), then
(3) scores held-out pieces with the sharded `evaluate`. Everything lands in OUT_DIR/rankR.json for
the test to compare with one process doing the same arithmetic by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from realtime.training.distributed import join
from realtime.training.lstm import NoteLSTM
from realtime.training.train import TrainConfig, _losses, evaluate, train_epoch

HIDDEN, WINDOWS, WINDOW, BATCH = 32, 8, 16, 4


def fixed_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Inputs and targets of WINDOWS windows, and five held-out pieces, the same on every rank."""
    rng = np.random.default_rng(seed)

    def notes(n: int) -> np.ndarray:
        return np.stack([rng.integers(40, 80, n), rng.integers(1, 10, n), rng.integers(1, 10, n),
                         rng.integers(0, 8, n)], 1).astype(np.int64)

    x, y = np.stack([notes(WINDOW) for _ in range(WINDOWS)]), np.stack([notes(WINDOW) for _ in range(WINDOWS)])
    y[:, -3:] = -100  # padded ends, as real windows have
    return x, y, {f"piece{i}": notes(20 + 7 * i) for i in range(5)}


def fresh_model() -> NoteLSTM:
    torch.manual_seed(0)
    return NoteLSTM(HIDDEN, 1, dropout=0.0)


def batch_loss(model, x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, int]:
    """The trainer's loss on one batch: summed NLL of the four fields over the batch's notes, per note."""
    logits, _ = model(torch.from_numpy(x))
    target = torch.from_numpy(y)
    n = int((target[..., 0] != -100).sum())
    return sum(_losses(logits, target)) / n, n


def flat(tensors) -> list[float]:
    return torch.cat([t.detach().reshape(-1) for t in tensors]).tolist()


def main(out: Path) -> None:
    world = join("gloo")
    torch.set_num_threads(1)
    x, y, pieces = fixed_data()
    model = fresh_model()
    net = world.wrap(model)
    mine = np.arange(world.rank * BATCH, (world.rank + 1) * BATCH)  # batch A on rank 0, B on rank 1
    loss, _ = batch_loss(net, x[mine], y[mine])
    loss.backward()
    averaged = flat(p.grad for p in model.parameters())
    model.zero_grad()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    cfg = TrainConfig(batch=BATCH, epochs=1, progress=False)
    train_nll = train_epoch(net, optimizer, (x,), y, np.random.default_rng(1), cfg, 0, world)
    result = {"rank": world.rank, "averaged_grads": averaged, "shard": world.log["shard"], "train_nll": train_nll,
              "parameters": flat(model.parameters()), "valid": evaluate(model, pieces, world)}
    (out / f"rank{world.rank}.json").write_text(json.dumps(result))
    world.finish()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
