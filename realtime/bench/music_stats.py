"""Musical statistics of note sequences, and how far one set of pieces lies from another.

Standard metrics come from muspy (0.5): pitch-class entropy, scale consistency, polyphony and pitch
range, computed on a muspy.Music built from our tokens (24 ticks per beat, so every onset and
duration bucket, triplets included, lands on a tick). Our own formulas, stated here:

 - melodic intervals: the skyline (highest pitch at each distinct onset), successive differences,
   clipped to +-12 semitones: a 25-bin histogram pooled over a set's pieces;
 - inter-onset histogram: the onset bucket of every note (bucket 0 = a chord tone), 15 bins, pooled;
 - Jensen-Shannon divergence between two pooled histograms, in bits (0 = identical, 1 = disjoint):
   JS(p, q) = (KL(p || m) + KL(q || m)) / 2 with m = (p + q) / 2;
 - overlap area of two sets' per-piece values of a metric (MGEval's idea): the integral of the
   pointwise minimum of their Gaussian kernel density estimates (scipy, Scott's bandwidth);
   1 = the same distribution, 0 = no overlap.
"""

from __future__ import annotations

import numpy as np

from ..listen.keys import KeyTracker
from ..model.sampling import SCALES
from ..model.tokens import DURATION_BEATS, IOI_BEATS

TICKS_PER_BEAT = 24
INTERVAL_CLIP = 12
MUSPY_METRICS = ("pitch_class_entropy", "scale_consistency", "polyphony", "pitch_range")
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy 2 renamed it


def key_of(pitches) -> frozenset[int]:
    """The scale (pitch classes) of the key the listener's tracker hears in these pitches, all equally recent."""
    tracker = KeyTracker(decay_s=1e9, margin=0.0)
    for i, p in enumerate(pitches):
        tracker.add(int(p) % 12, i)
    tonic, mode, _ = tracker.estimate()
    return frozenset((tonic + d) % 12 for d in SCALES[mode]) if tonic is not None else frozenset(range(12))


def to_muspy(tokens: np.ndarray):
    """Tokens (n, 4) as a one-track muspy.Music at 24 ticks per beat."""
    import muspy

    onsets = np.cumsum(np.asarray(IOI_BEATS)[tokens[:, 1]])
    onsets -= onsets[0]
    notes = [muspy.Note(time=int(round(t * TICKS_PER_BEAT)), pitch=int(p),
                        duration=max(1, int(round(DURATION_BEATS[d] * TICKS_PER_BEAT))), velocity=80)
             for t, p, d in zip(onsets, tokens[:, 0], tokens[:, 2])]
    return muspy.Music(resolution=TICKS_PER_BEAT, tracks=[muspy.Track(notes=notes)])


def muspy_metrics(tokens: np.ndarray) -> dict[str, float]:
    import muspy

    music = to_muspy(tokens)
    return {name: float(getattr(muspy, name)(music)) for name in MUSPY_METRICS}


def skyline_intervals(tokens: np.ndarray) -> np.ndarray:
    """Successive intervals of the highest pitch at each distinct onset (our own definition)."""
    tops, current = [], None
    for pitch, ioi in zip(tokens[:, 0].tolist(), tokens[:, 1].tolist()):
        if ioi == 0 and current is not None:
            current = max(current, pitch)
            tops[-1] = current
        else:
            current = pitch
            tops.append(pitch)
    return np.diff(np.asarray(tops, dtype=np.int64))


def interval_histogram(pieces: list[np.ndarray]) -> np.ndarray:
    """Pooled skyline intervals, clipped to +-12, as a probability over 25 bins (-12..12)."""
    counts = np.zeros(2 * INTERVAL_CLIP + 1)
    for tokens in pieces:
        steps = np.clip(skyline_intervals(tokens), -INTERVAL_CLIP, INTERVAL_CLIP) + INTERVAL_CLIP
        counts += np.bincount(steps, minlength=len(counts))
    return counts / max(counts.sum(), 1)


def ioi_histogram(pieces: list[np.ndarray]) -> np.ndarray:
    """Pooled onset buckets of every note (0 = chord tone) as a probability over 15 bins."""
    counts = np.zeros(len(IOI_BEATS))
    for tokens in pieces:
        counts += np.bincount(tokens[:, 1], minlength=len(counts))
    return counts / max(counts.sum(), 1)


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits between two probability vectors of the same length."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return max(0.0, (kl(p) + kl(q)) / 2)


def overlap_area(a, b, points: int = 2048) -> float:
    """Integral of min(KDE_a, KDE_b): how much two samples' distributions overlap (0..1)."""
    from scipy.stats import gaussian_kde

    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    span = max(a.max(), b.max()) - min(a.min(), b.min())
    if span == 0:
        return 1.0

    def kde(x: np.ndarray):
        if np.ptp(x) == 0:  # every value equal: a narrow bump instead of a singular kernel
            x = x + np.random.default_rng(0).normal(0, span * 1e-3, len(x))
        return gaussian_kde(x)

    ka, kb = kde(a), kde(b)
    margin = 5 * float(np.sqrt(max(ka.covariance[0, 0], kb.covariance[0, 0])))  # the tails, to 5 bandwidths
    grid = np.linspace(min(a.min(), b.min()) - margin, max(a.max(), b.max()) + margin, points)
    return float(np.clip(_trapezoid(np.minimum(ka(grid), kb(grid)), grid), 0.0, 1.0))


def describe(pieces: list[np.ndarray]) -> dict:
    """Per-piece muspy metrics (kept for overlaps) with their means, and the pooled histograms."""
    per_piece = {name: [] for name in MUSPY_METRICS}
    for tokens in pieces:
        for name, value in muspy_metrics(tokens).items():
            per_piece[name].append(value)
    out = {"pieces": len(pieces), "notes": int(sum(len(t) for t in pieces)), "per_piece": per_piece}
    for name, values in per_piece.items():
        finite = np.asarray(values, float)
        finite = finite[np.isfinite(finite)]
        out[name] = {"mean": round(float(finite.mean()), 4) if len(finite) else None,
                     "sd": round(float(finite.std()), 4) if len(finite) else None}
    out["interval_histogram"] = np.round(interval_histogram(pieces), 5).tolist()
    out["ioi_histogram"] = np.round(ioi_histogram(pieces), 5).tolist()
    return out


def distance(candidate: dict, reference: dict) -> dict:
    """How far a described set lies from a reference set (both from `describe`)."""
    out = {}
    for name in ("pitch_class_entropy", "scale_consistency"):
        out[f"{name}_overlap"] = round(overlap_area(candidate["per_piece"][name], reference["per_piece"][name]), 4)
        out[f"{name}_mean_diff"] = round(candidate[name]["mean"] - reference[name]["mean"], 4)
    out["interval_js_bits"] = round(js_divergence(candidate["interval_histogram"], reference["interval_histogram"]), 4)
    out["ioi_js_bits"] = round(js_divergence(candidate["ioi_histogram"], reference["ioi_histogram"]), 4)
    return out
