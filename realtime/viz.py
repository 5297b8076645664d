"""Pictures of note events: a piano roll to see at a glance what was played and answered."""

from __future__ import annotations

from pathlib import Path

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(pitch: int) -> str:
    """MIDI pitch as scientific pitch notation (60 is C4), for readable axis labels."""
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def piano_roll(
    path: str | Path,
    layers: list[tuple[str, list[tuple[float, float, int, int]], str]],
    title: str = "",
) -> None:
    """Draw (label, notes, colour) layers of (onset_s, duration_s, pitch, velocity) notes to a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle

    notes = [note for _, layer, _ in layers for note in layer]
    low = min((p for _, _, p, _ in notes), default=60) - 2
    high = max((p for _, _, p, _ in notes), default=72) + 2
    end = max((onset + duration for onset, duration, _, _ in notes), default=1.0)

    figure = Figure(figsize=(max(6.0, min(24.0, 2.0 + 1.5 * end)), max(3.0, min(12.0, 0.18 * (high - low)))), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for pitch in range(low, high + 1):  # shade black keys so rows are easy to follow
        if pitch % 12 in (1, 3, 6, 8, 10):
            axes.axhspan(pitch - 0.5, pitch + 0.5, color="0.93", zorder=0)
    handles = []
    for label, layer, colour in layers:
        for onset, duration, pitch, velocity in layer:
            alpha = 0.25 + 0.75 * max(0, min(127, velocity)) / 127.0
            axes.add_patch(
                Rectangle((onset, pitch - 0.4), duration, 0.8, facecolor=colour, edgecolor=colour, alpha=alpha, lw=0.6)
            )
        handles.append(Patch(facecolor=colour, edgecolor=colour, label=f"{label} ({len(layer)})"))

    axes.set_xlim(0.0, end * 1.02 + 0.05)
    axes.set_ylim(low - 0.5, high + 0.5)
    c_rows = [p for p in range(low, high + 1) if p % 12 == 0] or [low]
    axes.set_yticks(c_rows, [note_name(p) for p in c_rows])
    axes.grid(axis="x", color="0.85", lw=0.5)
    axes.set_xlabel("time (s)")
    axes.set_ylabel("pitch")
    if title:
        axes.set_title(title)
    if handles:
        axes.legend(handles=handles, loc="upper right", fontsize="small")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
