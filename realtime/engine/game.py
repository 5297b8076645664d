"""Game mode: game parameters, states and events steer several generated voices in musical time.

What a game sends (gameosc.py registers it on the OSC input) arrives as a `GameMessage`, stamped with
its arrival time, and takes effect the way Wwise/FMOD users expect:
- a parameter glides to its new value with the patch's time constant (one-pole smoothing, computed
  exactly from the arrival time, so it does not depend on how often the engine looks);
- a state switches section at the first bar line after arrival + lookahead: key, layers and tempo
  change there, every sounding note is cut at that bar line, and each layer's first note is on it;
- an event plays its stinger motif from the first beat after arrival + lookahead;
- transport start/stop/tempo move the TempoClock (and the MIDI clock out, if any).

Notes are chosen `lookahead_ms` before they sound and scheduled on absolute deadlines (how each voice
chooses them is gamenotes.py's; the status line's fields are engine/status.py's). Contract for
`tick` (the engine's loop): no logging, no locks, no waiting; counts and timings are kept for a status
line; one batched model call per pass for all voices that played a note.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from ..clock import TempoClock
from ..events import NoteMessage
from ..io.midiclock import MidiClockIn, MidiClockOut
from ..model import controls as ctl
from ..model.sampling import Constraints, key_pitch_classes
from ..scheduler import Scheduler
from ..settings import GameSettings, SectionSettings, StingerSettings, VoiceSettings
from .gamenotes import VoiceNotes
from .stagecontrols import StageControls
from .gameparts import GameMessage, SmoothedParam, Voice, key_tonic
from .status import Figures, game_fields
from .voices import VoiceBank

INBOX_LIMIT = 1024
CLOCK_ROOM = INBOX_LIMIT // 2  # MIDI clock in may fill half the inbox: a flood of it cannot crowd out the game


class GameMode(VoiceNotes):
    """Adaptive music for a game: sections, layers, stingers and smoothed parameters over N voices.

    What the game asks for is decided here; how each voice chooses its notes is VoiceNotes'
    (gamenotes.py).
    """

    def __init__(self, bank: VoiceBank, scheduler: Scheduler, game: GameSettings, tempo: TempoClock,
                 clock_scheduler: Scheduler | None = None, clock_in: bool = False, style: str | None = None) -> None:
        self.bank, self.scheduler, self.game, self.tempo = bank, scheduler, game, tempo
        if bank.n != len(game.voices):
            raise ValueError(f"the model batch ({bank.n}) must equal the number of voices ({len(game.voices)})")
        self.lookahead_ns = int(game.lookahead_ms * 1e6)
        tau_ns = game.smoothing_ms * 1e6
        self.params = {p.name: SmoothedParam(p.initial, p.min, p.max, tau_ns) for p in game.params}
        self.states = {s.name: s for s in game.states}
        self.events = {e.name: e for e in game.events}
        self.voices = [Voice(v, i) for i, v in enumerate(game.voices)]
        for voice in self.voices:
            voice.maps = tuple(m for m in game.maps if not m.voices or voice.settings.name in m.voices)
            if voice.settings.max_polyphony:
                bank.max_polyphony[voice.index] = voice.settings.max_polyphony
            if voice.settings.temperature is not None:
                bank.inv_temperature[voice.index] = 1.0 / voice.settings.temperature
        self._base_inv_temperature = bank.inv_temperature.copy()
        self.control_index = bank.runner.control_index
        self.stage = StageControls(self.control_index, style)  # a stage model's style and the voices' roles
        self.state: SectionSettings = self.states[game.initial_state]
        self._key_histogram = np.zeros(12, dtype=np.float32)
        self.pending: tuple[SectionSettings, float] | None = None  # (section, bar line in beats)
        self._covered_ns = 0  # notes with onsets up to here have been chosen and handed to the output
        self.running = False
        self.inbox: deque[tuple[GameMessage | bytes, int]] = deque()  # bytes: MIDI clock in
        self.clock_out = MidiClockOut(tempo) if clock_scheduler is not None else None
        self.clock_scheduler = clock_scheduler
        self.clock_in = MidiClockIn(tempo) if clock_in else None
        # what happened, for tests, benchmarks and the status line (read outside the loop)
        self.transitions: list[tuple[str, float, int]] = []  # (section, beat, ns)
        self.stingers: list[tuple[str, float, int]] = []
        self.notes_out = self.inbox_drops = 0
        self.tick_ns = np.zeros(1 << 14, dtype=np.int64)
        self.ticks = 0
        self.last_error: str | None = None
        self._apply_section(self.state, None)

    # --- hearing the game (any thread) -------------------------------------------------------------
    def post(self, message: GameMessage | bytes, at_ns: int, limit: int = INBOX_LIMIT) -> None:
        """Hand a game message over (called on the OSC thread): a deque append, bounded and counted."""
        if len(self.inbox) >= limit:
            self.inbox_drops += 1
            return
        self.inbox.append((message, at_ns))

    def on_message(self, message, at_ns: int) -> None:
        """Notes from MIDI or OSC inputs: the game mode does not listen to players."""

    def on_raw_midi(self, data: bytes, at_ns: int) -> None:
        """MIDI clock from a device or DAW (when the patch follows one), queued with the game's messages:
        the tick feeds it on, so the TempoClock moves only on the engine thread, never mid-choice."""
        if self.clock_in is not None:
            self.post(data, at_ns, CLOCK_ROOM)

    def apply_control(self, target: str, value: float) -> None:
        """[[controls]] of the patch: temperature and top_p for every voice."""
        if target == "temperature":
            self.bank.inv_temperature[:] = 1.0 / value
            self._base_inv_temperature[:] = 1.0 / value
        elif target == "top_p":
            self.bank.top_p = value

    # --- the loop ----------------------------------------------------------------------------------
    def tick(self, now_ns: int) -> None:
        t0 = time.perf_counter_ns()
        moved = False
        while self.inbox:
            message, at_ns = self.inbox.popleft()
            if isinstance(message, bytes):
                self._follow_clock(message, at_ns, now_ns)
                continue
            self._handle(message, at_ns, now_ns)
            moved |= message.kind == "param"
        if moved and self.running:
            self._refresh(now_ns)
        if self.running:
            if self.pending is None:
                self._check_layers(now_ns)
            horizon_ns = now_ns + self.lookahead_ns
            if self.pending is not None:
                section, bar = self.pending
                bar_ns = self.tempo.ns_at(bar)
                if bar_ns <= horizon_ns:
                    self._generate(bar_ns, stop_beats=bar)
                    self._apply_section(section, bar)
                    self.pending = None
            self._generate(horizon_ns, stop_beats=self.pending[1] if self.pending else None)
        self._clock_out(now_ns)
        self.tick_ns[self.ticks % len(self.tick_ns)] = time.perf_counter_ns() - t0
        self.ticks += 1

    def next_deadline_ns(self) -> int | None:
        # the MIDI clock's next pulse when no output thread sends it (a fake clock: tests, offline)
        wake = self.clock_scheduler.next_deadline_ns() if self.clock_scheduler is not None else None
        if not self.running:
            return wake
        for voice in self.voices:
            if voice.active and voice.next is not None:
                at = self.tempo.ns_at(voice.next[1]) - self.lookahead_ns
                wake = at if wake is None or at < wake else wake
        if self.pending is not None:
            at = self.tempo.ns_at(self.pending[1]) - self.lookahead_ns
            wake = at if wake is None or at < wake else wake
        return wake

    def stop(self, now_ns: int) -> None:
        """The engine is closing: stop the transport (and the MIDI clock), leave pending notes to the engine."""
        self._stop_transport(now_ns)

    # --- the session's side (realtime/session.py), outside the loop --------------------------------
    def warm_up(self) -> None:
        """Nothing left to warm: the VoiceBank compiled its sampler when it was made."""

    def begin(self, now_ns: int) -> None:
        if self.game.autostart:
            self.start(now_ns)

    def status_fields(self, figures: Figures, now_ns: int) -> list[str]:
        return game_fields(self, figures, now_ns)

    def drops(self) -> int:
        return self.inbox_drops  # game messages past INBOX_LIMIT between two ticks

    # --- what the game asked for -------------------------------------------------------------------
    def _handle(self, message: GameMessage, at_ns: int, now_ns: int) -> None:
        # decisions count from the arrival, not from when this tick runs: a late tick changes nothing
        after_ns = max(at_ns + self.lookahead_ns, now_ns)
        kind = message.kind
        if kind == "param":
            self.params[message.name].set(message.value, at_ns)
        elif kind == "state":
            self.pending = (self.states[message.name], self.tempo.next_boundary_beat(after_ns, self.game.beats_per_bar))
        elif kind == "event":
            self._stinger(self.events[message.name], self.tempo.next_boundary_beat(after_ns, 1.0))
        elif kind == "tempo":
            self.tempo.set_tempo(message.value, max(at_ns, now_ns))
        elif kind == "start":
            self._start_transport(after_ns)
        elif kind == "stop":
            self._stop_transport(max(at_ns, now_ns))

    def _follow_clock(self, data: bytes, at_ns: int, now_ns: int) -> None:
        what = self.clock_in.feed(data, at_ns)  # steers the TempoClock (tempo and beat phase)
        if what == "start" or what == "stop":
            self._handle(GameMessage(what), at_ns, now_ns)

    def start(self, now_ns: int) -> None:
        """Start the transport a lookahead from now (the patch's autostart)."""
        self._start_transport(now_ns + self.lookahead_ns)

    def _start_transport(self, at_ns: int) -> None:
        if self.running:
            return
        self.tempo.restart(at_ns)
        if self.state.tempo_bpm:
            self.tempo.set_tempo(self.state.tempo_bpm, at_ns)
        self.running = True
        for voice in self.voices:
            self._set_controls(voice, at_ns)
        self.bank.reset()  # every voice hears the start marker with its own controls
        for voice in self.voices:
            voice.next, voice.last_onset_beats = None, None
            voice.forced_onset_beats = 0.0
            self.bank.forget_sounding(voice.index)
        self.pending = None
        self._covered_ns = 0
        self._apply_section(self.state, 0.0)
        if self.clock_out is not None:
            self.clock_out.start(at_ns)

    def _stop_transport(self, at_ns: int) -> None:
        if not self.running:
            return
        self.running = False
        self.pending = None
        self.scheduler.cancel_all()  # every sounding note ends now
        if self.clock_out is not None:
            self.clock_scheduler.cancel_all()  # pulses already queued past the stop must not go out
            self.clock_out.stop(at_ns)
            self._clock_out(at_ns)

    def request_style(self, name: str | None, now_ns: int, program: int | None = None) -> None:
        """`/style NAME` or a program change: the voices play in it from the next bar line (with a pending
        section, from its bar). While the section names a style of its own, that one plays on."""
        bar = self.pending[1] if self.pending is not None else \
            self.tempo.next_boundary_beat(now_ns + self.lookahead_ns, self.game.beats_per_bar)
        heard_now = not self.running or self.state.style is not None  # nothing to wait for: nothing changes now
        at_ns = now_ns if heard_now else self.tempo.ns_at(bar)
        refusal = self.stage.by_program(program, at_ns) if name is None else self.stage.request(name, at_ns)
        if refusal is not None:
            self.last_error = refusal
        elif heard_now:
            self.stage.due(now_ns)  # the session's style now; a state naming its own plays on in that
            self._write_stage(self.state.style)
        elif self.pending is None:
            self.pending = (self.state, bar)  # the same section again, in the new style, from the bar line

    def _stinger(self, event: StingerSettings, beat: float) -> None:
        tonic, _ = key_tonic(self.state.key)
        root = event.base + ((tonic - event.base) % 12)
        if root - event.base > 6:
            root -= 12  # the tonic nearest base
        channel = event.channel
        for k, offset in enumerate(event.notes):
            pitch = min(127, max(0, root + offset))
            onset = beat + k * event.step_beats
            self.scheduler.push(NoteMessage(pitch, event.velocity, channel), self.tempo.ns_at(onset))
            self.scheduler.push(NoteMessage(pitch, 0, channel), self.tempo.ns_at(onset + event.duration_beats))
        self.stingers.append((event.name, beat, self.tempo.ns_at(beat)))

    # --- sections and layers -----------------------------------------------------------------------
    def _wanted_layers(self, section: SectionSettings, at_ns: int) -> list[bool]:
        out = []
        for voice in self.voices:
            s = voice.settings
            on = s.name in section.voices
            if on and s.enter_param is not None:
                on = self.params[s.enter_param].value_at(at_ns) >= s.enter_at
            out.append(on)
        return out

    def _check_layers(self, now_ns: int) -> None:
        """A parameter crossed a layer's threshold: the layer enters or leaves at the next bar line."""
        after_ns = now_ns + self.lookahead_ns
        wanted = self._wanted_layers(self.state, after_ns)
        if any(w != v.active for w, v in zip(wanted, self.voices)):
            self.pending = (self.state, self.tempo.next_boundary_beat(after_ns, self.game.beats_per_bar))

    def _apply_section(self, section: SectionSettings, bar: float | None) -> None:
        """Switch key, layers and tempo; each playing layer's next note lands on the bar line."""
        self.state = section
        constraints_key = key_pitch_classes(section.key)
        tonic, minor = key_tonic(section.key)
        self._key_histogram[:] = ctl.key_histogram(constraints_key, tonic, minor)
        at_ns = self.tempo.ns_at(bar) if bar is not None else 0
        self.stage.due(at_ns)
        self._write_stage(section.style)
        if bar is not None and section.tempo_bpm and section.tempo_bpm != self.tempo.tempo_bpm:
            self.tempo.set_tempo(section.tempo_bpm, at_ns)
        wanted = self._wanted_layers(section, at_ns)
        for voice, on in zip(self.voices, wanted):
            s = voice.settings
            self.bank.set_pitch_mask(voice.index, Constraints(constraints_key, s.lowest, s.highest).pitch_mask())
            voice.active = on
            voice.next = None
            voice.forced_onset_beats = bar
            self.bank.forget_sounding(voice.index)
        if bar is not None:
            self._refresh(at_ns)  # the new key (and its layers' controls) shape the first notes already
            self.transitions.append((section.name, bar, at_ns))

    def _refresh(self, at_ns: int) -> None:
        """Parameters moved: recompute every voice's controls and prediction; drop notes chosen but not played."""
        for voice in self.voices:
            self._set_controls(voice, at_ns)
            voice.next = None
        self.bank.refresh()

    def _clock_out(self, now_ns: int) -> None:
        if self.clock_out is None:
            return
        for at_ns, data in self.clock_out.due(now_ns + self.lookahead_ns):
            self.clock_scheduler.push(data, at_ns)
        self.clock_scheduler.dispatch_due(now_ns)
