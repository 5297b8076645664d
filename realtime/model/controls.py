"""Control inputs of conditioned models: what each one means, its range, and how data defines it.

A conditioned model hears, with every note, a vector of controls describing the music around the
note it is about to predict. In training the controls are measured from the data itself over a
window of beats centred on that note; at run time the game mode sets them from game parameters.
Training and run time share this module, so the names, units and ranges cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..settings import RANGES
from .tokens import IOI_BEATS, VELOCITY_LEVELS

WINDOW_BEATS = 8.0  # controls describe the notes with onsets within +-4 beats of the predicted one


@dataclass(frozen=True, slots=True)
class ControlSpec:
    name: str
    unit: str
    low: float
    high: float
    default: float
    meaning: str


def _shared(name: str, neutral: float | None = None) -> ControlSpec:
    """A control the game mode sets too: its range, unit and meaning are the settings table's."""
    r = RANGES[name]
    return ControlSpec(name, r.unit, float(r.low), float(r.high), r.default if neutral is None else neutral, r.doc)


# `default` is what the model hears when nothing sets a control (training pads with it, the card lists it);
# for polyphony that is the corpus's chord size, where a game voice's default is single notes
CONTROLS: tuple[ControlSpec, ...] = (
    _shared("density"),
    _shared("polyphony", neutral=1.5),
    _shared("register"),
    _shared("dynamics"),
    *(ControlSpec(f"pc{i}", "share of notes", 0.0, 1.0, 1 / 12, f"share of notes with pitch class {i} (C=0)")
      for i in range(12)),
    ControlSpec("measured", "flag", 0.0, 1.0, 1.0,
                "1 when the controls above describe the music; 0 when nothing about it is known (they sit at "
                "their defaults then)"),
)

# What the stage models hear beyond the music around the note: the harmony sounding at its beat, the
# voice's role and the style. Each is 0/1; all zeros in a group means "not known" (training drops each
# group now and then, so a model plays sensibly without it). A model's card lists the controls it has;
# the run time looks every one up by name, so a model without a group simply lacks those names.
STYLES = ("chorale", "irish", "fiddle", "folk")
STYLE_CORPUS = {"chorale": "chorales", "irish": "oneills1850", "fiddle": "ryansMammoth", "folk": "essenFolksong"}
ROLES = ("melody", "bass", "inner", "texture")  # a line's role; texture = all parts at once (chords)
NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
CONTROLS += (
    *(ControlSpec(f"chord{i}", "sounding", 0.0, 1.0, 0.0,
                  f"1 when pitch class {i} ({NOTE_NAMES[i]}) sounds in the harmony at this note's beat")
      for i in range(12)),
    *(ControlSpec(f"root{i}", "one-hot", 0.0, 1.0, 0.0, f"1 when the harmony's root is {NOTE_NAMES[i]}")
      for i in range(12)),
    *(ControlSpec(f"role_{r}", "one-hot", 0.0, 1.0, 0.0, f"1 when this voice plays the {r} part") for r in ROLES),
    *(ControlSpec(f"style_{s}", "one-hot", 0.0, 1.0, 0.0, f"1 for music in the {s} style ({STYLE_CORPUS[s]})")
      for s in STYLES),
)
CONTROL_NAMES = tuple(c.name for c in CONTROLS)
N_CONTROLS = len(CONTROLS)
INDEX = {name: i for i, name in enumerate(CONTROL_NAMES)}
PITCH_CLASS_SLICE = slice(INDEX["pc0"], INDEX["pc0"] + 12)
CHORD_SLICE = slice(INDEX["chord0"], INDEX["chord0"] + 12)
ROOT_SLICE = slice(INDEX["root0"], INDEX["root0"] + 12)
ROLE_SLICE = slice(INDEX[f"role_{ROLES[0]}"], INDEX[f"role_{ROLES[0]}"] + len(ROLES))
STYLE_SLICE = slice(INDEX[f"style_{STYLES[0]}"], INDEX[f"style_{STYLES[0]}"] + len(STYLES))
MEASURED = INDEX["measured"] + 1  # measure() fills the first MEASURED controls; the data says the rest
LOW = np.array([c.low for c in CONTROLS], dtype=np.float32)
HIGH = np.array([c.high for c in CONTROLS], dtype=np.float32)
DEFAULTS = np.array([c.default for c in CONTROLS], dtype=np.float32)

