"""The status line `realtime run` prints: what the session counts, and what each mode adds to it.

The session measures `Figures` (messages in, notes out, output jitter, misses, drops: engine,
scheduler and ports); each mode's `status_fields` picks its line from them and its own counts,
with the formatting here, so the session joins fields without knowing which mode runs. Called
outside the loop, a few times a second; never from a tick.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ANSWER_HISTORY = 200  # answers the latency percentiles look back over


@dataclass(frozen=True, slots=True)
class Figures:
    """What the session counted so far, for a mode's status fields."""

    messages_in: int  # messages the engine took from its inputs
    sent: int  # messages the output thread sent
    misses: int  # notes handed over late, or written after their frame by a port that keeps time
    dropped: int  # input refused: bad or foreign OSC, kernel overflow, a full inbox
    jitter_ms: np.ndarray | None  # |sent - deadline| of the sent notes still in the scheduler's record


def measure(scheduler, messages_in: int, misses: int, dropped: int) -> Figures:
    """Figures from the note scheduler's record and the session's counts."""
    n = min(scheduler.sent_count, len(scheduler.lateness_ns))
    jitter = np.abs(scheduler.lateness_ns[:n]) / 1e6 if n else None
    return Figures(messages_in, scheduler.sent_count, misses, dropped, jitter)


def continuation_fields(mode, figures: Figures) -> list[str]:
    """In and out, phrases, the memory's blend (when on), answer latency, output jitter, misses, fallback notes, drops."""
    answers = np.array(mode.answer_latency_ns[-ANSWER_HISTORY:]) / 1e6
    parts = [f"in {figures.messages_in}", f"out {figures.sent}", f"phrases {mode.phrases}"]
    if mode.memory.blend > 0:
        parts.append(f"blend {mode.memory.blend:.2f}")
    if shaped := mode.shape.describe():  # the rhythm prompt and mood the answers play in
        parts.append(shaped)
    if styled := mode.follow.stage.describe():  # a stage model's style (engine/stagecontrols.py)
        parts.append(styled)
    if len(answers):
        parts.append(f"answer latency p50 {np.percentile(answers, 50):.2f} ms p99 {np.percentile(answers, 99):.2f} ms")
    return parts + output_fields(figures, [f"fallback notes {mode.fallback_notes}"] if mode.fallback_notes else [])


def output_fields(figures: Figures, extra: list[str] | None = None) -> list[str]:
    """What every mode that plays notes ends its line with: output jitter, misses, its own extras, drops."""
    parts = [] if figures.jitter_ms is None else [f"jitter p99 {np.percentile(figures.jitter_ms, 99):.2f} ms"]
    parts += [f"misses {figures.misses}", *(extra or [])]
    return parts + ([f"dropped {figures.dropped}"] if figures.dropped else [])


def game_fields(mode, figures: Figures, now_ns: int) -> list[str]:
    """Out, section (and the one pending), bar, tempo, layers, parameters, tick cost, misses."""
    pending = f" -> {mode.pending[0].name}" if mode.pending else ""
    bar = int(mode.tempo.beat_at(now_ns) // mode.game.beats_per_bar) if mode.running else "-"
    parts = [f"out {figures.sent}", f"section {mode.state.name}{pending}", f"bar {bar}",
             f"{mode.tempo.tempo_bpm:.0f} BPM", "layers " + ",".join(v.settings.name for v in mode.voices if v.active),
             " ".join(f"{name} {p.target:.2f}" for name, p in mode.params.items())]
    if styled := mode.stage.describe():  # the session's style (a state naming its own plays in that one)
        parts.append(styled + (f" (section: {mode.state.style})" if mode.state.style else ""))
    n = min(mode.ticks, len(mode.tick_ns))
    if n:
        parts.append(f"tick p99 {np.percentile(mode.tick_ns[:n], 99) / 1e6:.2f} ms")
    parts.append(f"misses {figures.misses}")
    return parts
