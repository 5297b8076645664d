"""`realtime train --stage`: the stage model, one network that hears harmony, role and style with every note.

Its controls are game-lstm's measured ones (density, polyphony, register, dynamics, key shares around
the note) followed by three groups the data states (realtime/model/controls.py): the harmony at the
note's onset (chord0-11, root0-11), the line's role and the piece's style. Lines come from
realtime/training/stagedata.py: the chorales' four parts and their texture, and the melody collections.

Each epoch augments every training line as `--controls` does (transposition with octave shifts, the
harmony moved with it; time stretch; a loudness contour) and, independently per line, drops each of the
harmony, role and style groups to all zeros with probability DROP, so the model also learns to play
when a group is not known (a duet with no chords, a patch with no style). With `--drop-measured P` the
measured controls (density, polyphony, register, dynamics, key) are heard as their defaults, the uniform
key among them, with probability P, so the model also predicts a line from its notes alone: the state a
held-out NLL can be measured in without telling the model anything about the note
(benchmarks/stage_nll.py "nothing known"). The shipped model was trained with P = 0 (the default).
Validation hears every group.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..model import controls as ctl
from .conditioned import AUGMENTATION, ConditionedConfig, augment, evaluate_examples, fit
from .data import Split, split_by_piece
from .distributed import join
from .export import export_all
from .stagedata import STYLE_OF, SUBSETS, describe, example, key_profiles_before, lines_of, load_stage_corpus, rotate

FIRST_LSTM = "/lstm/LSTM"  # its input is the embeddings beside the controls: left fp32 in the int8 graph
DROP = 0.25  # per line and epoch, each of harmony, role and style is heard as "not known" this often
GROUPS = ("harmony", "role", "style")


@dataclass
class StageConfig(ConditionedConfig):
    name: str = "stage-lstm"
    corpus: list[str] = field(default_factory=lambda: list(STYLE_OF))
    epochs: int = 100
    max_minutes: float = 35.0
    drop: float = DROP
    key_shares: str = "profile"  # the line's key profile; "window": the notes around (stagedata.line_controls)
    measured: str = "around"  # "before": every measured control from the notes before each one (line_controls)
    drop_measured: float = 0.25  # per line and epoch, the measured controls heard not known this often



def line_example(line: np.ndarray, role: str | None, style: str | None, rng: np.random.Generator | None = None,
                 drop: float = 0.0, key_shares: str = "window", measured: str = "around",
                 key_rows: np.ndarray | None = None, drop_measured: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs, controls, targets) of one (n, 6) line; with `rng`, augmented and with groups dropped (each of
    harmony, role and style with probability `drop`; the measured controls, set to their defaults, with
    `drop_measured`).
    `key_rows`: the line's own key_profiles_before, made once (0.15 ms a note), for measured "before" with a
    profile: rotated with the transposition, as the key tracker hears a moved line in the moved key."""
    if rng is None:
        return example(line, role, style, key_shares=key_shares, measured=measured)
    tokens, masks, roots = line[:, :4], line[:, 4], line[:, 5]
    moved, velocities = augment(tokens, rng)
    shift = int(moved[0, 0] - tokens[0, 0])
    masks, roots = rotate(masks, roots, shift)
    moved_rows = None if key_rows is None else np.roll(key_rows, shift % 12, axis=1)
    keep = rng.random(len(GROUPS)) >= drop
    if not keep[0]:
        masks, roots = np.zeros_like(masks), np.full_like(roots, -1)
    inputs, controls, targets = example(np.concatenate([moved, masks[:, None], roots[:, None]], 1),
                                        role if keep[1] else None, style if keep[2] else None, velocities,
                                        key_shares, measured, moved_rows)
    if drop_measured > 0 and rng.random() < drop_measured:  # no draw at 0: a recipe without it keeps its random stream
        ctl.forget_measured(controls)
    return inputs, controls, targets


