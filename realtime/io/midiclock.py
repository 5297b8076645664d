"""MIDI clock on raw bytes: send 24 pulses per quarter note with start/stop, or follow someone else's.

Both sides work on plain `bytes` with nanosecond times and know nothing of ports, so any port that
sends or receives raw MIDI (rtmidi, JACK, a memory port in a test) can carry them:

- `MidiClockOut` turns a TempoClock into timed messages: Start (0xFA) on beat 0, Timing Clock (0xF8)
  every 1/24 beat at the current tempo, Stop (0xFC). The caller pushes them to an output ahead of time.
- `MidiClockIn` reads Start, Continue, Stop, Song Position and Timing Clock from a device or DAW and
  steers a TempoClock: the tempo from the mean of the last pulse intervals, the beat phase from the
  pulse count (so a tempo estimate that wobbles never makes beats drift).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..clock import TempoClock
from ..settings import RANGES

TIMING_CLOCK, START, CONTINUE, STOP, SONG_POSITION = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
PPQN = 24
RawSend = Callable[[bytes], None]


class MidiClockOut:
    """Timed MIDI clock messages for a TempoClock: `due(until_ns)` lists what to send before a moment."""

    def __init__(self, tempo: TempoClock) -> None:
        self.tempo = tempo
        self.running = False
        self._next_pulse = 0  # index of the next Timing Clock pulse, 24 per beat from beat 0
        self._pending: list[tuple[int, bytes]] = []

    def start(self, at_ns: int) -> None:
        """Start (0xFA) at a moment that is beat 0 on the tempo clock; pulses follow from there."""
        self._pending.append((at_ns, bytes([START])))
        self.running, self._next_pulse = True, 0

    def stop(self, at_ns: int) -> None:
        self._pending.append((at_ns, bytes([STOP])))
        self.running = False

    def due(self, until_ns: int) -> list[tuple[int, bytes]]:
        """Every message whose moment is before `until_ns` and not handed out yet, in time order."""
        out, self._pending = self._pending, []
        while self.running:
            at_ns = self.tempo.ns_at(self._next_pulse / PPQN)
            if at_ns >= until_ns:
                break
            out.append((at_ns, bytes([TIMING_CLOCK])))
            self._next_pulse += 1
        out.sort(key=lambda item: item[0])
        return out


class MidiClockIn:
    """Follows incoming MIDI clock: `feed(data, at_ns)` per raw message; steers the TempoClock given.

    Returns what the message meant ("start", "continue", "stop", "tick", "position") or None for
    anything else (notes, sysex): the caller decides what a start or stop does to the music.
    """

    def __init__(self, tempo: TempoClock, window: int = PPQN, lowest_bpm: float = RANGES["tempo_bpm"].low,
                 highest_bpm: float = RANGES["tempo_bpm"].high) -> None:
        self.tempo, self.window = tempo, window
        self.lowest_bpm, self.highest_bpm = lowest_bpm, highest_bpm
        self.running = False
        self.pulses = 0  # Timing Clock pulses since beat 0
        self._intervals = np.zeros(window, dtype=np.int64)
        self._filled = 0
        self._last_ns: int | None = None
        self._waiting_first_pulse = False
        self.tempo_bpm: float | None = None  # the estimate, once there are enough pulses

    def feed(self, data: bytes, at_ns: int) -> str | None:
        if not data:
            return None
        status = data[0]
        if status == START:
            self.running, self.pulses, self._waiting_first_pulse = True, 0, True
            return "start"
        if status == CONTINUE:
            self.running, self._waiting_first_pulse = True, False
            self._last_ns = None
            return "continue"
        if status == STOP:
            self.running = False
            return "stop"
        if status == SONG_POSITION and len(data) >= 3:
            sixteenths = (data[1] & 0x7F) | ((data[2] & 0x7F) << 7)
            self.pulses = sixteenths * (PPQN // 4)
            return "position"
        if status == TIMING_CLOCK:
            self._pulse(at_ns)
            return "tick"
        return None

    def _pulse(self, at_ns: int) -> None:
        if self._last_ns is not None and at_ns > self._last_ns:
            self._intervals[self._filled % self.window] = at_ns - self._last_ns
            self._filled += 1
        self._last_ns = at_ns
        if not self.running:
            return  # a stopped sender may keep pulsing: follow its tempo, not its position
        if self._waiting_first_pulse:  # the first pulse after Start is beat 0
            self._waiting_first_pulse = False
            self.pulses = 0
        n = min(self._filled, self.window)
        if n >= PPQN // 4:
            bpm = 60e9 / (float(self._intervals[:n].mean()) * PPQN)
            if self.lowest_bpm <= bpm <= self.highest_bpm:
                self.tempo_bpm = bpm
        self.tempo.set_anchor(at_ns, self.pulses / PPQN, self.tempo_bpm)
        self.pulses += 1


class RawOutput:
    """An Output for a scheduler that carries raw MIDI bytes (clock) to any `send_raw(bytes)`."""

    def __init__(self, send_raw: RawSend, name: str = "midi-clock") -> None:
        self.send_raw, self.name = send_raw, name
        self.errors = 0
        port = getattr(send_raw, "__self__", None)  # a port that keeps time (JACK) gets deadlines
        self._send_raw_at = getattr(port, "send_raw_at", None)
        self._port = port if self._send_raw_at is not None else None

    @property
    def lead_ns(self) -> int:
        return self._port.lead_ns if self._port is not None else 0

    def send_at(self, data: bytes, deadline_ns: int) -> None:
        if self._send_raw_at is None:
            self.send(data)
            return
        try:
            self._send_raw_at(data, deadline_ns)
        except Exception:
            self.errors += 1

    def send(self, data: bytes) -> None:
        try:
            self.send_raw(data)
        except Exception:  # a vanished port must not stop the clock thread; the port reports itself
            self.errors += 1

    def all_notes_off(self) -> None:
        """Clock messages hold no notes."""

    def close(self) -> None:
        """Nothing to release."""
