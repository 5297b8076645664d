"""The JACK watch: whether a JACK server runs, heard at once when it stops, and the clean-up of a dead one.

python-rtmidi's JACK backend registers no shutdown callback, and after the server dies its sends raise
nothing (and spin holding the GIL once their ring buffer is full). So a JACK client of our own
(`JackWatch`, one per process through `jack_watch()`) learns of the shutdown, and rtmidi outputs stop
sending. ctypes only: no rtmidi and no JACK-Client are imported here, and libjack is loaded only when
the watch is first asked for.

libjack serves new clients badly (their port lists came back empty) while clients of a dead server
are still open, and one left open crashed libjack when closed later: `release_dead_clients()` closes
every client of ours whose server died, the JACK-Client ports (jackport.py registers them with
`hold`) and the watch's own, before any new client opens.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import weakref
from collections import deque

_HELD: "weakref.WeakSet" = weakref.WeakSet()  # JACK ports of ours: each has release_if_dead()


def hold(port) -> None:
    """Count a port (JACK-Client or python-rtmidi on JACK) among the clients to close once their server
    died, before the watch connects to the next one."""
    _HELD.add(port)


def release_dead_ports() -> None:
    """Close the clients of ours whose server died."""
    for port in list(_HELD):
        port.release_if_dead()


def release_dead_clients() -> None:
    """Close every client whose server died, the JACK-Client ports' and the watch's (off the hot path)."""
    release_dead_ports()
    if _WATCH is not None:
        _WATCH.release_dead()


class JackWatch:
    """A JACK client of our own that learns at once when the server shuts down, and can tell when it is
    back. It also takes libjack's error printing (the library rtmidi loaded), so a dead server is
    reported by us once rather than by libjack on every call."""

    _NO_START_SERVER = 0x01

    def __init__(self) -> None:
        self.alive = False
        # one more at each connection: a port opened under an earlier one belongs to a server that died,
        # even when the watch has already reconnected to its successor (see `serves`)
        self.generation = 0
        self._period_s = 0.0
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
            # every client of the dead server closes before libjack opens another: rtmidi's ports share
            # this libjack, which would otherwise free them itself ("clients are still allocated,
            # cleanup") and rtmidi's own close later ran into freed memory
            release_dead_ports()
            status = ctypes.c_int(0)
            client = self._lib.jack_client_open(b"realtime-watch", self._NO_START_SERVER, ctypes.byref(status))
            if client:
                self._lib.jack_on_shutdown(client, self._on_shutdown, None)
                rate = self._lib.jack_get_sample_rate(client)
                self._period_s = self._lib.jack_get_buffer_size(client) / rate if rate else 0.0
                self._client = client
                self.generation += 1
                self.alive = True
            return self.alive

    def serves(self, generation: int) -> bool:
        """Is the server a port was opened under (`generation`, read when it opened) still the one running?
        False once it died, and still False after the watch has reconnected to a new server: a port that
        missed the death must not send into its dead client (that froze the process) or stay on it."""
        return self.alive and self.generation == generation

    def release_dead(self) -> None:
        """Close our client of a server that died, before any other JACK client opens."""
        if self._lib is None:
            return
        with self._lock:
            if not self.alive and self._client is not None:
                self._lib.jack_client_close(self._client)
                self._client = None

    def period_s(self) -> float:
        """One JACK period of the server last connected to: how long a sent message may wait in rtmidi's
        buffer before it leaves. Never connects: a port's pacer asks it, and must not be the one that
        reconnects the watch before the ports have seen their server die."""
        return self._period_s

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
    """The process's one watch, made on first use: after rtmidi is imported (midi.py asks), so that it
    shares rtmidi's libjack and takes that library's error printing."""
    global _WATCH
    if _WATCH is None:
        _WATCH = JackWatch()
    return _WATCH
