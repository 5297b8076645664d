"""The cockpit: `realtime run PATCH --view`, a terminal view (Textual) that works over SSH.

A scrolling piano roll (the player's notes, the engine's, and the notes it has committed but not
yet played: the plan ahead, to the right of the now line), the chord and key of what sounds, tempo
and bar, controls with their values and bindings, the latency histogram, misses and drops.

It never slows the engine: a 10 Hz timer copies the taps' rings (realtime/taps.py), the
scheduler's queue and a few counters, and draws from the copies; nothing here takes a lock the
engine or the output thread waits on. Keys: q quits (the engine stops with every note off),
up/down choose a control, l learns it (the next moved MIDI controller is bound to it).
"""

from __future__ import annotations

import threading
import time

import numpy as np
from rich.text import Text
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Static

from .events import LearnRequest, NoteMessage
from .settings import CONTROL_TARGETS
from .taps import Taps

NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
CHORDS = {(0, 4, 7): "", (0, 3, 7): "m", (0, 3, 6): "dim", (0, 4, 8): "aug", (0, 4, 7, 10): "7",
          (0, 4, 7, 11): "maj7", (0, 3, 7, 10): "m7", (0, 5, 7): "sus4", (0, 2, 7): "sus2", (0, 7): "5"}
# Krumhansl-Kessler key profiles (major, minor), tonic first
MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
LATENESS_BINS_MS = (0.25, 0.5, 1.0, 2.0, 4.0)
GLYPHS = {"player": ("█", "bold cyan"), "engine": ("▓", "green"), "planned": ("░", "yellow")}


def note_name(pitch: int) -> str:
    return f"{NAMES[pitch % 12]}{pitch // 12 - 1}"


def chord_name(pitches: set[int] | list[int]) -> str:
    """The chord the pitch classes make (root and quality), or the pitch classes if none fits."""
    classes = sorted({p % 12 for p in pitches})
    if not classes:
        return "-"
    for root in classes:
        shape = tuple(sorted((c - root) % 12 for c in classes))
        if shape in CHORDS:
            return NAMES[root] + CHORDS[shape]
    return " ".join(NAMES[c] for c in classes)


def key_estimate(pitches: list[int]) -> str:
    """The key whose profile best correlates with the pitch-class histogram (Krumhansl-Schmuckler)."""
    if len(pitches) < 3:
        return "-"
    histogram = np.bincount(np.asarray(pitches) % 12, minlength=12).astype(float)
    if histogram.std() == 0:
        return "-"
    best = max(((np.corrcoef(histogram, np.roll(profile, tonic))[0, 1], tonic, mode)
                for tonic in range(12) for profile, mode in ((MAJOR, "major"), (MINOR, "minor"))))
    return f"{NAMES[best[1]]} {best[2]}"


def intervals(ring: list[tuple[int, int, int, int]], now_ns: int) -> list[tuple[int, int, int]]:
    """(start, end, pitch) of each note in a ring of on/off messages; a note still held ends now."""
    held, out = {}, []
    for at_ns, pitch, velocity, channel in ring:
        key = (channel, pitch)
        if key in held:
            out.append((held.pop(key), at_ns, pitch))
        if velocity > 0:
            held[key] = at_ns
    return out + [(start, now_ns, key[1]) for key, start in held.items()]


def planned_intervals(planned: list[tuple[int, NoteMessage]]) -> list[tuple[int, int, int]]:
    """(start, end, pitch) of each committed note-on not yet played, ending at its planned note-off."""
    out, open_notes = [], {}
    for deadline, message in planned:
        key = (message.channel, message.pitch)
        if message.is_on:
            open_notes[key] = deadline
        elif key in open_notes:
            out.append((open_notes.pop(key), deadline, message.pitch))
    return out + [(start, start + 250_000_000, key[1]) for key, start in open_notes.items()]


