"""Trading bars: the player plays `bars` bars, the engine answers for as many, on the bar lines, and so on.

The bars (realtime/engine/bargrid.py) begin at the player's first note, at the patch's tempo until the
listener hears the player's (its tracker locked on the playing, or a MIDI clock with `[listen]
tempo_source = "midi_clock"`), then at the player's tempo and beat phase. The engine's bars continue the
player's: the model hears each of the player's notes as it ends (in onset order, as the duet's does), and
its own notes as it plays them, so it is primed by the time the player's turn ends. At the bar line it
plays from `commit` before (the output's own lead plus `lookahead_ms`): its first note on the bar line
itself, the model hearing the real gap since the player's last note; each later note `commit` before it
sounds, its onset snapped to `subdivision` per beat, no onset at or past the player's next bar line, and
every duration clipped so the last note ends END_GAP_BEATS (a 32nd) before that line at the latest. With `follow_key`, the key the
listener hears (when it is KEY_CONFIDENCE sure, and the patch names none) limits the engine's pitches.

- The player cuts in (a note-on at or after the engine's first bar line, in the engine's bars): the engine
  stops at once (what was handed to the output and not yet played is taken back, what sounds ends with
  its note-off) and the bar of that note becomes the player's first (the next bar, when the note comes in
  the last half beat of one: a pickup); the engine answers after `bars` bars from there.
- A turn the player left silent: `on_silence = "wait"` (default), the engine does not trade with silence
  and waits; the player's next note starts a new exchange, its bar 1. `"play"`: the engine plays on.
- `starts = "engine"`: the engine plays the first turn from the moment the mode begins (the patch's tempo).
- Stop, a mode switch, the player's all-notes-off or all-sound-off (`silence`) and an error end every note
  (the scheduler's cancel: each sounding note gets its note-off) and end the exchange.
"""

from __future__ import annotations

import math
from dataclasses import replace

from ..clock import Clock
from ..events import Event, NoteMessage
from ..listen import Listener
from ..listen.listener import MAX_NOTE_NS
from ..listen.listener import warm_up as warm_listener
from ..model.generator import Generator
from ..model.sampling import SCALES
from ..model.tokens import DURATION_BEATS, IOI_BEATS, VELOCITY_LEVELS, Token, duration_bucket, ioi_bucket
from ..model.tokens import velocity_bucket
from ..scheduler import Scheduler
from ..stagesettings import TradeSettings
from .bargrid import BarGrid
from .stagecontrols import StageControls
from .status import Figures, output_fields

KEY_CONFIDENCE = 0.5  # the listener's key limits the engine's pitches from this confidence on
PICKUP_BEATS = 0.5  # a cut-in this close before a bar line starts the player's turn at that line
LATE_NS = 30_000_000  # a note whose moment passed this long ago (a stall) is skipped, not played late
END_GAP_BEATS = 1 / 32  # the engine's last note ends this long before the player's bar line: its tempo is an
# estimate, and 0.1% off (83.9 BPM for 84) is 14 ms over four bars at 84 (realtime/bench/trading.py measures it)


