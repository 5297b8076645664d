"""`realtime train`: data -> split -> Markov baselines and LSTM -> metrics -> ONNX export."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..model.markov import MarkovModel
from ..model.tokens import FIELDS, START, VELOCITY_LEVELS
from .data import Split, augmented, load_collection, load_midi_folder, split_by_piece, transpose
from .distributed import SINGLE, World, join
from .export import export_all
from .lstm import NoteLSTM

IGNORE = -100


@dataclass
class TrainConfig:
    corpus: list[str] = field(default_factory=lambda: ["chorales", "oneills1850"])
    midi_dir: str | None = None
    limit: int | None = None  # pieces per collection (for quick runs and tests)
    out_dir: str = "models"
    name: str = "bach-folk-lstm"
    checkpoint_dir: str = "out/train"
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.2
    epochs: int = 30
    batch: int = 32
    window: int = 128
    lr: float = 2e-3
    patience: int = 6
    seed: int = 0
    markov_orders: int = 8
    threads: int = 2
    progress: bool = True


def load_split(cfg: TrainConfig) -> tuple[Split, dict]:
    pieces: dict[str, np.ndarray] = {}
    for collection in cfg.corpus:
        pieces.update(load_collection(collection, cfg.limit))
    if cfg.midi_dir:
        pieces.update(load_midi_folder(cfg.midi_dir))
    split = split_by_piece(pieces, seed=cfg.seed)
    source = {"corpus": list(cfg.corpus), "midi_dir": cfg.midi_dir, "limit": cfg.limit,
              "split": {"method": "by piece, crc32 of seed:name", "seed": cfg.seed,
                        "fractions": {"valid": 0.1, "test": 0.1}, **split.describe()},
              "augmentation": "training pieces transposed -5..+6 semitones within MIDI 21-108"}
    return split, source


def markov_baselines(split: Split, max_order: int) -> dict:
    """Pitch-only variable-order Markov models (orders 1..max) on the same augmented training set."""
    model = MarkovModel(max_order=max_order).fit(t[:, 0].tolist() for t in augmented(split.train))
    results = {}
    for order in range(1, max_order + 1):
        results[order] = {part: model.nll((t[:, 0].tolist() for t in getattr(split, part).values()), order=order)
                          for part in ("valid", "test")}
    best = min(results, key=lambda o: results[o]["valid"])
    return {"pitch_nll_by_order": results, "best_order": best, "best_valid_pitch_nll": results[best]["valid"],
            "best_test_pitch_nll": results[best]["test"]}


def _with_start(tokens: np.ndarray) -> np.ndarray:
    start = np.array([[START[f] for f in FIELDS]], dtype=np.int64)
    return np.concatenate([start, tokens[:-1]])


def _windows(pieces: list[np.ndarray], window: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Cut pieces into training windows: inputs (n, window, 4) and padded targets."""
    xs, ys = [], []
    for tokens in pieces:
        inputs = _with_start(tokens)
        offset = int(rng.integers(0, window)) if len(tokens) > window else 0
        starts = [0] + list(range(offset or window, len(tokens), window)) if offset else range(0, len(tokens), window)
        for s in sorted(set(starts)):
            x, y = inputs[s:s + window], tokens[s:s + window]
            pad = window - len(x)
            if len(x) < 4:
                continue
            xs.append(np.pad(x, ((0, pad), (0, 0)), constant_values=0))
            ys.append(np.pad(y, ((0, pad), (0, 0)), constant_values=IGNORE))
    return np.stack(xs), np.stack(ys)


def _losses(logits: list[torch.Tensor], targets: torch.Tensor) -> list[torch.Tensor]:
    return [nn.functional.cross_entropy(lg.reshape(-1, lg.shape[-1]), targets[..., i].reshape(-1),
                                        ignore_index=IGNORE, reduction="sum") for i, lg in enumerate(logits)]