_IOI = np.asarray(IOI_BEATS)
_VELOCITY = np.asarray(VELOCITY_LEVELS, dtype=np.float64)


def describe() -> list[dict]:
    """The controls as plain data, for a model card (index = position in the control vector)."""
    return [{"index": i, "name": c.name, "unit": c.unit, "low": c.low, "high": c.high, "default": c.default,
             "meaning": c.meaning} for i, c in enumerate(CONTROLS)]


def measure(tokens: np.ndarray, velocities: np.ndarray | None = None) -> np.ndarray:
    """Controls (n, N_CONTROLS) for each note of a token array, over +-WINDOW_BEATS/2 around its onset.

    Fills the first MEASURED controls; harmony, role and style stay at their defaults (not known).

    `velocities` (MIDI values per note) overrides the velocity buckets, e.g. after augmentation.
    """
    n = len(tokens)
    onsets = np.cumsum(_IOI[tokens[:, 1]])
    velocity = _VELOCITY[tokens[:, 3]] if velocities is None else np.asarray(velocities, dtype=np.float64)
    half = WINDOW_BEATS / 2
    lo = np.searchsorted(onsets, onsets - half, side="left")
    hi = np.searchsorted(onsets, onsets + half, side="left")
    count = np.maximum(hi - lo, 1)
    new_onset = np.ones(n, dtype=np.float64)
    new_onset[1:] = np.diff(onsets) > 1e-9
    def window_sum(values: np.ndarray) -> np.ndarray:
        cumulative = np.concatenate([np.zeros((1, *values.shape[1:])), np.cumsum(values, axis=0)])
        return cumulative[hi] - cumulative[lo]
    span = np.maximum(np.minimum(onsets + half, onsets[-1] + 1.0) - np.maximum(onsets - half, 0.0), 1.0)
    onset_count = np.maximum(window_sum(new_onset), 1.0)
    out = np.tile(DEFAULTS, (n, 1))  # harmony, role and style: not measurable from the notes alone
    out[:, INDEX["density"]] = onset_count / span
    out[:, INDEX["polyphony"]] = (hi - lo) / onset_count
    out[:, INDEX["register"]] = window_sum(tokens[:, 0].astype(np.float64)) / count
    out[:, INDEX["dynamics"]] = window_sum(velocity) / count
    one_hot = np.zeros((n, 12))
    one_hot[np.arange(n), tokens[:, 0] % 12] = 1.0
    out[:, PITCH_CLASS_SLICE] = window_sum(one_hot) / count[:, None]
    return np.clip(out, LOW, HIGH)


def forget_measured(rows: np.ndarray) -> np.ndarray:
    """The measured controls of some rows set, in place, to their defaults (the uniform key among them) and flagged
    not known: what a model hears when nothing about the music is known (`realtime train --stage --drop-measured`).
    Returns rows."""
    rows[..., :MEASURED] = DEFAULTS[:MEASURED]
    rows[..., INDEX["measured"]] = 0.0
    return rows


