"""Lead sheet: a band (bass, chords, a melody if asked for) looping a chord progression while the player solos.

The progression is the patch's `[leadsheet] progression`, read when the patch loads. The band keeps the
patch's tempo (`[engine] tempo_bpm`): the lead sheet is the band's clock. With `follow_tempo`, the
listener's tempo while its tracker is locked (the player's playing, or a MIDI clock) instead, at the
grid's own metrical level (realtime/engine/bargrid.py). `start = "now"`: bar 1 begins as the mode does (a
lookahead after it); `"first_note"`: on the player's first note.

Planning (realtime/leadsheet/live.py): a bar's notes, in beats, are planned one bar ahead (as the bar
before it begins), so the melody's model steps are never on a note's way; each note is handed to the
output when its moment is `commit` away (the output's own lead plus `lookahead_ms`, never more than half a
beat), turned into a moment at the tempo of that time, with its note-off. The tick only walks a list.

A new progression (OSC `/leadsheet/progression`, or `/leadsheet/key` reading the one playing in another
key) is parsed when it arrives; a bad one is refused in one line and the old one plays on. A good one
plays from its first bar at the next bar line: the bar planned ahead is planned again. One arriving within
`commit` of a bar line, when that bar's first notes are already handed over, lands a bar later.

Stop, a mode switch and an error end every note (the scheduler's cancel: each sounding note gets its
note-off). The player's all-sound-off or all-notes-off (`silence`) end every note too, and the band
stops; it comes back on the player's next note, at the progression's first bar.
"""

from __future__ import annotations

import math

from ..clock import Clock
from ..errors import LeadSheetError
from ..events import Event, LeadSheetRequest, NoteMessage
from ..leadsheet.live import BarNote, BarPlanner
from ..leadsheet.midichords import read_progression
from ..leadsheet.progression import check_key
from ..listen import Listener
from ..listen.listener import warm_up as warm_listener
from ..scheduler import Scheduler
from ..stagesettings import LeadSheetSettings
from .bargrid import BarGrid
from .status import Figures, output_fields

LATE_NS = 30_000_000  # a note whose moment passed this long ago (a stall) is skipped, not played late
NEVER = -(1 << 62)


