"""MIDI ports through python-rtmidi: ALSA, CoreMIDI, Windows MM and JACK behind the port protocols.

A port opens a named device (its exact name, else a unique part of it) or, given no name, a virtual
port that other programs connect to (JACK: `realtime-in:in` and `realtime-out:out`). Ports are
supervised from outside the hot path: `check()` notices a device that vanished or came back, and a
JACK server that stopped or restarted, and reconnects. Facts this module is built around (measured
with python-rtmidi 1.5.8, see shared PITFALLS):
- After the JACK server dies, rtmidi's sends raise nothing, and a full ring buffer makes them spin
  forever holding the GIL. A JACK client of our own (`JackWatch`) is told of the shutdown at once,
  and outputs drop messages from then on.
- Closing an rtmidi port of a dead server blocks for 1 s holding the GIL, yet it must be closed before
  a new JACK client opens, or the new one sees no ports. So a server's death costs one such pause
  per MIDI port, on the supervising thread, while MIDI is silent anyway.
- rtmidi on JACK garbles more than ~100 messages sent within one period: a panic is paced (MidiOutput).
The layers beside this one: midibackend.py (which backend, which rtmidi API) and jackwatch.py (the
JACK watch). This module is the rtmidi port itself.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque

import rtmidi

from ..clock import Clock
from ..errors import PortError
from ..events import NoteMessage
from ..priority import try_fifo
from .jackwatch import hold, jack_watch
from .midibackend import compiled_backends, create_rtmidi, list_ports
from .ports import PANIC_CONTROLS, HeldNotes, Listener, MidiParser, RawListener, Supervised, resolve_port

__all__ = ["MidiInput", "MidiOutput", "PANIC_CONTROLS", "resolve_port", "list_ports", "compiled_backends",
           "jack_watch"]

PANIC_BURST = 48  # messages per JACK period in a panic
POLL_S = 0.0005  # how often an input's reader thread looks at rtmidi's queue


def _retire(midi: object) -> None:
    """Close an rtmidi port. For a port of a dead JACK server this blocks ~1 s holding the GIL, but it
    must be done before any new JACK client opens: libjack serves new clients badly while clients of
    a dead server are still open (measured: their port lists come back empty)."""
    midi.close_port()
    midi.delete()


class _MidiPort(Supervised):
    """What inputs and outputs share: open by name or virtually, and reconnect under supervision."""

    kind, direction = "port", ""

    def __init__(self, port: str | None, backend: str | None, client_name: str) -> None:
        self.wanted = port
        self.client_name = f"{client_name}-{self.direction}"
        self._backend_asked = backend
        self.backend = ""
        self.name = ""
        self.connected = False
        self.server_down = False
        self._midi = None
        self._generation = 0  # the JACK watch's connection this port's client belongs to (jack only)
        self._retiring = threading.RLock()  # the supervisor and the watch may both retire a dead client
        self._warnings: list[str] = []
        self._open()
        if self.backend == "jack":
            hold(self)

    def _open(self) -> None:
        midi, self.backend = create_rtmidi(self._rtmidi_class, self._backend_asked, self.client_name)
        if self.backend == "jack":
            self._generation = jack_watch().generation  # create_rtmidi connected the watch first
        try:
            self._configure(midi)
            if self.wanted is None:
                midi.open_virtual_port(self.direction)
                self.name = self._virtual_name()
            else:
                names = midi.get_ports()
                self.name = resolve_port(names, self.wanted, self.kind, self.backend)
                midi.open_port(names.index(self.name), self.direction)
        except rtmidi.RtMidiError as err:
            midi.delete()
            raise PortError(f"cannot open MIDI {self.kind} {self.wanted or 'virtual port'} on {self.backend}: {err}")
        except BaseException:
            midi.delete()
            raise
        self._midi = midi
        self.connected = True

    def _configure(self, midi) -> None:
        pass

    def _virtual_name(self) -> str:
        if self.backend == "jack":
            mine = jack_watch().port_names(f"^{re.escape(self.client_name)}(-[0-9]+)?:{self.direction}$")
            if mine:
                return mine[-1]
        return f"{self.client_name}:{self.direction}"

    def _check_connection(self) -> str | None:
        if self.backend == "jack":
            watch = jack_watch()
            if not watch.serves(self._generation) and not self.server_down:
                self._lost()
                self.server_down = True
                return f"JACK server stopped: MIDI {self.kind} {self.name} paused, reconnecting when it is back"
            if self.server_down:
                if not watch.poll():
                    return None
                try:
                    self._open()
                except PortError:
                    return None  # the server is back but the device is not yet: try again next time
                self.server_down = False
                self._reconnected()
                return f"JACK server is back: MIDI {self.kind} {self.name} reconnected"
        if self.wanted is None or self._midi is None:
            return None
        names = self._midi.get_ports()
        vanished = self._peer_vanished(self.name, names)
        if vanished or self.connected:
            return vanished
        try:
            found = resolve_port(names, self.wanted, self.kind, self.backend)
        except PortError:
            return None
        self._midi.close_port()  # python-rtmidi's close_port also cancels an input's callback
        self._configure(self._midi)
        self._midi.open_port(names.index(found), self.direction)
        self.name, self.connected = found, True
        self._reconnected()
        return f"MIDI {self.kind} {found} is back: reconnected"

    def _lost(self) -> None:
        """The server died: stop using the rtmidi object at once and set it aside."""
        with self._retiring:
            midi, self._midi = self._midi, None
            self.connected = False
            if midi is not None:
                _retire(midi)
        self._vanished()

    def release_if_dead(self) -> None:
        """The watch asks before it connects to a new server: a client of the dead one closes now, even
        if the supervisor has not yet noticed (it reports the stop at its next look, as always)."""
        if self._midi is not None and not jack_watch().serves(self._generation):
            self._lost()

    def _vanished(self) -> None:
        pass

    def _reconnected(self) -> None:
        pass

    def close(self) -> None:
        with self._retiring:
            midi, self._midi = self._midi, None
            if midi is not None:
                _retire(midi)


class MidiInput(_MidiPort):
    """Notes and control changes from a MIDI port, stamped with the clock when they are read.

    No rtmidi callback is ever set: python-rtmidi frees a callback's data when it is cancelled while
    its backend thread may already be waiting to call it, which crashed the process (seen twice in
    full test runs on a loaded machine: a segfault in `MidiIn.delete()`). rtmidi queues what arrives
    in its own buffer instead, and a reader thread of ours takes it out every `POLL_S`; closing stops
    that thread first, so nothing can run into the freed port. Parsing is MidiParser's; when the
    device vanishes, the listener hears note-offs for the keys the player held.
    """

    kind, direction = "input", "in"
    _rtmidi_class = rtmidi.MidiIn

    def __init__(self, clock: Clock, port: str | None = None, backend: str | None = None,
                 client_name: str = "realtime", accept_clock: bool = False) -> None:
        self.clock = clock
        self.accept_clock = accept_clock
        self.parser = MidiParser(accept_clock, self._warnings_append)
        self.counts = self.parser.counts
        self._reading = False
        self._reader: threading.Thread | None = None
        self._warnings = []
        super().__init__(port, backend, client_name)
        self._start_reading()

    def _warnings_append(self, line: str) -> None:
        self._warnings.append(line)

    def set_listener(self, listener: Listener | None) -> None:
        self.parser.listener = listener

    def set_raw_listener(self, listener: RawListener | None) -> None:
        """Receive system real-time and common messages (clock, start, stop, song position)."""
        self.parser.raw_listener = listener

    def _configure(self, midi) -> None:
        midi.ignore_types(sysex=True, timing=not self.accept_clock, active_sense=True)

    def _read(self) -> None:
        try_fifo(f"MIDI input {self.name}")  # a reader at normal priority holding the GIL stalls JACK's callbacks
        clock, dispatch = self.clock, self.parser.dispatch
        while self._reading:
            midi = self._midi
            message = midi.get_message() if midi is not None else None
            if message is None:
                time.sleep(POLL_S)
                continue
            dispatch(message[0], clock.now_ns(), self.name)

    def _start_reading(self) -> None:
        if self._reader is None:
            self._reading = True
            self._reader = threading.Thread(target=self._read, name=f"midi-in {self.name}", daemon=True)
            self._reader.start()

    def _stop_reading(self) -> None:
        """Before the rtmidi object is deleted: a get_message() on a deleted port would crash."""
        self._reading = False
        if self._reader is not None:
            self._reader.join(timeout=1.0)
        self._reader = None

    def _lost(self) -> None:
        self._stop_reading()
        super()._lost()

    def _reconnected(self) -> None:
        self._start_reading()

    def _vanished(self) -> None:
        self.parser.release_held(self.clock.now_ns())

    def close(self) -> None:
        self._stop_reading()
        super().close()


class MidiOutput(_MidiPort):
    """Sends notes to a MIDI port and remembers what it holds, so closing it always leaves silence.

    While the JACK server is down, messages are dropped (and counted), never queued. On JACK a panic
    is paced, since rtmidi garbles more than ~100 messages sent within one period: its first
    PANIC_BURST messages go at once, the rest from this port's pacer thread, PANIC_BURST a period.
    Until they are out, what is sent queues behind them (MIDI clock aside), so no caller's thread
    sleeps (the scheduler's output thread calls `all_notes_off` on a cut-in) and the panic's
    controllers cannot end a note played after it.
    """

    kind, direction = "output", "out"
    _rtmidi_class = rtmidi.MidiOut

    def __init__(self, port: str | None = None, backend: str | None = None, client_name: str = "realtime") -> None:
        self._held = HeldNotes()
        self.sent = self.dropped = 0
        self._backlog: deque[tuple[int, ...]] = deque()  # what waits behind a paced panic, in order
        self._pacer_wake, self._pacer_stop = threading.Event(), False
        super().__init__(port, backend, client_name)
        self._watch = jack_watch() if self.backend == "jack" else None
        self._pacer = None
        if self._watch is not None:
            self._pacer = threading.Thread(target=self._pace, name=f"midi-out {self.name} panic", daemon=True)
            self._pacer.start()

    def _on_its_server(self) -> bool:
        """Can this port send: not JACK, or the JACK server it opened under still runs."""
        return self._watch is None or self._watch.serves(self._generation)

    def send(self, message: NoteMessage) -> None:
        if self._midi is None or not self._on_its_server():
            self.dropped += 1
            return
        self._held.track(message)
        if message.velocity:
            self._send_in_order((0x90 | message.channel, message.pitch, message.velocity))
        else:
            self._send_in_order((0x80 | message.channel, message.pitch, 0))

    def send_raw(self, data: bytes | list[int] | tuple[int, ...]) -> None:
        """Send one complete MIDI message as bytes (clock, transport, program change...); a system
        real-time message (clock, start, stop) never waits behind a panic."""
        if data and data[0] >= 0xF8:
            self._send_now(data)
        else:
            self._send_in_order(data)

    @property
    def held(self) -> set[tuple[int, int]]:
        return set(self._held.held)

    def all_notes_off(self) -> None:
        """Note-offs for every held note, then sustain off, all sound off, all notes off and reset
        controllers on every channel this port has played on. Returns at once: on JACK what does not
        fit in this period goes out over the next ones, before anything sent after it."""
        if self._midi is None or not self._on_its_server():
            return  # nothing can be sent: keep the held notes, released when the port is back
        channels = sorted(self._held.channels_used)
        messages = [(0x80 | off.channel, off.pitch, 0) for off in self._held.releases()]
        messages += [(0xB0 | channel, control, 0) for channel in channels for control in PANIC_CONTROLS]
        # an earlier panic still going out: this one follows it; not JACK: nothing to pace
        now = [] if self._backlog else messages if self._watch is None else messages[:PANIC_BURST]
        for message in now:
            self._send_now(message)
        if len(now) < len(messages):
            self._backlog.extend(messages[len(now):])
            self._pacer_wake.set()

    def _send_in_order(self, data) -> None:
        if self._backlog:  # a panic is still going out: stay behind it
            self._backlog.append(data)
            self._pacer_wake.set()
        else:
            self._send_now(data)

    def _send_now(self, data) -> None:
        midi = self._midi
        if midi is None or not self._on_its_server():
            self.dropped += 1
            return
        midi.send_message(data)
        self.sent += 1

    def _pace(self) -> None:
        """The pacer thread, the backlog's only consumer: PANIC_BURST messages a JACK period, each sent
        before it is taken off, so a sender that sees the backlog empty has nothing left to wait for.
        While the server is down they are dropped and counted, as every send then is."""
        try_fifo(f"MIDI output {self.name}'s panic pacer")  # as the threads whose GIL it shares
        backlog = self._backlog
        while not self._pacer_stop:
            self._pacer_wake.wait()
            self._pacer_wake.clear()
            while backlog and not self._pacer_stop:
                time.sleep(self._watch.period_s() + 0.0005)  # the last burst left in the period before
                for _ in range(min(PANIC_BURST, len(backlog))):
                    try:
                        self._send_now(backlog[0])
                    except Exception:  # a message rtmidi refuses must not hold up the rest: count it
                        self.dropped += 1
                    backlog.popleft()

    def _stop_pacer(self) -> None:
        """Before the rtmidi object is deleted: a send on a deleted port would crash."""
        self._pacer_stop = True
        self._pacer_wake.set()
        if self._pacer is not None and threading.current_thread() is not self._pacer:
            self._pacer.join(timeout=2.0)

    def _reconnected(self) -> None:
        self.all_notes_off()  # the held notes were kept while the device was gone

    def close(self) -> None:
        if self._midi is not None:
            self.all_notes_off()
            if self._watch is not None and self._on_its_server():
                deadline = time.monotonic() + 2.0
                while self._backlog and self._on_its_server() and time.monotonic() < deadline:
                    time.sleep(0.001)  # the pacer sends the panic's rest, a burst a period
                time.sleep(2 * self._watch.period_s() + 0.002)  # JACK sends once a period: let them leave
        self._stop_pacer()
        super().close()
