"""One JACK-Client client with one MIDI port: opened, connected by name, supervised, closed safely.

What jackmidi.py's input and output share. The port connects to a named port of another client
(its exact name, else a unique part of it) or waits for others to connect to it; `check()` (off
the hot path) notices the peer vanishing or coming back and the server stopping or restarting, and
reconnects. Every client registers with the JACK watch (jackwatch.py), which closes the clients of
a dead server before any new one opens. Closing deactivates first: `jack_deactivate` waits for the
process callback to return, so no callback can run into freed memory.
"""

from __future__ import annotations

from ..clock import Clock
from ..errors import PortError
from .jackclock import FrameClock
from .jackwatch import hold, release_dead_clients
from .ports import Supervised, resolve_port

try:
    import jack
except (ImportError, OSError) as _err:  # no JACK-Client, or no libjack on this machine
    jack = None
    _IMPORT_ERROR = f"{type(_err).__name__}: {_err}"


def available() -> str | None:
    """None when JACK-Client and libjack are there, else why not."""
    return None if jack is not None else f"JACK-Client cannot load ({_IMPORT_ERROR})"


def _open_client(name: str) -> "jack.Client":
    release_dead_clients()
    if jack is None:
        raise PortError(f"JACK MIDI is not available: {_IMPORT_ERROR}")
    try:
        return jack.Client(name, no_start_server=True)
    except jack.JackOpenError as err:
        raise PortError(f"no JACK server is running (start one, e.g. `jackd -d dummy`, or use qjackctl): {err}")


class JackPort(Supervised):
    """What inputs and outputs share: one JACK client with one MIDI port, connected to a named port
    (exact name, else a unique part of it) or left for others to connect; supervised by `check()`."""

    kind, direction = "port", ""

    def __init__(self, clock: Clock, port: str | None, client_name: str) -> None:
        self.clock = clock
        self.wanted = port
        self.client_name = f"{client_name}-{self.direction}"
        self.backend = "jack"
        self.name = ""
        self.peer = ""  # the port we are connected to, when one was named
        self.connected = False
        self.server_down = False
        self._alive = False
        self._client = None
        self._port = None
        self._peers: set[str] = set()  # who was connected to a port no peer was named for, when last checked
        self.frames: FrameClock | None = None
        self._warnings: list[str] = []
        self._open()
        hold(self)

    # --- lifecycle (never on the hot path) --------------------------------------------------------
    def _open(self) -> None:
        client = _open_client(self.client_name)
        try:
            ports = client.midi_inports if self.direction == "in" else client.midi_outports
            self._port = ports.register(self.direction)
            self.frames = FrameClock(client, self.clock)
            client.set_process_callback(self._process)
            client.set_shutdown_callback(self._shutdown)
            self._client, self._alive, self._peers = client, True, set()
            client.activate()
            self.name = self._port.name
            if self.wanted is not None:
                self.peer = resolve_port(self._peer_names(), self.wanted, self.kind, "jack")
                try:
                    self._connect()
                except jack.JackError as err:
                    raise PortError(f"cannot connect MIDI {self.kind} {self.name} with {self.peer}: {err}") from err
        except BaseException:
            self._alive = False
            client.deactivate()
            client.close()
            self._client = None
            raise
        self.connected = True

    def _peer_names(self) -> list[str]:
        """Ports of other clients we could connect to: sources for an input, destinations for an output."""
        found = self._client.get_ports(is_midi=True, is_output=self.direction == "in",
                                       is_input=self.direction == "out")
        return [p.name for p in found if not p.name.startswith(self._client.name + ":")]

    def _connect(self) -> None:
        if self.direction == "in":
            self._client.connect(self.peer, self._port.name)
        else:
            self._client.connect(self._port.name, self.peer)

    def _shutdown(self, _status, _reason) -> None:
        self._alive = False  # JACK's thread: set a flag only; check() closes the client

    def release_if_dead(self) -> None:
        """Close this client if its server died (jackwatch.release_dead_clients asks each port)."""
        if not self._alive and self._client is not None:
            self._release_client()

    def _release_client(self) -> None:
        client, self._client = self._client, None
        self._alive = False
        if client is not None:
            client.deactivate()  # waits for the process callback to return (the GIL is released)
            client.close()

    def _check_connection(self) -> str | None:
        if not self._alive and not self.server_down:
            self.server_down, self.connected = True, False
            release_dead_clients()
            self._vanished()
            return f"JACK server stopped: MIDI {self.kind} {self.name} paused, reconnecting when it is back"
        if self.server_down:
            try:
                self._open()
            except PortError:
                return None  # no server yet, or the named port is not back yet: try again next time
            self.server_down = False
            self._reconnected()
            return f"JACK server is back: MIDI {self.kind} {self.name} reconnected"
        if self._client is None:
            return None
        if self.wanted is None:
            return self._check_peers()
        names = self._peer_names()
        vanished = self._peer_vanished(self.peer, names)
        if vanished or self.connected:
            return vanished
        try:
            self.peer = resolve_port(names, self.wanted, self.kind, "jack")
            self._connect()
        except (PortError, jack.JackError):
            return None
        self.connected = True
        self._reconnected()
        return f"MIDI {self.kind} {self.peer} is back: reconnected"

    def _check_peers(self) -> str | None:
        """An input no peer was named for: whoever connected to it and has gone (a keyboard unplugged or a
        bridge that quit with keys down) counts as vanished, so the keys they held are let go. Every peer
        shares the one port, so which keys were whose is not known: all held keys are released."""
        if self.direction != "in":
            return None
        try:
            now = {port.name for port in self._port.connections}
        except jack.JackError:
            return None
        gone, self._peers = self._peers - now, now
        if not gone and (now or not self._holding()):  # one that came and went between two checks: nobody left
            return None
        self._vanished()
        who = ", ".join(sorted(gone)) or "every client"
        return f"MIDI {self.kind} {self.name}: {who} disconnected; the keys it held are released"

    def _holding(self) -> bool:
        return False

    def _vanished(self) -> None:
        pass

    def _reconnected(self) -> None:
        pass

    def _process(self, frames: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._release_client()