def measure_before(tokens: np.ndarray, velocities: np.ndarray | None = None) -> np.ndarray:
    """The measured controls as a listener could know them: over the notes before each one (earlier in the
    line, onsets within the WINDOW_BEATS before its onset), never the note itself or what follows.

    `measure` describes the window around the note, the note included, as training does; this is what the
    run time can give (the duet measures the phrase already played), so a held-out NLL under these rows
    can be set beside an unconditioned model's. A first note (nothing before it) hears them not known.
    """
    n = len(tokens)
    onsets = np.cumsum(_IOI[tokens[:, 1]])
    velocity = _VELOCITY[tokens[:, 3]] if velocities is None else np.asarray(velocities, dtype=np.float64)
    lo = np.searchsorted(onsets, onsets - WINDOW_BEATS, side="left")
    hi = np.arange(n)  # notes 0..i-1 only
    lo = np.minimum(lo, hi)
    count = hi - lo
    new_onset = np.ones(n, dtype=np.float64)
    new_onset[1:] = np.diff(onsets) > 1e-9
    def window_sum(values: np.ndarray) -> np.ndarray:
        cumulative = np.concatenate([np.zeros((1, *values.shape[1:])), np.cumsum(values, axis=0)])
        return cumulative[hi] - cumulative[lo]
    first = onsets[lo]  # the window's first onset: the span runs from it to this note's onset
    span = np.maximum(onsets - first, 1.0)
    heard = count > 0
    # the window's first note starts an onset even when it shares one with the note before the window
    onset_count = np.maximum(window_sum(new_onset) + heard * (1.0 - new_onset[np.minimum(lo, n - 1)]), 1.0)
    out = np.tile(DEFAULTS, (n, 1))
    safe = np.maximum(count, 1)
    one_hot = np.zeros((n, 12))
    one_hot[np.arange(n), tokens[:, 0] % 12] = 1.0
    measured = np.empty((n, MEASURED))
    measured[:, INDEX["density"]] = onset_count / span
    measured[:, INDEX["polyphony"]] = count / onset_count
    measured[:, INDEX["register"]] = window_sum(tokens[:, 0].astype(np.float64)) / safe
    measured[:, INDEX["dynamics"]] = window_sum(velocity) / safe
    measured[:, PITCH_CLASS_SLICE] = window_sum(one_hot) / safe[:, None]
    measured[:, INDEX["measured"]] = 1.0
    out[heard, :MEASURED] = measured[heard]
    out[~heard] = forget_measured(out[~heard])  # nothing heard yet: not known
    return np.clip(out, LOW, HIGH)


# Krumhansl-Kessler key profiles: how often music in a key uses each degree, as a listener hears it
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def key_histogram(pitch_classes: frozenset[int] | None, tonic: int | None = None, minor: bool = False) -> np.ndarray:
    """A pitch-class share vector for a key: the profile's weights on the scale's degrees, summing to 1."""
    if pitch_classes is None:
        return np.full(12, 1 / 12, dtype=np.float32)
    weights = np.zeros(12)
    profile = MINOR_PROFILE if minor else MAJOR_PROFILE
    root = tonic if tonic is not None else min(pitch_classes)
    for pc in pitch_classes:
        weights[pc] = profile[(pc - root) % 12]
    return (weights / weights.sum()).astype(np.float32)


def styles_of(index: dict[str, int]) -> tuple[str, ...]:
    """The styles a model's card lists (its `style_NAME` controls), in card order."""
    return tuple(name[6:] for name in sorted(index, key=index.get) if name.startswith("style_"))


def roles_of(index: dict[str, int]) -> tuple[str, ...]:
    return tuple(name[5:] for name in sorted(index, key=index.get) if name.startswith("role_"))


def set_one_hot(row: np.ndarray, index: dict[str, int], prefix: str, name: str | None) -> None:
    """Write a one-hot group (`style_`, `role_`) into a control row in place; None clears it (not known).

    Names the model lacks are the caller's to refuse (styles_of/roles_of); here they clear the group.
    """
    for key, i in index.items():
        if key.startswith(prefix):
            row[i] = 1.0 if name is not None and key == prefix + name else 0.0


def set_harmony(row: np.ndarray, index: dict[str, int], pitch_classes, root: int | None) -> None:
    """Write the harmony sounding now (pitch classes 0-11, its root) into a control row in place.

    An empty set and no root clear it (no harmony heard). A model without harmony controls is left alone.
    """
    if "chord0" not in index:
        return
    chord, first_root = index["chord0"], index["root0"]
    row[chord:chord + 12] = 0.0
    row[first_root:first_root + 12] = 0.0
    for pc in pitch_classes:
        row[chord + pc % 12] = 1.0
    if root is not None:
        row[first_root + root % 12] = 1.0
