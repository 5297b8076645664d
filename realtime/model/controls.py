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
)
CONTROL_NAMES = tuple(c.name for c in CONTROLS)
N_CONTROLS = len(CONTROLS)
INDEX = {name: i for i, name in enumerate(CONTROL_NAMES)}
PITCH_CLASS_SLICE = slice(INDEX["pc0"], INDEX["pc0"] + 12)
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
    out = np.empty((n, N_CONTROLS), dtype=np.float32)
    out[:, INDEX["density"]] = onset_count / span
    out[:, INDEX["polyphony"]] = (hi - lo) / onset_count
    out[:, INDEX["register"]] = window_sum(tokens[:, 0].astype(np.float64)) / count
    out[:, INDEX["dynamics"]] = window_sum(velocity) / count
    one_hot = np.zeros((n, 12))
    one_hot[np.arange(n), tokens[:, 0] % 12] = 1.0
    out[:, PITCH_CLASS_SLICE] = window_sum(one_hot) / count[:, None]
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