def piano_roll(notes: dict[str, list[tuple[int, int, int]]], now_ns: int, width: int = 72, rows: int = 16,
               ms_per_col: float = 50.0) -> Text:
    """Time runs left to right, the now line at two thirds; rows are pitches around what is visible."""
    now_col = width * 2 // 3
    ns_per_col = ms_per_col * 1e6
    first_ns = now_ns - now_col * ns_per_col
    visible = [(kind, s, e, p) for kind, spans in notes.items() for s, e, p in spans
               if e >= first_ns and s <= first_ns + width * ns_per_col]
    pitches = [p for *_, p in visible] or [60]
    middle = (min(pitches) + max(pitches)) // 2
    low = min(min(pitches), max(0, middle - rows // 2))
    high = max(max(pitches), low + rows - 1)
    if high - low + 1 > rows:  # more than fits: keep the newest notes in view
        low = max(0, min(pitches[-1], high) - rows // 2)
        high = low + rows - 1
    grid = [[(" ", "")] * width for _ in range(high - low + 1)]
    for row in grid:
        row[now_col] = ("│", "dim")
    for kind in ("player", "engine", "planned"):
        glyph = GLYPHS[kind]
        for kind_, start, end, pitch in visible:
            if kind_ != kind or not low <= pitch <= high:
                continue
            a = max(0, int((start - first_ns) // ns_per_col))
            b = min(width - 1, int((end - first_ns) // ns_per_col))
            for col in range(a, max(a, b) + 1):
                grid[high - pitch][col] = glyph
    text = Text()
    for i, row in enumerate(grid):
        text.append(f"{note_name(high - i):>4} ", style="dim")
        for glyph, style in row:
            text.append(glyph, style=style)
        text.append("\n")
    text.append("     " + " " * now_col + "now", style="dim")
    return text


def lateness_histogram(lateness_ns: np.ndarray) -> str:
    """Output lateness per note, binned in ms: one bar per bin."""
    if not len(lateness_ns):
        return "no notes sent yet"
    ms = np.abs(lateness_ns) / 1e6
    edges = (0.0, *LATENESS_BINS_MS, np.inf)
    counts = np.histogram(ms, bins=edges)[0]
    lines = []
    for low, high, count in zip(edges[:-1], edges[1:], counts):
        label = f"<{high:g} ms" if np.isfinite(high) else f">{low:g} ms"
        lines.append(f"{label:>9} {'■' * int(np.ceil(24 * count / max(counts.max(), 1)))} {count}")
    return "\n".join(lines)


class Cockpit(App):
    """The live view over one LiveEngine: draws from copies, never from the engine's own structures."""

    CSS = """
    #roll { height: auto; border: round $accent; }
    #side { width: 38; }
    .panel { border: round $panel; height: auto; }
    """
    BINDINGS = [("q", "quit_engine", "quit (all notes off)"), ("up", "select(-1)", "control up"),
                ("down", "select(1)", "control down"), ("l", "learn", "MIDI learn")]

    def __init__(self, live, taps: Taps, stop: threading.Event | None = None, recorder=None,
                 duration_s: float | None = None, refresh_s: float = 0.1) -> None:
        super().__init__()
        self.live, self.taps, self.stop, self.recorder = live, taps, stop, recorder
        self.duration_s, self.refresh_s = duration_s, refresh_s
        self.started = time.monotonic()
        self.targets = list(CONTROL_TARGETS)
        self.selected = 0
        self.messages: list[str] = []

    def compose(self) -> ComposeResult:
        with Horizontal():
            with Vertical():
                yield Static(id="roll")
                yield Static(id="status", classes="panel")
                yield Static(id="log", classes="panel")
            with Vertical(id="side"):
                yield Static(id="music", classes="panel")
                yield Static(id="controls", classes="panel")
                yield Static(id="latency", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"realtime: {self.live.patch.path}"
        self.refresh_view()
        self.set_interval(self.refresh_s, self.refresh_view)

    # --- drawing, from copies ------------------------------------------------------------------------
    def refresh_view(self) -> None:
        live, mode = self.live, self.live.mode
        now = live.clock.now_ns()
        player, engine, planned = self.taps.player.snapshot(), self.taps.engine.snapshot(), self.taps.planned()
        upcoming = [(d, m) for d, m in planned if d > now]
        widget = self.query_one("#roll")
        width = widget.size.width - 7 if widget.size.width > 40 else max(24, self.size.width - 48)
        widget.update(piano_roll(
            {"player": intervals(player, now), "engine": intervals(engine, now),
             "planned": planned_intervals(upcoming)}, now, width=width))
        sounding = {p for s, e, p in intervals(player, now) + intervals(engine, now) if e >= now}
        recent = [p for _, p, v, _ in (player + engine)[-48:] if v > 0]
        tempo_bpm, beat = self._tempo(now)
        bar_line = f"bar {int(beat // 4) + 1} beat {int(beat % 4) + 1}" if beat is not None else ""
        self.query_one("#music").update(
            f"chord  {chord_name(sounding)}\nkey    {key_estimate(recent)}\ntempo  {tempo_bpm:.1f} BPM  {bar_line}\n"
            f"planned {sum(m.is_on for _, m in upcoming)} notes ahead")
        self.query_one("#controls").update(self._controls_text())
        s = live.scheduler
        n = min(s.sent_count, len(s.lateness_ns))
        answers = np.array(getattr(mode, "answer_latency_ns", [])[-200:]) / 1e6
        answer = (f"answer p50 {np.percentile(answers, 50):.2f} ms p99 {np.percentile(answers, 99):.2f} ms"
                  if len(answers) else "no answer yet")
        self.query_one("#latency").update(f"output lateness\n{lateness_histogram(s.lateness_ns[:n])}\n{answer}")
        self.query_one("#status").update(
            f"misses {s.late_count}  drops {live.dropped()}  fallback notes {getattr(mode, 'fallback_notes', 0)}"
            f"\n{live.status()}")
        self._housekeeping()

    def _tempo(self, now_ns: int) -> tuple[float, float | None]:
        tempo = getattr(self.live.mode, "tempo", None)
        if tempo is not None and hasattr(tempo, "beat_at"):
            return tempo.tempo_bpm, tempo.beat_at(now_ns)
        settings = getattr(self.live.mode, "settings", None)
        bpm = getattr(settings, "tempo_bpm", self.live.patch.engine.tempo_bpm)
        origin = getattr(self, "_origin_ns", None)
        if origin is None:
            origin = self._origin_ns = now_ns
        return bpm, (now_ns - origin) * bpm / 60e9

    def _controls_text(self) -> Text:
        engine, live = self.live.engine, self.live
        sampler = getattr(getattr(live, "generator", None), "sampler", None)
        settings = getattr(live.mode, "settings", None)
        values = {"temperature": getattr(sampler, "temperature", None), "top_p": getattr(sampler, "top_p", None),
                  "answer_notes": getattr(settings, "answer_notes", None),
                  "phrase_end_ms": getattr(settings, "phrase_end_ms", None),
                  "blend": getattr(getattr(live.mode, "memory", None), "blend", None),
                  "key_pull": getattr(settings, "key_pull", None)}
        text = Text("controls (up/down, l: learn)\n", style="bold")
        for i, target in enumerate(self.targets):
            sources = [m.source for ms in list(engine.controls.values()) for m in ms if m.target == target]
            value = values.get(target)
            shown = "-" if value is None else f"{value:.3g}"
            marker = ">" if i == self.selected else " "
            learning = "  learning: move a controller" if engine.learning == target else ""
            text.append(f"{marker} {target:<14}{shown:>7}  {', '.join(sources)}{learning}\n",
                        style="reverse" if i == self.selected else "")
        return text

    def _housekeeping(self) -> None:
        from .learn import save_learned

        self.messages += self.live.supervise()
        for line in save_learned(self.live):
            self.messages.append(line)
        if self.recorder is not None:
            self.recorder.flush()
        self.query_one("#log").update("\n".join(self.messages[-4:]) or "no warnings")
        stopped = self.stop is not None and self.stop.is_set()
        if stopped or (self.duration_s is not None and time.monotonic() - self.started >= self.duration_s):
            self.exit()

    # --- keys -----------------------------------------------------------------------------------------
    def action_select(self, step: int) -> None:
        self.selected = (self.selected + step) % len(self.targets)
        self.query_one("#controls").update(self._controls_text())

    def action_learn(self) -> None:
        """Ask the engine, through its own inbox, to bind the next moved controller to the selected control."""
        self.live.engine._hear(LearnRequest(self.targets[self.selected]), self.live.clock.now_ns())
        self.messages.append(f"learning {self.targets[self.selected]}: move a MIDI controller")

    def action_quit_engine(self) -> None:
        self.exit()


def run_view(live, stop: threading.Event, taps: Taps, recorder=None, duration_s: float | None = None) -> None:
    """Show the cockpit until q, SIGTERM (`stop`) or `duration_s`; the caller then stops the engine."""
    Cockpit(live, taps, stop, recorder, duration_s).run()
