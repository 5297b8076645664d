"""JACK MIDI through JACK-Client: every event written at its frame, every input stamped with its frame.

python-rtmidi's JACK backend writes whatever it was given at the start of the next period, so a
receiver hears up to a period of timing error (2.6-10 ms at 256-1024 frames). Here the engine hands
each message over `lead_ns` before its deadline with the deadline attached (`send_at`); the process
callback keeps it until the period that contains its deadline and writes it at the frame offset of
that deadline. The receiver hears every note at its deadline's frame: no latency added, an error of
a frame. Input events are stamped with the time of their frame.

Frames and the engine's clock are tied per period: JACK's cycle start times (its DLL) through a
second filter of our own, and the offset between JACK's microsecond clock and the engine's
monotonic clock, measured every period.

Contract for the process callback (JACK's real-time thread): it moves messages from a deque to the
port buffer and counts; it never blocks, never logs, never raises (JACK-Client would stop calling it).
Messages not yet written can be taken back: `all_notes_off` drops them and ends every note that was
written, so a cut-in never lets a planned note through. The client itself (opening, connecting,
supervision, a safe close) is jackport.py's.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections import deque

from ..clock import Clock
from ..events import NoteMessage
from .jackport import JackPort, available, jack
from .ports import PANIC_CONTROLS, HeldNotes, Listener, MidiParser

__all__ = ["JackMidiInput", "JackMidiOutput", "available"]

_PANIC = object()
_PANIC_AT = -2.0  # a panic's messages go first in their period, and a later panic keeps them
MAX_EVENTS_PER_PERIOD = 32  # a panic bigger than this goes out over the next periods (DIN MIDI carries ~1 a ms)
SAFETY_NS = 2_000_000  # handed over this much before its period, on top of a period of lead


class JackMidiInput(JackPort):
    """Notes and control changes from JACK MIDI, each stamped with the engine-clock time of its frame.

    The listener runs on JACK's thread and must be quick (the engine's only appends to its inbox).
    Parsing, counting and the release of held keys when the keyboard vanishes are MidiParser's,
    shared with the rtmidi input.
    """

    kind, direction = "input", "in"

    def __init__(self, clock: Clock, port: str | None = None, client_name: str = "realtime",
                 accept_clock: bool = False) -> None:
        self.parser = MidiParser(accept_clock, self._warn)
        self.counts = self.parser.counts
        self.callback_errors = 0
        self._event = jack._ffi.new("jack_midi_event_t*") if jack is not None else None
        super().__init__(clock, port, client_name)

    def set_listener(self, listener: Listener | None) -> None:
        self.parser.listener = listener

    def set_raw_listener(self, listener) -> None:
        self.parser.raw_listener = listener

    def _warn(self, line: str) -> None:
        self._warnings.append(line)

    def _process(self, frames: int) -> None:
        try:
            first = self.frames.cycle(frames)
            lib, event = jack._lib, self._event
            buffer = lib.jack_port_get_buffer(self._port._ptr, frames)
            count = lib.jack_midi_get_event_count(buffer)
            if not count:
                return
            dispatch, ns_at, name = self.parser.dispatch, self.frames.ns_at, self.name
            for index in range(count):  # one C call per event: each call lets go of the GIL
                if lib.jack_midi_event_get(event, buffer, index):
                    break
                dispatch(jack._ffi.unpack(event.buffer, event.size), ns_at(first + event.time), name)
        except Exception:  # JACK-Client stops calling a callback that raised: count instead
            self.callback_errors += 1

    def _vanished(self) -> None:
        self.parser.release_held(self.clock.now_ns())

    def _holding(self) -> bool:
        return len(self.parser._held) > 0


class JackMidiOutput(JackPort):
    """Plays to JACK MIDI at frame accuracy and remembers what it holds, so closing leaves silence.

    `send_at(message, deadline_ns)` is what the scheduler calls, `lead_ns` before the deadline; `send`
    plays at once (the next period's first frame). While the JACK server is down, messages are
    dropped and counted, never queued. `latency_ms` plays everything that much earlier, for a synth
    or device that adds a latency of its own (`realtime calibrate` measures it).
    """

    kind, direction = "output", "out"
    panics_at_once = True  # all_notes_off only queues a marker: any thread may call it, at once

    def __init__(self, clock: Clock, port: str | None = None, client_name: str = "realtime",
                 latency_ms: float = 0.0) -> None:
        self.latency_ns = int(latency_ms * 1e6)
        self._inbox: deque = deque()
        self._pending: list[tuple[float, int, bytes, NoteMessage | None]] = []
        self._order = itertools.count()
        self._held = HeldNotes()
        self.sent = self.dropped = 0
        self.late = 0  # written after their frame had passed (handed over too late)
        self.callback_errors = 0
        super().__init__(clock, port, client_name)

    @property
    def period_ns(self) -> int:
        client = self._client
        return int(client.blocksize * 1e9 / client.samplerate) if client is not None else 0

    @property
    def lead_ns(self) -> int:
        """How long before its deadline a message must be handed over to make its period."""
        return 2 * self.period_ns + SAFETY_NS + self.latency_ns

    # --- engine side ------------------------------------------------------------------------------
    def send_at(self, message: NoteMessage, deadline_ns: int | None) -> None:
        if not self._alive:
            self.dropped += 1
            return
        status = (0x90 if message.velocity else 0x80) | message.channel
        self._inbox.append((deadline_ns, bytes((status, message.pitch, message.velocity)), message))

    def send(self, message: NoteMessage) -> None:
        self.send_at(message, None)

    def send_raw_at(self, data: bytes, deadline_ns: int | None) -> None:
        """One complete MIDI message as bytes (clock, transport, program change) at its deadline."""
        if not self._alive:
            self.dropped += 1
            return
        self._inbox.append((deadline_ns, bytes(data), None))

    def send_raw(self, data: bytes | list[int] | tuple[int, ...]) -> None:
        self.send_raw_at(bytes(data), None)

    def all_notes_off(self) -> None:
        """Take back every message not yet written; then note-offs for every note written and not
        ended, and sustain off, all sound off, all notes off and reset controllers on each channel
        this port has played on, at the first frame of the next period."""
        if self._alive:
            self._inbox.append(_PANIC)

    @property
    def held(self) -> set[tuple[int, int]]:
        return set(self._held.held)

    @property
    def idle(self) -> bool:
        return not self._inbox and not self._pending

    # --- JACK's thread ----------------------------------------------------------------------------
    def _process(self, frames: int) -> None:
        try:
            self._write_period(frames)
        except Exception:  # JACK-Client stops calling a callback that raised: count instead
            self.callback_errors += 1

    def _write_period(self, frames: int) -> None:
        lib = jack._lib
        buffer = lib.jack_port_get_buffer(self._port._ptr, frames)
        lib.jack_midi_clear_buffer(buffer)
        first = self.frames.cycle(frames)
        inbox, pending, frame_at = self._inbox, self._pending, self.frames.frame_at
        while inbox:
            item = inbox.popleft()
            if item is _PANIC:  # take back what is not written yet, except an earlier panic's own messages
                pending[:] = [entry for entry in pending if entry[0] == _PANIC_AT]
                self._queue_panic(again=bool(pending))
                continue
            deadline, data, message = item
            at = -1.0 if deadline is None else frame_at(deadline - self.latency_ns)
            entry = (at, next(self._order), data, message)
            if pending and entry < pending[-1]:
                bisect.insort(pending, entry)
            else:
                pending.append(entry)
        end, written, last = first + frames, 0, 0
        while pending and written < MAX_EVENTS_PER_PERIOD:
            at, _, data, message = pending[0]
            if at >= end:
                break
            offset = int(at + 0.5) - first if at >= 0 else 0
            if offset < 0:
                self.late += 1
                offset = 0
            offset = max(offset, last)  # JACK keeps events in order within a period
            if lib.jack_midi_event_write(buffer, offset, data, len(data)):
                break  # the period's buffer is full: the rest goes out in the next one
            last = offset
            del pending[0]
            if message is not None:
                self._held.track(message)
            self.sent += 1
            written += 1

    def _queue_panic(self, again: bool) -> None:
        """Note-offs for what was written, then the controllers, first in the period. A second panic
        before the first is out (a cut-in cancels from two threads) adds only notes written since."""
        releases = [(_PANIC_AT, next(self._order), bytes((0x80 | off.channel, off.pitch, 0)), off)
                    for off in self._held.releases()]
        controls = [] if again else [(_PANIC_AT, next(self._order), bytes((0xB0 | channel, control, 0)), None)
                                     for channel in sorted(self._held.channels_used) for control in PANIC_CONTROLS]
        self._pending[:0] = releases + controls

    # --- lifecycle --------------------------------------------------------------------------------
    def _vanished(self) -> None:
        self._inbox.clear()
        self._pending.clear()  # keep the held notes: they are released when the port is back

    def _reconnected(self) -> None:
        self.all_notes_off()

    def close(self) -> None:
        if self._client is not None and self._alive:
            self.all_notes_off()
            self._drain()
            time.sleep(2 * self.period_ns / 1e9 + 0.002)  # the receiver reads it in this period or the next
        super().close()

    def _drain(self, idle_periods: int = 16, stalled_s: float = 2.0) -> None:
        """Wait while a big panic goes out over several periods. Patience is counted in the periods
        JACK's thread runs, not in wall time: a process stalled for half a second (a collection, a
        loaded machine) holds up both threads, and the one that wakes first must not give up on
        messages the other was about to write. It gives up after `idle_periods` periods that wrote
        nothing, or `stalled_s` without a period at all (the server is gone or stuck)."""
        frames = self.frames
        pause_s = self.period_ns / 4e9 + 0.0005
        sent, cycles, since = self.sent, frames.cycles, time.monotonic()
        quiet_from = cycles
        while not self.idle and self._alive:
            time.sleep(pause_s)
            now_cycles = frames.cycles
            if self.sent != sent:
                sent, quiet_from = self.sent, now_cycles
            elif now_cycles - quiet_from >= idle_periods:
                return
            if now_cycles != cycles:
                cycles, since = now_cycles, time.monotonic()
            elif time.monotonic() - since > stalled_s:
                return