class LeadSheet:
    """The band over a progression on channels of its own, bar by bar, at the patch's tempo (or the player's)."""

    def __init__(self, settings: LeadSheetSettings, planner: BarPlanner, scheduler: Scheduler, clock: Clock,
                 listener: Listener | None, tempo_bpm: float = 100.0) -> None:
        self.settings, self.planner, self.scheduler, self.clock = settings, planner, scheduler, clock
        self.listener = listener
        self.beats_per_bar = planner.beats_per_bar
        self.grid = BarGrid(60e9 / tempo_bpm, self.beats_per_bar)
        self.channels = {"bass": settings.bass_channel, "chords": settings.chord_channel,
                         "melody": settings.melody_channel}
        self.key = settings.key  # what a progression without `in KEY` is read in (/leadsheet/key changes it)
        self.last_error: str | None = None
        self.running = False  # the band plays
        self.waiting = False  # for the player's first note (start = "first_note", or after `silence`)
        self._queue: list[BarNote] = []  # the notes planned, in onset order; those before _index handed over
        self._index = 0
        self._begun = -1  # the last bar whose first moment came within `commit`
        self._planned = -1  # the last bar planned
        self._free_at: dict[tuple[int, int], int] = {}  # (channel, pitch) -> its last note-off's deadline
        self._commit = 0
        self._wake: int | None = None
        self._until: int | None = None  # a live switch at this moment: nothing is handed over for it or later
        self.played = self.replaced = self.refused = self.skipped = self.errors = 0

    # --- hearing -----------------------------------------------------------------------------------
    def on_message(self, message: Event, at_ns: int) -> None:
        if self.waiting and isinstance(message, NoteMessage) and message.is_on:
            self.waiting = False  # bar 1 on the note; if it was heard late (a stall), a little later, not skipped
            self._start(max(at_ns, self.clock.now_ns() - LATE_NS // 2))

    def request_leadsheet(self, request: LeadSheetRequest, now_ns: int) -> None:
        """A new progression or key, parsed here (the engine's control path, never a tick); refused in one line."""
        key, text = self.key, self.planner.progression.text
        try:
            if request.what == "key":
                key = request.text.strip()
                check_key(key, "/leadsheet/key")
            else:
                text = request.text
            progression = read_progression(text, key, self.beats_per_bar, folder=self.settings.folder)[0]
        except LeadSheetError as err:
            self.refused += 1
            self.last_error = (f"/leadsheet/{request.what} refused ({str(err).removeprefix('leadsheet: ')}); "
                               f"{self.planner.progression.describe()} plays on")
            return
        self.key = key
        bar = self._begun + 1  # the next bar line; nothing of that bar is handed over yet
        self._drop_from(bar)
        self.planner.replace(progression, bar)
        self.replaced += 1
        self._replan(bar, now_ns)

    def request_style(self, name: str | None, now_ns: int, program: int | None = None) -> None:
        """`/style NAME` or a program change: the melody plays in it from the next bar line (that bar planned
        again); a lead sheet without a melody has no model to tell."""
        melody = self.planner.melody
        if melody is None:
            return
        bar = self._begun + 1 if self.running else 0
        refusal = melody.stage.by_program(program, bar) if name is None else melody.stage.request(name, bar)
        if refusal is not None:
            self.last_error = refusal
        elif self._planned >= bar:
            self._drop_from(bar)
            self.planner.undo(bar)
            self._replan(bar, now_ns)

    def _drop_from(self, bar: int) -> None:
        """The notes planned from this bar on, not handed over yet, are dropped (the bar is planned again)."""
        start = bar * self.beats_per_bar
        self._queue = self._queue[:self._index] + [n for n in self._queue[self._index:] if n.onset < start]

    def _replan(self, bar: int, now_ns: int) -> None:
        if self._planned >= bar:
            self._planned = bar - 1
            self._plan(bar)  # now, on the control path, not under the bar line
        self._wake = now_ns

    # --- deciding ----------------------------------------------------------------------------------
    def tick(self, now_ns: int) -> None:
        try:
            self._tick(now_ns)
        except Exception as err:  # a failing band ends its notes and says so once; the player goes on
            self.errors += 1
            self._end_notes()
            self.running = False
            if self.last_error is None:
                self.last_error = f"leadsheet failed ({type(err).__name__}: {str(err)[:120]}); its notes were ended"

    def _tick(self, now: int) -> None:
        if self.settings.follow_tempo and self.listener is not None:
            tempo = self.listener.snapshot(now).tempo
            if tempo.locked:
                self.grid.follow(tempo.ns_per_beat, tempo.anchor_ns, now)
        if not self.running:
            self._wake = None
            return
        self._commit = commit = self._commit_ns()
        self._hand_over(now, commit)
        if self._planned <= self._begun:
            self._plan(self._begun + 1)  # a bar ahead, after this bar's first notes went out
        self._wake = self._next_wake(commit)

    def _commit_ns(self) -> int:
        margin = self.scheduler.lead_ns + int(self.settings.lookahead_ms * 1e6)
        return min(margin, int(self.grid.ns_per_beat / 2))

    def _plan(self, bar: int) -> None:
        if self._index:  # what was handed over is gone from the list (once a bar)
            del self._queue[:self._index]
            self._index = 0
        self._queue += self.planner.plan(bar)
        self._planned = bar

    def _hand_over(self, now: int, commit: int) -> None:
        """Every note whose moment is within `commit`, with its note-off; the bars begun counted on the way."""
        grid, bpb, queue = self.grid, self.beats_per_bar, self._queue
        while True:
            while grid.time_of_bar(self._begun + 1) - commit <= now:
                self._begun += 1
                if self._planned < self._begun:  # (a stall let a whole bar pass)
                    self._plan(self._begun)
                    queue = self._queue
            if self._index >= len(queue):
                return
            note = queue[self._index]
            at = grid.time_of_bar(note.onset / bpb)
            if at - commit > now or (self._until is not None and at >= self._until):
                return
            self._index += 1
            if at < now - LATE_NS:
                self.skipped += 1
                continue
            channel = self.channels[note.part]
            key = (channel, note.pitch)
            on = max(at, now, self._free_at.get(key, NEVER))
            off = max(grid.time_of_bar(note.end / bpb), on + 1)
            self.scheduler.push(NoteMessage(note.pitch, note.velocity, channel), on)
            self.scheduler.push(NoteMessage(note.pitch, 0, channel), off)
            self._free_at[key] = off
            self.played += 1

    def _next_wake(self, commit: int) -> int:
        wake = self.grid.time_of_bar(self._begun + 1) - commit
        if self._index < len(self._queue):
            wake = min(wake, self.grid.time_of_bar(self._queue[self._index].onset / self.beats_per_bar) - commit)
        if self._until is not None and wake + commit >= self._until:
            return self._until  # what comes next is the switch's (the engine ticks the switch then)
        return wake

    def _start(self, at_ns: int) -> None:
        """Bar 0 (planned already) begins at this moment."""
        self.grid.start(at_ns)
        self.running, self._begun = True, -1
        self._wake = at_ns

    def _reset(self) -> None:
        """Back to bar 0 of the latest progression, planned at once (in beats: it waits for a moment to begin)."""
        self._end_notes()
        self.running = self.waiting = False
        self._until = None
        self._queue, self._index, self._begun, self._planned = [], 0, -1, -1
        self._free_at.clear()
        self.planner.reset()
        self._plan(0)

    def _end_notes(self) -> None:
        """Every note handed over and not yet played is taken back, every one sounding gets its note-off."""
        self.scheduler.cancel_all()

    # --- the engine's side -------------------------------------------------------------------------
    def next_deadline_ns(self) -> int | None:
        return self._wake

    def play_until(self, at_ns: int | None) -> None:
        """A live switch waits for this moment (None: asked back): no note from it on is handed over."""
        self._until = at_ns

    def next_bar_ns(self, now_ns: int) -> int | None:
        """The band's next bar line (a live switch waits for it); None while it does not play."""
        return self.grid.next_bar_ns(now_ns) if self.running else None

    def silence(self, now_ns: int) -> None:
        """The player's all-notes-off or all-sound-off: every note ends, the band stops until the next note."""
        self._reset()
        self.waiting, self._wake = True, None
        self.scheduler.dispatch_due(now_ns)

    def stop(self, now_ns: int) -> None:
        self._end_notes()
        self.running = self.waiting = False
        self._wake = self._until = None
        self.scheduler.dispatch_due(now_ns)

    def apply_control(self, target: str, value: float) -> None:
        """temperature and top_p ([[controls]]) change the melody's next bars."""
        melody = self.planner.melody
        if melody is not None and target in ("temperature", "top_p"):
            melody.generator.sampler.set(**{target: value})

    # --- the session's side (realtime/session.py), outside the loop -------------------------------
    def warm_up(self) -> None:
        """The listener's kernels run once now, not under the player's first note (which the engine always hands
        the listener, whatever the band follows); the melody's model was warmed when it was built."""
        if self.listener is not None:
            warm_listener(self.listener.settings)

    def begin(self, now_ns: int) -> None:
        """Started or switched to: bar 0 planned now, begun a lookahead from now (or at the player's first note)."""
        self._reset()
        if self.settings.start == "now":
            self._start(now_ns + self._commit_ns())
        else:
            self.waiting = True
        self._wake = now_ns

    def status_fields(self, figures: Figures, now_ns: int) -> list[str]:
        """In, out, the bar (and its place in the progression) and chord sounding, the tempo, notes played."""
        if not self.running:
            where = "leadsheet: waiting for your first note" if self.waiting else "leadsheet: stopped"
        else:
            bar = max(0, math.floor(self.grid.bar_at(now_ns)))
            place, progression = self.planner.place(bar)
            chord = self.planner.chord_at(self.grid.bar_at(now_ns) * self.beats_per_bar).name
            where = f"leadsheet bar {bar + 1} ({place + 1}/{progression.bars}) {chord}"
        parts = [f"in {figures.messages_in}", f"out {figures.sent}", where,
                 f"{self.grid.bpm:.1f} BPM from {self.grid.source}", f"notes {self.played}"]
        return parts + output_fields(figures, [f"progressions {self.replaced}"] if self.replaced else [])

    def drops(self) -> int:
        return 0  # the band hears the player only to start
