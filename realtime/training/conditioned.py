"""`realtime train --controls`: a model that hears density, register, dynamics and key with every note.

The controls come from the data itself (realtime/model/controls.py measures them around each note).
The corpus has no dynamics and a narrow range of density and register, so each epoch augments it:
random transposition (with octave shifts), time stretching by 1/2 or 2 (sparser or denser music in
beats), and a random loudness contour per piece. The controls are measured after augmenting, so the
model learns what a control value sounds like, not just one corpus' habits.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..model import controls as ctl
from ..model.tokens import DURATION_BEATS, FIELDS, IOI_BEATS, START, VELOCITY_LEVELS, duration_bucket, ioi_bucket
from .distributed import SINGLE, World, join
from .export import export_all
from .lstm import ControlledNoteLSTM
from .train import IGNORE, TrainConfig, _losses, _same_run, field_summary, load_split, train_epoch

STRETCHES = (0.5, 1.0, 1.0, 2.0)  # beats are multiplied by one of these per piece and epoch
OCTAVES = (-24, -12, -12, 0, 0, 0, 0, 12)
_IOI_MAP = {k: np.array([0 if b == 0 else ioi_bucket(v * k) for b, v in enumerate(IOI_BEATS)]) for k in STRETCHES}
_DUR_MAP = {k: np.array([duration_bucket(v * k) for v in DURATION_BEATS]) for k in STRETCHES}
_VELOCITY = np.asarray(VELOCITY_LEVELS, dtype=np.float64)


@dataclass
class ConditionedConfig(TrainConfig):
    name: str = "game-lstm"
    corpus: list[str] = field(default_factory=lambda: ["chorales", "oneills1850"])
    hidden: int = 128
    layers: int = 2
    epochs: int = 20
    threads: int = 1
    max_minutes: float = 28.0  # stop after the epoch that passes this (the best epoch is exported)


def augment(tokens: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One random variant of a piece: moved, stretched, given a loudness contour; tokens and velocities."""
    out = tokens.copy()
    shift = int(rng.integers(-5, 7)) + int(rng.choice(OCTAVES))
    if 21 <= out[:, 0].min() + shift and out[:, 0].max() + shift <= 108:
        out[:, 0] += shift
    stretch = float(rng.choice(STRETCHES))
    out[:, 1], out[:, 2] = _IOI_MAP[stretch][out[:, 1]], _DUR_MAP[stretch][out[:, 2]]
    onsets = np.cumsum(np.asarray(IOI_BEATS)[out[:, 1]])
    anchors_beats = np.arange(0.0, onsets[-1] + 16.0, 16.0)  # a new loudness every four bars or so
    levels = rng.uniform(20, 124, len(anchors_beats))
    velocities = np.interp(onsets, anchors_beats, levels) + rng.normal(0, 5, len(out))
    velocities = np.clip(velocities, 1, 127)
    out[:, 3] = np.abs(velocities[:, None] - _VELOCITY[None, :]).argmin(1)
    return out, _VELOCITY[out[:, 3]]


