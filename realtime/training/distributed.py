"""Data-parallel training under torchrun: one `World` that both trainers ask where they stand.

`realtime train` (and `--controls`) run unchanged as one process. Started by torchrun (WORLD_SIZE > 1
with RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT in the environment), every process joins one
process group (gloo on CPU, nccl when CUDA is there, or what --backend says) and:

- builds the same model from the same seed (DDP also broadcasts rank 0's parameters) and reads the
  same checkpoint when resuming;
- draws the same augmentation and window order each epoch, then keeps its own shard of the windows:
  rank r takes every world-th window of the shuffled order, the last `windows % world` left out so
  every rank runs the same number of batches (a rank with one batch more would wait forever in the
  gradient all-reduce). `batch` is per rank: an epoch takes 1/world the optimizer steps;
- has DDP average its gradients with the other ranks' after each backward;
- scores its share of the validation pieces and sums the scores with the others', so every rank
  takes the same learning-rate and early-stopping decision from the same numbers;
- leaves printing, checkpoints, export and the model cards to rank 0, waits for it at a barrier,
  and exits 0.

Each rank also writes NAME.rankR.json into the checkpoint folder: the windows it trained on in the
last epoch and the figures it decided on, so a run can be checked for disjoint shards and agreement.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..errors import RealtimeError

TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
BACKENDS = ("gloo", "nccl")


@dataclass
class World:
    """This process's place among the training processes; World() is the single process of today."""

    rank: int = 0
    size: int = 1
    backend: str = ""
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    log: dict = field(default_factory=dict)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1

    def print(self, *args, **kwargs) -> None:
        if self.main:
            print(*args, **kwargs)

    def card(self) -> dict:
        """What a model card says of how the model was trained: nothing new in one process."""
        if not self.active:
            return {}
        return {"distributed": {"processes": self.size, "backend": self.backend, "batch": "per process",
                                "shard": "every world-th window of each epoch's shuffled order"}}

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model (already on `device`) DDP-wrapped: gradients averaged over ranks; itself in one process."""
        if not self.active:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        # the buffers are constants (control ranges): synced once at init, not before every forward
        return nn.parallel.DistributedDataParallel(model, device_ids=ids, forward_sync_buffers=False)

    def batches(self, order: np.ndarray, batch: int) -> list[np.ndarray]:
        """This rank's batches of a shuffled window order (all of them in one process)."""
        if self.active:
            order = order[:len(order) // self.size * self.size][self.rank::self.size]
        return [order[b:b + batch] for b in range(0, len(order), batch)]

    def main_first(self, load):
        """load() on rank 0, then on the others: rank 0 fills the corpus cache the others then read."""
        result = load() if self.main else None
        if self.active:
            dist.barrier()
        return result if self.main else load()

    def part(self, items: list) -> list:
        """This rank's share of a list (every world-th item), for scoring held-out pieces."""
        return items[self.rank::self.size]

    def sum(self, *values: float) -> list[float]:
        """Each value summed over the ranks, identical on every rank (the values themselves in one process)."""
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        dist.broadcast(t, 0)  # rank 0's sum for all: a reduction order must not split a decision
        return t.tolist()

    def from_main(self, *values: float) -> list[float]:
        """Rank 0's values, on every rank (for decisions taken on a clock, such as a time budget)."""
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        dist.broadcast(t, 0)
        return t.tolist()

    def seed_rank(self, seed: int) -> None:
        """After the shared model init: a different, reproducible dropout stream on each rank > 0."""
        if self.rank:
            torch.manual_seed(seed + 7919 * self.rank)

    def note_shard(self, epoch: int, targets: np.ndarray, batches: list[np.ndarray]) -> None:
        """Remember this epoch's windows (a digest: every rank must cut the same) and this rank's share."""
        if self.active:
            ids = np.concatenate(batches) if batches else np.zeros(0, np.int64)
            self.log.update(epoch=epoch + 1, windows=len(targets), batches=len(batches), shard=sorted(ids.tolist()),
                            windows_sha256=hashlib.sha256(np.ascontiguousarray(targets).tobytes()).hexdigest())

    def write_log(self, folder: Path, name: str, model: nn.Module, **figures) -> None:
        """NAME.rankR.json: this rank's last shard, the figures it decided on and a digest of its
        parameters, which DDP keeps equal on every rank (torchrun runs only)."""
        if self.active:
            digest = hashlib.sha256(b"".join(p.detach().cpu().numpy().tobytes() for p in model.parameters()))
            self.log.update(rank=self.rank, processes=self.size, backend=self.backend,
                            parameters_sha256=digest.hexdigest(), **figures)
            (folder / f"{name}.rank{self.rank}.json").write_text(json.dumps(self.log) + "\n")

    def finish(self) -> None:
        """Wait until rank 0 has exported, then leave the process group."""
        if self.active:
            dist.barrier()
            dist.destroy_process_group()


SINGLE = World()


def join(backend: str | None = None) -> World:
    """The World this process runs in: torchrun's, joined now, or the single process."""
    size = int(os.environ.get("WORLD_SIZE") or 1)
    if size <= 1:
        return World()
    absent = [name for name in TORCHRUN_VARIABLES if not os.environ.get(name)]
    if absent:
        raise RealtimeError(f"WORLD_SIZE is {size} but {', '.join(absent)} is not set: start distributed "
                            "training with torchrun")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in BACKENDS:
        raise RealtimeError(f"--backend {backend!r}: choose gloo (CPU) or nccl (CUDA)")
    device = torch.device("cpu")
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise RealtimeError("--backend nccl needs CUDA, which this torch cannot see; use --backend gloo")
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    rank = int(os.environ["RANK"])
    dist.init_process_group(backend, rank=rank, world_size=size)
    return World(rank, size, backend, device)