def field_summary(sums: np.ndarray, correct: int, count: int, world: World = SINGLE) -> dict:
    """NLL per field and pitch accuracy from summed scores; under torchrun, summed over all ranks' shares."""
    if world.active:
        *sums, correct, count = world.sum(*sums, correct, count)
        sums, correct, count = np.asarray(sums), int(correct), int(count)
    nll = dict(zip(FIELDS, (sums / count).tolist()))
    return {"nll": sum(nll.values()), "pitch_nll": nll["pitch"], "field_nll": nll,
            "pitch_accuracy": correct / count, "notes": count}


@torch.no_grad()
def evaluate(model: NoteLSTM, pieces: dict[str, np.ndarray], world: World = SINGLE) -> dict:
    """Per-note NLL (nats) of each field over whole pieces from their start, and pitch accuracy.

    `model` is the bare module, never the DDP wrapper: ranks score different numbers of pieces.
    """
    model.eval()
    device = next(model.parameters()).device
    sums, correct, count = np.zeros(len(FIELDS)), 0, 0
    for tokens in world.part(list(pieces.values())):
        x = torch.from_numpy(_with_start(tokens)).unsqueeze(0).to(device)
        y = torch.from_numpy(tokens).unsqueeze(0).to(device)
        logits, _ = model(x)
        sums += [loss.item() for loss in _losses(logits, y)]
        correct += int((logits[0].argmax(-1) == y[..., 0]).sum())
        count += len(tokens)
    return field_summary(sums, correct, count, world)


def _progress(iterable, enabled: bool, **kwargs):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, **kwargs)


RUN_ONLY = ("epochs", "progress", "threads", "patience")  # may change between a run and its resumption


def _same_run(saved: dict, current: dict) -> bool:
    return all(saved.get(k) == v for k, v in current.items() if k not in RUN_ONLY)


def train_epoch(model: nn.Module, optimizer, inputs: tuple[np.ndarray, ...], targets: np.ndarray,
                rng: np.random.Generator, cfg: TrainConfig, epoch: int, world: World = SINGLE) -> float:
    """One pass over the windows in a random order, `model(*inputs)` per batch; the mean training NLL.

    Under torchrun each rank passes over its own shard (`World.batches`) with the DDP-wrapped model,
    and the NLL is the mean over all ranks' notes.
    """
    order = rng.permutation(len(targets))
    total, notes = 0.0, 0
    batches = world.batches(order, cfg.batch)
    world.note_shard(epoch, targets, batches)
    for idx in _progress(batches, cfg.progress and world.main, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False):
        y = torch.from_numpy(targets[idx]).to(world.device)
        logits, _ = model(*(torch.from_numpy(a[idx]).to(world.device) for a in inputs))
        n = int((y[..., 0] != IGNORE).sum())
        loss = sum(_losses(logits, y)) / n
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        total, notes = total + loss.item() * n, notes + n
    total, notes = world.sum(total, notes)
    return total / notes