def _example(tokens: np.ndarray, velocities: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs, controls, targets): the model hears note t-1 and the controls around note t."""
    start = np.array([[START[f] for f in FIELDS]], dtype=np.int64)
    return np.concatenate([start, tokens[:-1]]), ctl.measure(tokens, velocities), tokens


def _windows(examples, window: int):
    xs, cs, ys = [], [], []
    for x, c, y in examples:
        for s in range(0, len(y), window):
            n = min(window, len(y) - s)
            xp = np.zeros((window, 4), np.int64)
            cp = np.tile(ctl.DEFAULTS, (window, 1))
            yp = np.full((window, 4), IGNORE, np.int64)
            xp[:n], cp[:n], yp[:n] = x[s:s + n], c[s:s + n], y[s:s + n]
            xs.append(xp), cs.append(cp), ys.append(yp)
    return np.stack(xs), np.stack(cs), np.stack(ys)


@torch.no_grad()
def evaluate(model: ControlledNoteLSTM, pieces: dict[str, np.ndarray], world: World = SINGLE) -> dict:
    """Per-note NLL of each field over whole pieces, controls measured from the pieces as they are."""
    return evaluate_examples(model, [_example(t) for t in world.part(list(pieces.values()))], world)


@torch.no_grad()
def evaluate_examples(model: ControlledNoteLSTM, examples: list, world: World = SINGLE) -> dict:
    """Per-note NLL of each field over (inputs, controls, targets) examples, whole pieces from their start.

    Under torchrun each rank scores its share (the caller passes it) with the bare module; the sums are shared.
    """
    model.eval()
    device = next(model.parameters()).device
    sums, correct, count = np.zeros(len(FIELDS)), 0, 0
    for example in examples:
        x, c, y = (torch.from_numpy(a).unsqueeze(0).to(device) for a in example)
        logits, _ = model(x, c)
        sums += [loss.item() for loss in _losses(logits, y)]
        correct += int((logits[0].argmax(-1) == y[..., 0]).sum())
        count += len(example[2])
    return field_summary(sums, correct, count, world)


@torch.no_grad()
def control_response(model: ControlledNoteLSTM, pieces: dict[str, np.ndarray], seed: int = 0) -> dict:
    """How far each field's expected value follows its control, on augmented held-out pieces.

    Correlation, over notes, of the control's value with the model's expected onset rate, mean
    pitch and velocity: a check that the controls steer, not only that the NLL went down.
    """
    model.eval()
    rng = np.random.default_rng(seed)
    rows = []
    for tokens in list(pieces.values())[:120]:
        x, c, _ = _example(*augment(tokens, rng))
        logits, _ = model(torch.from_numpy(x)[None], torch.from_numpy(c)[None])
        p = [torch.softmax(lg[0], -1).numpy() for lg in logits]
        expected_rate = 1.0 / np.maximum(p[1] @ np.asarray(IOI_BEATS), 1e-3)
        rows.append(np.stack([c[:, ctl.INDEX["density"]], expected_rate, c[:, ctl.INDEX["register"]],
                              p[0] @ np.arange(128), c[:, ctl.INDEX["dynamics"]], p[3] @ _VELOCITY], 1))
    a = np.concatenate(rows)
    return {name: float(np.corrcoef(a[:, 2 * i], a[:, 2 * i + 1])[0, 1])
            for i, name in enumerate(("density", "register", "dynamics"))}


def train_conditioned(cfg: ConditionedConfig, backend: str | None = None) -> dict:
    """Train, keep the best epoch by validation NLL, export it with its control card; resumable.

    As `train`, one process or one of torchrun's: rank 0 prints, saves, exports and returns the metrics.
    """
    world = join(backend)
    split, source = world.main_first(lambda: load_split(cfg))
    source["augmentation"] = AUGMENTATION
    world.print(f"data: {json.dumps(split.describe())}")
    train_pieces = list(split.train.values())
    model, state, best_path = fit(cfg, world, lambda rng: (_example(*augment(t, rng)) for t in train_pieces),
                                  lambda m: evaluate(m, split.valid, world))
    metrics = _export(model.cpu(), best_path, split, source, state, cfg, world) if world.main else {}
    world.finish()
    return metrics


AUGMENTATION = ("each epoch, per training piece: transposed -5..+6 semitones plus an octave shift "
                "(-24, -12, 0, +12; kept within MIDI 21-108), time stretched x0.5/x1/x2, and a random "
                "loudness contour (a level in 20-124 every 16 beats, interpolated, +-5 noise)")


def fit(cfg: ConditionedConfig, world: World, epoch_examples, validate) -> tuple[ControlledNoteLSTM, dict, Path]:
    """The epochs of a conditioned model: each draws fresh examples (`epoch_examples(rng)`: augmented
    (inputs, controls, targets)), trains on their windows, scores `validate(model)` and keeps the best.

    Resumable: a checkpoint of the same configuration (max_minutes aside) continues where it stopped;
    stops at `epochs`, after `patience` epochs without a better validation NLL, or past max_minutes.
    Returns the model (last epoch's weights), the run's state and the best epoch's weights file.
    """
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    ckpt_dir = Path(cfg.checkpoint_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, best_path = ckpt_dir / f"{cfg.name}.pt", ckpt_dir / f"{cfg.name}.best.pt"
    model = ControlledNoteLSTM(cfg.hidden, cfg.layers, ctl.LOW, ctl.HIGH, cfg.dropout).to(world.device)
    world.seed_rank(cfg.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1)
    state = {"epoch": 0, "best_valid": math.inf, "best_epoch": 0, "history": [], "seconds": 0.0}
    run = {k: v for k, v in asdict(cfg).items() if k != "max_minutes"}
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False, map_location="cpu")
        if _same_run(ckpt["config"], run):
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            state = ckpt["state"]
            world.print(f"resuming after epoch {state['epoch']} from {ckpt_path}")
    net = world.wrap(model)
    world.log["resumed_after"] = state["epoch"]
    rng = np.random.default_rng(cfg.seed + state["epoch"])
    while (state["epoch"] < cfg.epochs and state["epoch"] - state["best_epoch"] < cfg.patience
           and state["seconds"] < cfg.max_minutes * 60):
        t0 = time.time()
        model.train()
        x_all, c_all, y_all = _windows(epoch_examples(rng), cfg.window)
        train_nll = train_epoch(net, optimizer, (x_all, c_all), y_all, rng, cfg, state["epoch"], world)
        valid = validate(model)
        scheduler.step(valid["nll"])
        state["epoch"] += 1
        state["seconds"] += world.from_main(time.time() - t0)[0]  # one clock decides the time budget
        state["history"].append({"epoch": state["epoch"], "train_nll": train_nll, "valid_nll": valid["nll"],
                                 "valid_pitch_nll": valid["pitch_nll"]})
        if valid["nll"] < state["best_valid"]:
            state["best_valid"], state["best_epoch"] = valid["nll"], state["epoch"]
            if world.main:
                torch.save(model.state_dict(), best_path)
        world.print(f"epoch {state['epoch']}: train NLL {train_nll:.3f}, valid NLL {valid['nll']:.3f} "
                    f"(pitch {valid['pitch_nll']:.3f}) [{state['seconds'] / 60:.1f} min]", flush=True)
        if world.main:
            torch.save({"config": run, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "state": state}, ckpt_path)
        world.write_log(ckpt_dir, cfg.name, model, history=state["history"], lr=optimizer.param_groups[0]["lr"])
    return model, state, best_path


def _export(model: ControlledNoteLSTM, best_path: Path, split, source: dict, state: dict, cfg: ConditionedConfig,
            world: World) -> dict:
    """Rank 0 (or the one process): the best epoch scored, its control response measured, exported."""
    model.load_state_dict(torch.load(best_path, map_location="cpu"))
    metrics = {"lstm": {"valid": evaluate(model, split.valid), "test": evaluate(model, split.test),
                        "best_epoch": state["best_epoch"], "history": state["history"],
                        "minutes": state["seconds"] / 60},
               "control_response_test": control_response(model, split.test, cfg.seed)}
    print(f"held-out test NLL {metrics['lstm']['test']['nll']:.3f} (pitch {metrics['lstm']['test']['pitch_nll']:.3f}); "
          f"control response (correlation) {json.dumps(metrics['control_response_test'])}")
    info = {"training": {**source, "config": asdict(cfg), **world.card()}, "metrics": metrics,
            "velocity_level_mean": 80.0}
    paths = export_all(model, Path(cfg.out_dir), cfg.name, info)
    print("exported " + ", ".join(str(p) for p in paths))
    return metrics