class Trade:
    """Trading `bars` bars with the player on one channel, the model continuing the player's bars."""

    def __init__(self, generator: Generator, settings: TradeSettings, scheduler: Scheduler, clock: Clock,
                 listener: Listener | None, tempo_bpm: float = 100.0, beats_per_bar: int = 4,
                 model_velocity: float = 80.0, fixed_key: bool = False, style: str | None = None) -> None:
        self.generator, self.settings, self.scheduler, self.clock = generator, settings, scheduler, clock
        self.stage = StageControls(generator.runner.control_index, style)  # a stage model: its style, role melody
        self._row = generator.runner.controls[0] if generator.runner.controls is not None else None
        if self._row is not None:
            self.stage.write_style(self._row)
            self.stage.write_role(self._row, "melody")
        self.listener = listener
        self.grid = BarGrid(60e9 / tempo_bpm, beats_per_bar)
        self.model_velocity = model_velocity
        self.follow_key = settings.follow_key and not fixed_key
        self._constraints = generator.constraints  # the patch's: the key heard narrows them, turn by turn
        self.last_error: str | None = None
        self.owner: str | None = None  # whose turn: "player", "engine", or None (waiting for the player)
        self.turn_bar = 0  # the first bar of the current turn
        self._played_in_turn = False
        self._sounding: dict[tuple[int, int], tuple[int, int]] = {}  # the player's keys: (onset, velocity)
        self._finished: list[tuple[int, int, int, int]] = []  # (onset, end, pitch, velocity) not yet heard
        self._last_fed_ns: int | None = None  # the onset of the last note the model heard
        self._next: tuple[Token, float] | None = None  # the engine's next note, and its onset in the turn's beats
        self._last_onset_beats = 0.0
        self._velocity = 0.0  # the player's recent mean velocity (0: not heard yet)
        self._commit = 0
        self._wake: int | None = None
        self.engine_turns = self.cut_ins = self.waits = self.played = self.errors = 0

    # --- hearing -----------------------------------------------------------------------------------
    def on_message(self, message: Event, at_ns: int) -> None:
        if not isinstance(message, NoteMessage):
            return
        key = (message.channel, message.pitch)
        if not message.is_on:
            if key in self._sounding:
                self._finish(key, at_ns)
                self._feed_finished()
            return
        if self.owner is None:
            self._begin_exchange(at_ns)
        elif self.owner == "engine" and at_ns >= self.grid.time_of_bar(self.turn_bar):
            self._cut_in(at_ns)
        self._played_in_turn = True
        if key in self._sounding:  # a repeated note-on without its note-off ends the first
            self._finish(key, at_ns)
        self._sounding[key] = (at_ns, message.velocity)

    def _finish(self, key: tuple[int, int], end_ns: int) -> None:
        onset, velocity = self._sounding.pop(key)
        self._finished.append((onset, end_ns, key[1], velocity))

    def _feed_finished(self) -> None:
        """The model hears the player's finished notes in onset order, up to the earliest one still sounding."""
        earliest = min((on for on, _ in self._sounding.values()), default=None)
        self._finished.sort()
        beat = self.grid.ns_per_beat
        while self._finished and (earliest is None or self._finished[0][0] < earliest):
            onset, end, pitch, velocity = self._finished.pop(0)
            gap = 0 if self._last_fed_ns is None else max(0, onset - self._last_fed_ns)
            self.generator.feed(Token(pitch, ioi_bucket(gap / beat), duration_bucket((end - onset) / beat),
                                      velocity_bucket(velocity)))
            self._last_fed_ns = max(onset, self._last_fed_ns or onset)

    def _begin_exchange(self, at_ns: int) -> None:
        """The player's first note (or first after a wait): bar 0 of the player's turn begins with it."""
        self.grid.start(at_ns)
        self.owner, self.turn_bar = "player", 0

    def _cut_in(self, at_ns: int) -> None:
        """The player plays in the engine's bars: it stops at once, and that bar is the player's."""
        self._end_notes()
        bar = self.grid.bar_at(at_ns)
        first = math.floor(bar)
        if (bar - first) * self.grid.beats_per_bar >= self.grid.beats_per_bar - PICKUP_BEATS:
            first += 1
        self.owner, self.turn_bar = "player", first
        self.cut_ins += 1

    # --- deciding ----------------------------------------------------------------------------------
    def tick(self, now_ns: int) -> None:
        try:
            self._tick(now_ns)
        except Exception as err:  # a failing mode ends its notes and says so once; the player goes on
            self.errors += 1
            self._end_notes()
            self.owner = None
            if self.last_error is None:
                self.last_error = f"trade failed ({type(err).__name__}: {str(err)[:120]}); its notes were ended"

    def _tick(self, now: int) -> None:
        if self.stage.pending is not None and self.owner != "engine" and self.stage.due(now) and self._row is not None:
            self.stage.write_style(self._row)  # a live style, outside the engine's bars: its next turn plays in it
        state = self.listener.snapshot(now) if self.listener is not None else None
        if state is not None:
            if state.tempo.locked:
                self.grid.follow(state.tempo.ns_per_beat, state.tempo.anchor_ns, now)
            if state.dynamics > 0:
                self._velocity = state.dynamics
        if self._sounding and now - max(on for on, _ in self._sounding.values()) > MAX_NOTE_NS:
            for key in list(self._sounding):  # a lost note-off must not keep the model from hearing the rest
                self._finish(key, now)
            self._feed_finished()
        margin = self.scheduler.lead_ns + int(self.settings.lookahead_ms * 1e6)
        self._commit = min(margin, int(self.grid.ns_per_beat / 2))
        bars = self.settings.bars
        if self.owner == "player" and now >= self.grid.time_of_bar(self.turn_bar + bars) - self._commit:
            if self._played_in_turn or self.settings.on_silence == "play":
                self.turn_bar += bars
                self._begin_engine_turn(state)
            else:
                self.owner = None  # a silent turn: the engine does not trade with silence
                self.waits += 1
        if self.owner == "engine":
            self._play_ahead(now)
            if now >= self.grid.time_of_bar(self.turn_bar + bars) - self._commit:
                self.owner, self.turn_bar, self._next = "player", self.turn_bar + bars, None
                self._played_in_turn = False
        self._wake = self._next_wake()

    def _begin_engine_turn(self, state) -> None:
        """The engine's first note, on the bar line: the model has heard the player's bars up to now."""
        for key in list(self._sounding):  # a note held over the bar line is heard as ending on it
            onset, velocity = self._sounding.pop(key)
            self._finished.append((onset, max(onset + 1, self.grid.time_of_bar(self.turn_bar)), key[1], velocity))
        self._feed_finished()
        if self.follow_key and state is not None and state.key.tonic is not None \
                and state.key.confidence >= KEY_CONFIDENCE:
            scale = SCALES["major" if state.key.mode == "major" else "minor"]
            classes = frozenset((state.key.tonic + step) % 12 for step in scale)
            if classes != self.generator.constraints.pitch_classes:
                self.generator.set_constraints(replace(self._constraints, pitch_classes=classes))
        self.owner, self._played_in_turn = "engine", False
        self.engine_turns += 1
        self.generator.begin_answer()
        start = self.grid.time_of_bar(self.turn_bar)
        if self._last_fed_ns is None:  # nothing heard yet (the engine starts): the model's own first note
            first = self.generator.sample_next()
            gap = IOI_BEATS[first.ioi]
        else:  # the model hears the real gap since the player's last note
            gap = max(0.0, (start - self._last_fed_ns) / self.grid.ns_per_beat)
            first = self.generator.sample_next(ioi=ioi_bucket(gap))
        self._next, self._last_onset_beats = (first, 0.0), -gap

    def _play_ahead(self, now: int) -> None:
        """Hand over every note whose moment is within `commit`, each with its note-off, clipped to the bar line."""
        grid, s = self.grid, self.settings
        turn_beats = s.bars * grid.beats_per_bar
        first_beat = self.turn_bar * grid.beats_per_bar
        end = grid.time_of_bar(self.turn_bar + s.bars)
        while self._next is not None:
            token, onset_beats = self._next
            at = grid.time_of_bar((first_beat + onset_beats) / grid.beats_per_bar)
            if at - self._commit > now:
                return
            off_beats = min(onset_beats + DURATION_BEATS[token.duration], turn_beats - END_GAP_BEATS)
            off = min(end, grid.time_of_bar((first_beat + off_beats) / grid.beats_per_bar))
            if at >= now - LATE_NS and off > at:
                velocity = self._velocity or self.model_velocity
                velocity = velocity * s.velocity_scale * VELOCITY_LEVELS[token.velocity] / self.model_velocity
                message = NoteMessage(token.pitch, max(1, min(127, round(velocity))), s.channel)
                self.scheduler.push(message, max(at, now))
                self.scheduler.push(NoteMessage(token.pitch, 0, s.channel), max(off, at, now))
                self.played += 1
            heard = Token(token.pitch, ioi_bucket(onset_beats - self._last_onset_beats),
                          duration_bucket(off_beats - onset_beats), token.velocity)
            self.generator.commit(heard)  # the model hears what it played, as it was placed
            self._last_fed_ns, self._last_onset_beats = at, onset_beats
            self._next = self._after(onset_beats, turn_beats)

    def _after(self, onset_beats: float, turn_beats: int) -> tuple[Token, float] | None:
        """The next note and its onset on the subdivision grid; None when it would start in the player's bars."""
        token = self.generator.sample_next()
        step = 1.0 / self.settings.subdivision
        onset = round((onset_beats + IOI_BEATS[token.ioi]) / step) * step
        if token.ioi and onset <= onset_beats:
            onset = onset_beats + step
        return None if onset >= turn_beats - END_GAP_BEATS - 1e-9 else (token, onset)

    def _next_wake(self) -> int | None:
        grid, bars = self.grid, self.settings.bars
        if self.owner == "player":
            return grid.time_of_bar(self.turn_bar + bars) - self._commit
        if self.owner != "engine":
            return None
        wake = grid.time_of_bar(self.turn_bar + bars) - self._commit
        if self._next is not None:
            first_beat = self.turn_bar * grid.beats_per_bar
            wake = min(wake, grid.time_of_bar((first_beat + self._next[1]) / grid.beats_per_bar) - self._commit)
        return wake

    def _end_notes(self) -> None:
        """Every note handed over and not yet played is taken back, every one sounding gets its note-off."""
        self._next = None
        self.scheduler.cancel_all()

    # --- the engine's side -------------------------------------------------------------------------
    def next_deadline_ns(self) -> int | None:
        return self._wake

    def next_bar_ns(self, now_ns: int) -> int | None:
        """The next bar line of the exchange (a live switch waits for it); None while waiting for the player."""
        return self.grid.next_bar_ns(now_ns) if self.owner is not None else None

    def silence(self, now_ns: int) -> None:
        """The player's all-notes-off or all-sound-off: every note ends, and the exchange with it."""
        self._end_notes()
        self.owner, self._wake = None, None
        self.scheduler.dispatch_due(now_ns)

    def stop(self, now_ns: int) -> None:
        self.silence(now_ns)
        self._sounding.clear()  # switched away, the mode no longer hears the player's note-offs
        self._finished.clear()

    def request_style(self, name: str | None, now_ns: int, program: int | None = None) -> None:
        """`/style NAME` or a program change: from the next bar line outside the engine's bars (never mid-turn)."""
        at_ns = self.grid.next_bar_ns(now_ns) if self.owner is not None else now_ns
        refusal = self.stage.by_program(program, at_ns) if name is None else self.stage.request(name, at_ns)
        self.last_error = refusal or self.last_error

    def apply_control(self, target: str, value: float) -> None:
        """temperature and top_p ([[controls]]) change how the next notes are chosen."""
        if target == "temperature":
            self.generator.sampler.set(temperature=value)
        elif target == "top_p":
            self.generator.sampler.set(top_p=value)

    # --- the session's side (realtime/session.py), outside the loop -------------------------------
    def warm_up(self) -> None:
        """The model's notes and the listener's tempo kernels run once now, not under the first bars."""
        self.generator.warm_up()
        if self.listener is not None:
            warm_listener(self.listener.settings)

    def begin(self, now_ns: int) -> None:
        """Started or switched to: the engine's first turn at once with starts = "engine", else wait."""
        self.owner, self._played_in_turn = None, False
        if self.settings.starts == "engine":
            self.grid.start(now_ns + self.scheduler.lead_ns + int(self.settings.lookahead_ms * 1e6))
            self.turn_bar = 0
            state = self.listener.snapshot(now_ns) if self.listener is not None else None
            self._begin_engine_turn(state)
            self._wake = now_ns

    def status_fields(self, figures: Figures, now_ns: int) -> list[str]:
        """In, out, whose turn and its bar, turns and cut-ins, the tempo and where it comes from, notes played."""
        if self.owner is None:
            turn = "trade: waiting for you"
        else:
            bar = min(self.settings.bars, max(1, math.floor(self.grid.bar_at(now_ns)) - self.turn_bar + 1))
            turn = f"trade: {'your' if self.owner == 'player' else 'engine'} bar {bar}/{self.settings.bars}"
        parts = [f"in {figures.messages_in}", f"out {figures.sent}", turn, f"engine turns {self.engine_turns}",
                 f"{self.grid.bpm:.1f} BPM from {self.grid.source}", f"notes {self.played}"]
        return parts + output_fields(figures, [f"cut-ins {self.cut_ins}"])

    def drops(self) -> int:
        return 0  # every note reaching the mode is heard (the engine's inbox counts its own drops)
