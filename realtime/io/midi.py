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
- An exception inside an input callback is swallowed by rtmidi: the callback catches and counts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import sys
import threading
import time
from collections import deque

import rtmidi

from ..clock import Clock
from ..errors import PortError
from ..events import NoteMessage
from ..priority import try_fifo
from .midiparse import PANIC_CONTROLS, PLATFORM_BACKENDS, MidiParser, RawListener, Supervised, resolve_port
from .ports import HeldNotes, Listener

__all__ = ["MidiInput", "MidiOutput", "PANIC_CONTROLS", "resolve_port", "list_ports", "compiled_backends"]

BACKENDS: dict[str, int] = {
    "alsa": rtmidi.API_LINUX_ALSA,
    "coremidi": rtmidi.API_MACOSX_CORE,
    "jack": rtmidi.API_UNIX_JACK,
    "winmm": rtmidi.API_WINDOWS_MM,
}
PANIC_BURST = 48  # messages per JACK period in a panic
POLL_S = 0.0005  # how often an input's reader thread looks at rtmidi's queue


def _api(backend: str) -> int:
    if backend not in BACKENDS:
        raise PortError(f"unknown MIDI backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    api = BACKENDS[backend]
    if api not in rtmidi.get_compiled_api():
        have = ", ".join(name for name, code in BACKENDS.items() if code in rtmidi.get_compiled_api())
        raise PortError(f"MIDI backend {backend} is not built into python-rtmidi here (it has: {have})")
    return api


def compiled_backends() -> list[str]:
    """The backends this build of python-rtmidi has (on Linux wheels: alsa and jack)."""
    compiled = rtmidi.get_compiled_api()
    return [name for name, api in BACKENDS.items() if api in compiled]


def candidate_backends(backend: str | None) -> tuple[str, ...]:
    """The backend asked for, else this platform's in order of preference."""
    if backend:
        _api(backend)
        return (backend,)
    return PLATFORM_BACKENDS.get(sys.platform, ("alsa", "jack"))


def _create(cls: type, backend: str | None, client_name: str) -> tuple[object, str]:
    """An rtmidi MidiIn or MidiOut on the first backend that works; one error naming them all if none."""
    problems = []
    for name in candidate_backends(backend):
        try:
            if name == "jack" and not jack_watch().poll():
                raise PortError("no JACK server is running (start one, e.g. `jackd -d dummy`, or use qjackctl)")
            return cls(_api(name), client_name), name
        except PortError as err:
            problems.append(f"{name}: {err}")
        except (SystemError, rtmidi.RtMidiError) as err:
            hint = " (no /dev/snd/seq: no sound card or snd-seq module)" if name == "alsa" else ""
            problems.append(f"{name}: {err}{hint}")
    raise PortError("no MIDI backend could start: " + "; ".join(problems))


def list_ports(backend: str) -> dict[str, list[str]]:
    """{"inputs": ports we can listen to, "outputs": ports we can play to} on one backend."""
    midi_in, _ = _create(rtmidi.MidiIn, backend, "realtime-list")
    midi_out, _ = _create(rtmidi.MidiOut, backend, "realtime-list")
    try:
        return {"inputs": midi_in.get_ports(), "outputs": midi_out.get_ports()}
    finally:
        midi_in.delete()
        midi_out.delete()


class JackWatch:
    """One per process (`jack_watch()`): a JACK client of our own that learns at once when the server shuts down, and can tell when
    it is back. It also takes libjack's error printing (the library rtmidi loaded), so a dead server
    is reported by us once rather than by libjack on every call."""

    _NO_START_SERVER = 0x01

    def __init__(self) -> None:
        self.alive = False
        self.messages = _JACK_MESSAGES
        self._lib = _load_libjack()
        self._client: int | None = None
        self._lock = threading.Lock()
        if self._lib is None:
            return
        lib = self._lib
        lib.jack_set_error_function(_ON_JACK_MESSAGE)
        lib.jack_set_info_function(_ON_JACK_MESSAGE)
        lib.jack_client_open.restype = ctypes.c_void_p
        lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        self._shutdown_type = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
        self._on_shutdown = self._shutdown_type(self._shutdown)
        lib.jack_on_shutdown.argtypes = [ctypes.c_void_p, self._shutdown_type, ctypes.c_void_p]
        lib.jack_client_close.argtypes = [ctypes.c_void_p]
        lib.jack_get_ports.restype = ctypes.POINTER(ctypes.c_char_p)
        lib.jack_get_ports.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong]
        lib.jack_free.argtypes = [ctypes.c_void_p]
        lib.jack_get_buffer_size.argtypes = [ctypes.c_void_p]
        lib.jack_get_buffer_size.restype = ctypes.c_uint32
        lib.jack_get_sample_rate.argtypes = [ctypes.c_void_p]
        lib.jack_get_sample_rate.restype = ctypes.c_uint32
        self.poll()

    def _shutdown(self, _arg: int | None) -> None:
        self.alive = False  # the client is closed by the next poll(): closing it now can deadlock

    def poll(self) -> bool:
        """Is a server running? Connects when one has (re)started; off the hot path (up to ~30 ms)."""
        if self._lib is None:
            return False
        with self._lock:
            if self.alive:
                return True
            if self._client is not None:  # the server died under this client: JACK still wants it closed
                self._lib.jack_client_close(self._client)
                self._client = None
            jack_client_side = sys.modules.get("realtime.io.jackmidi")
            if jack_client_side is not None:  # the JACK-Client ports' dead clients close first too
                jack_client_side.release_dead_ports()
            status = ctypes.c_int(0)
            client = self._lib.jack_client_open(b"realtime-watch", self._NO_START_SERVER, ctypes.byref(status))
            if client:
                self._lib.jack_on_shutdown(client, self._on_shutdown, None)
                self._client = client
                self.alive = True
            return self.alive

    def release_dead(self) -> None:
        """Close our client of a server that died, before any other JACK client opens: libjack serves
        new clients badly (and closing the stale one later crashed it) while such clients stay open."""
        if self._lib is None:
            return
        with self._lock:
            if not self.alive and self._client is not None:
                self._lib.jack_client_close(self._client)
                self._client = None

    def period_s(self) -> float:
        """One JACK period: how long a sent message may wait in rtmidi's buffer before it leaves."""
        if not self.poll():
            return 0.0
        frames = self._lib.jack_get_buffer_size(self._client)
        rate = self._lib.jack_get_sample_rate(self._client)
        return frames / rate if rate else 0.0

    def port_names(self, pattern: str) -> list[str]:
        """Full names of JACK MIDI ports matching a regular expression (JACK's own matching)."""
        if not self.poll():
            return []
        found = self._lib.jack_get_ports(self._client, pattern.encode(), b"midi", 0)
        if not found:
            return []
        names, index = [], 0
        while found[index]:
            names.append(found[index].decode(errors="replace"))
            index += 1
        self._lib.jack_free(found)
        return names