def load_stage_split(cfg: StageConfig) -> tuple[Split, dict]:
    limits = {c: cfg.limit for c in cfg.corpus} if cfg.limit is not None else SUBSETS
    split = split_by_piece(load_stage_corpus(cfg.corpus, limits), seed=cfg.seed)
    subsets = {c: f"the first {n} files in sorted order" for c, n in limits.items() if c in cfg.corpus and n}
    source = {"corpus": list(cfg.corpus), "midi_dir": None, "limit": cfg.limit, "subsets": subsets,
              "styles": {s: c for s, c in ctl.STYLE_CORPUS.items() if c in cfg.corpus}, "roles": list(ctl.ROLES),
              "lines": ("chorales: soprano (melody), alto and tenor (inner), bass (bass), all four merged (texture); "
                        "harmony at each note = pitch classes of the other parts sounding at its onset (texture: the "
                        "whole slice), root by template match (realtime/training/stagedata.py); other collections: "
                        "one melody line per tune, harmony not known"),
              "split": {"method": "by piece, crc32 of seed:name (every line of a piece in the same part)",
                        "seed": cfg.seed, "fractions": {"valid": 0.1, "test": 0.1}, **describe(split)},
              "augmentation": AUGMENTATION + "; the harmony moved with the notes",
              "key_shares": ("pitch-class shares of the +-4 beats around each note, the note included" if cfg.key_shares == "window"
                             else "one key profile per line: the key the listener's tracker hears in its notes"
                             if cfg.measured == "around" else "the key profile of the key the listener's tracker "
                             "hears in the notes before each note (uniform until it names one)"),
              "measured": ("density, register and dynamics of the +-4 beats around each note, the note included"
                           if cfg.measured == "around" else "density, register and dynamics of the notes in the 8 "
                           "beats before each note, never the note (the first note: the defaults)"),
              "dropout_of_groups": f"per line and epoch each of {', '.join(GROUPS)} heard as all zeros (not known) "
                                   f"with probability {cfg.drop}; the measured controls heard as their defaults "
                                   f"(uniform key: not known) with probability {cfg.drop_measured}"}
    return split, source


def train_stage(cfg: StageConfig, backend: str | None = None) -> dict:
    """Train the stage model, keep the best epoch by validation NLL, export it with measured cards; resumable."""
    world = join(backend)
    split, source = world.main_first(lambda: load_stage_split(cfg))
    world.print(f"data: {json.dumps({p: {k: v for k, v in d.items() if k in ('pieces', 'lines', 'notes')} for p, d in describe(split).items()})}")
    train_lines = lines_of(split.train)
    valid = [example(a, role, style, key_shares=cfg.key_shares, measured=cfg.measured)
             for a, role, style in world.part(lines_of(split.valid))]

    heard_keys = cfg.measured == "before" and cfg.key_shares == "profile"
    key_rows = [key_profiles_before(a[:, 0]) if heard_keys else None for a, _, _ in train_lines]

    def epoch(rng: np.random.Generator):
        return (line_example(a, role, style, rng, cfg.drop, cfg.key_shares, cfg.measured, rows, cfg.drop_measured)
                for (a, role, style), rows in zip(train_lines, key_rows))

    model, state, best_path = fit(cfg, world, epoch, lambda m: evaluate_examples(m, valid, world))
    metrics = export_stage(model.cpu(), best_path, split, source, state, cfg) if world.main else {}
    world.finish()
    return metrics


def export_stage(model, best_path: Path, split: Split, source: dict, state: dict, cfg: StageConfig) -> dict:
    """The best epoch scored (torch), exported (fp32, int8), each card's NLL measured on its own graph."""
    import torch

    model.load_state_dict(torch.load(best_path, map_location="cpu"))
    examples = {part: [example(a, r, s, key_shares=cfg.key_shares, measured=cfg.measured)
                       for a, r, s in lines_of(getattr(split, part))]
                for part in ("valid", "test")}
    metrics = {"lstm": {part: evaluate_examples(model, ex) for part, ex in examples.items()}}
    metrics["lstm"].update(best_epoch=state["best_epoch"], history=state["history"], minutes=state["seconds"] / 60)
    print(f"held-out test NLL {metrics['lstm']['test']['nll']:.3f} (pitch {metrics['lstm']['test']['pitch_nll']:.3f})")
    info = {"training": {**source, "config": asdict(cfg)}, "metrics": metrics, "velocity_level_mean": 80.0}
    paths = export_measured(model, Path(cfg.out_dir), cfg.name, info, split, cfg)
    print("exported " + ", ".join(str(p) for p in paths))
    return metrics


def export_measured(model, out_dir: Path, name: str, info: dict, split: Split, cfg: StageConfig) -> list[Path]:
    """Both graphs (the first LSTM kept fp32 in int8) and their cards, measured on them; after training,
    and by `python -m realtime.training.reexport`."""
    from .stagecard import measure_stage_cards

    paths = export_all(model, out_dir, name, info, keep_fp32=(FIRST_LSTM,))
    measure_stage_cards(paths, split, key_shares=cfg.key_shares, measured=cfg.measured)
    return paths