def train(cfg: TrainConfig, backend: str | None = None) -> dict:
    """Train, keep the best epoch by validation NLL, export it; resumes from the checkpoint folder.

    One process, or one of torchrun's (realtime/training/distributed.py); there only rank 0 prints,
    saves and exports, and returns the metrics (the other ranks return {}).
    """
    world = join(backend)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    ckpt_dir = Path(cfg.checkpoint_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = ckpt_dir / f"{cfg.name}.pt"
    split, source = world.main_first(lambda: load_split(cfg))
    if not split.train or not split.valid or not split.test:
        raise SystemExit(f"too little data to split: {split.describe()}")
    world.print(f"data: {json.dumps(split.describe())}")

    markov = None
    if world.main:  # the card's baselines, computed once
        t0 = time.time()
        markov = markov_baselines(split, cfg.markov_orders)
        print(f"markov: best order {markov['best_order']}, valid pitch NLL {markov['best_valid_pitch_nll']:.3f}, "
              f"test {markov['best_test_pitch_nll']:.3f} ({time.time() - t0:.0f} s)")

    model = NoteLSTM(cfg.hidden, cfg.layers, cfg.dropout).to(world.device)  # before the optimizer
    world.seed_rank(cfg.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1)
    state = {"epoch": 0, "best_valid": math.inf, "best_epoch": 0, "history": []}
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False, map_location="cpu")
        if _same_run(ckpt["config"], asdict(cfg)):
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            state = ckpt["state"]
            world.print(f"resuming after epoch {state['epoch']} from {ckpt_path}")
        else:
            world.print(f"{ckpt_path} is from a different configuration; starting afresh")
    best_path = ckpt_dir / f"{cfg.name}.best.pt"
    net = world.wrap(model)
    world.log["resumed_after"] = state["epoch"]

    rng = np.random.default_rng(cfg.seed + state["epoch"])
    train_pieces = list(split.train.values())
    while state["epoch"] < cfg.epochs and state["epoch"] - state["best_epoch"] < cfg.patience:
        model.train()
        shifted = [transpose(t, int(rng.integers(-5, 7))) for t in train_pieces]
        x_all, y_all = _windows([s if s is not None else t for s, t in zip(shifted, train_pieces)], cfg.window, rng)
        train_nll = train_epoch(net, optimizer, (x_all,), y_all, rng, cfg, state["epoch"], world)
        valid = evaluate(model, split.valid, world)
        scheduler.step(valid["nll"])
        state["epoch"] += 1
        state["history"].append({"epoch": state["epoch"], "train_nll": train_nll, "valid_nll": valid["nll"],
                                 "valid_pitch_nll": valid["pitch_nll"], "valid_pitch_accuracy": valid["pitch_accuracy"]})
        if valid["nll"] < state["best_valid"]:
            state["best_valid"], state["best_epoch"] = valid["nll"], state["epoch"]
            if world.main:
                torch.save(model.state_dict(), best_path)
        world.print(f"epoch {state['epoch']}: train NLL {train_nll:.3f}, valid NLL {valid['nll']:.3f} "
                    f"(pitch {valid['pitch_nll']:.3f}, accuracy {valid['pitch_accuracy']:.3f})")
        if world.main:
            torch.save({"config": asdict(cfg), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "state": state}, ckpt_path)
        world.write_log(ckpt_dir, cfg.name, model, history=state["history"], lr=optimizer.param_groups[0]["lr"])

    metrics = _export(model.cpu(), best_path, split, source, state, markov, cfg, world) if world.main else {}
    world.finish()
    return metrics


def _export(model: NoteLSTM, best_path: Path, split: Split, source: dict, state: dict, markov: dict,
            cfg: TrainConfig, world: World) -> dict:
    """Rank 0 (or the one process): the best epoch scored on valid and test, exported, its cards measured."""
    model.load_state_dict(torch.load(best_path, map_location="cpu"))
    metrics = {"lstm": {"valid": evaluate(model, split.valid), "test": evaluate(model, split.test),
                        "best_epoch": state["best_epoch"], "history": state["history"]},
               "markov": markov}
    lstm_test = metrics["lstm"]["test"]["pitch_nll"]
    print(f"held-out test pitch NLL: LSTM {lstm_test:.3f} vs best Markov (order {markov['best_order']}) "
          f"{markov['best_test_pitch_nll']:.3f}; LSTM pitch accuracy {metrics['lstm']['test']['pitch_accuracy']:.3f}")
    info = {"training": {**source, "config": asdict(cfg), **world.card()}, "metrics": metrics,
            "velocity_level_mean": float(np.mean(np.concatenate(
                [np.asarray(VELOCITY_LEVELS)[t[:, 3]] for t in split.train.values()])))}
    paths = export_all(model, Path(cfg.out_dir), cfg.name, info)
    from .card_metrics import measure_cards

    measure_cards(paths, split)  # each card's figures measured on its own graph (fp32, int8) with onnxruntime
    print("exported " + ", ".join(str(p) for p in paths))
    return metrics