_JACK_MESSAGES: deque[str] = deque(maxlen=20)  # libjack's last words, for diagnostics
# libjack keeps this function pointer for the life of the process: it must never be freed
_ON_JACK_MESSAGE = ctypes.CFUNCTYPE(None, ctypes.c_char_p)(
    lambda text: _JACK_MESSAGES.append(text.decode(errors="replace")))


def _load_libjack() -> ctypes.CDLL | None:
    """The libjack python-rtmidi uses (its wheel bundles one), else the system's."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                if "libjack" in line and "rtmidi" in line:
                    return ctypes.CDLL(line.split(maxsplit=5)[-1].strip())
    except OSError:
        pass
    name = ctypes.util.find_library("jack")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


_WATCH: JackWatch | None = None


def jack_watch() -> JackWatch:
    global _WATCH
    if _WATCH is None:
        _WATCH = JackWatch()
    return _WATCH


def _retire(midi: object) -> None:
    """Close an rtmidi port. For a port of a dead JACK server this blocks ~1 s holding the GIL, but it
    must be done before any new JACK client opens: libjack serves new clients badly while clients of
    a dead server are still open (measured: their port lists come back empty)."""
    midi.close_port()
    midi.delete()


class _MidiPort(Supervised):
    """What inputs and outputs share: open by name or virtually, and reconnect under supervision."""

    kind = "port"
    direction = ""

    def __init__(self, port: str | None, backend: str | None, client_name: str) -> None:
        self.wanted = port
        self.client_name = f"{client_name}-{self.direction}"
        self._backend_asked = backend
        self.backend = ""
        self.name = ""
        self.connected = False
        self.server_down = False
        self._midi = None
        self._warnings: list[str] = []
        self._open()

    def _open(self) -> None:
        midi, self.backend = _create(self._rtmidi_class, self._backend_asked, self.client_name)
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
            if not watch.alive and not self.server_down:
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
        if self.connected and self.name not in names:
            self.connected = False
            self._vanished()
            return f"MIDI {self.kind} {self.name} vanished; the engine keeps running and reconnects when it is back"
        if not self.connected:
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
        return None

    def _lost(self) -> None:
        """The server died: stop using the rtmidi object at once and set it aside."""
        midi, self._midi = self._midi, None
        self.connected = False
        if midi is not None:
            _retire(midi)
        self._vanished()

    def _vanished(self) -> None:
        pass

    def _reconnected(self) -> None:
        pass

    def close(self) -> None:
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

    While the JACK server is down, messages are dropped (and counted), never queued.
    """

    kind, direction = "output", "out"
    _rtmidi_class = rtmidi.MidiOut

    def __init__(self, port: str | None = None, backend: str | None = None, client_name: str = "realtime") -> None:
        self._held = HeldNotes()
        self.sent = 0
        self.dropped = 0
        super().__init__(port, backend, client_name)
        self._watch = jack_watch() if self.backend == "jack" else None

    def send(self, message: NoteMessage) -> None:
        midi = self._midi
        if midi is None or (self._watch is not None and not self._watch.alive):
            self.dropped += 1
            return
        self._held.track(message)
        if message.velocity:
            midi.send_message((0x90 | message.channel, message.pitch, message.velocity))
        else:
            midi.send_message((0x80 | message.channel, message.pitch, 0))
        self.sent += 1

    def send_raw(self, data: bytes | list[int] | tuple[int, ...]) -> None:
        """Send one complete MIDI message as bytes (clock, transport, program change...)."""
        midi = self._midi
        if midi is None or (self._watch is not None and not self._watch.alive):
            self.dropped += 1
            return
        midi.send_message(data)
        self.sent += 1

    @property
    def held(self) -> set[tuple[int, int]]:
        return set(self._held.held)

    def all_notes_off(self) -> None:
        """Note-offs for every held note, then sustain off, all sound off, all notes off and reset
        controllers on every channel this port has played on."""
        if self._midi is None or (self._watch is not None and not self._watch.alive):
            return  # nothing can be sent: keep the held notes, released when the port is back
        channels = sorted(self._held.channels_used)
        messages = [(0x80 | off.channel, off.pitch, 0) for off in self._held.releases()]
        messages += [(0xB0 | channel, control, 0) for channel in channels for control in PANIC_CONTROLS]
        pause = self._watch.period_s() + 0.0005 if self._watch is not None else 0.0
        for index, message in enumerate(messages):
            if pause and index and index % PANIC_BURST == 0:
                time.sleep(pause)  # rtmidi on JACK garbles more than ~100 messages in one period
            self.send_raw(message)

    def _vanished(self) -> None:
        pass  # keep the held notes: they are released on the device when it is back

    def _reconnected(self) -> None:
        self.all_notes_off()

    def close(self) -> None:
        if self._midi is not None:
            self.all_notes_off()
            if self._watch is not None and self._watch.alive:
                time.sleep(2 * self._watch.period_s() + 0.002)  # JACK sends once a period: let them leave
        super().close()
