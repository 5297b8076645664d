"""`/listen/*` over OSC: what the listener hears, sent from a thread of its own (never the engine's).

Every `interval_ms` the sender takes a snapshot and sends `/listen/chord` and `/listen/key` when
they changed (and once a second anyway, for a receiver that starts late) and `/listen/tempo` each
time while there is a tempo. The messages are the table below (the README's "OSC sent" table is
made from it and the note messages, `sent_table_markdown`). Sending never blocks: a failure is counted.
"""

from __future__ import annotations

import socket
import threading

from ..clock import Clock
from ..errors import PortError
from ..io.osc import encode_message
from ..priority import MAIN_PRIORITY, try_fifo
from .chords import QUALITY_NAMES
from .listener import Listener, ListenState

# address -> (arguments as the README writes them, meaning)
LISTEN_MESSAGES = {
    "/listen/chord": ("root:int (-1, 0-11), quality:str, confidence:float 0-1",
                      "The chord sounding: root pitch class (0 = C; -1 and none before any chord), quality "
                      f"({', '.join(QUALITY_NAMES)})"),
    "/listen/key": ("tonic:int (-1, 0-11), mode:str, confidence:float 0-1",
                    "The key: tonic pitch class (-1 before three pitch classes were heard), major or minor"),
    "/listen/tempo": ("bpm:float, phase:float 0-1, locked:int 0-1",
                      "The player's tempo (0 before there is one), where in the beat now is, and whether the "
                      "tracker is locked (or the MIDI clock runs)"),
}
NOTE_MESSAGES = {  # what realtime.io.osc.OscOutput sends, listed here so the README has one table of what goes out
    "/note/on": ("pitch:int 0-127, velocity:int 1-127, channel:int 0-15", "An engine note starts"),
    "/note/off": ("pitch:int 0-127, channel:int 0-15", "An engine note ends"),
}
REFRESH_NS = 1_000_000_000  # chord and key are sent again after this long even when unchanged


def sent_table_markdown() -> str:
    """The README's "OSC sent" table: every address that goes to [osc] out_host."""
    lines = ["| Address sent | Arguments | Meaning |", "| --- | --- | --- |"]
    lines += [f"| `{address}` | {args} | {meaning} |" for address, (args, meaning) in
              (NOTE_MESSAGES | LISTEN_MESSAGES).items()]
    return "\n".join(lines) + "\n"


def messages(state: ListenState) -> dict[str, bytes]:
    """The three messages for one snapshot."""
    chord, key, tempo = state.chord, state.key, state.tempo
    return {
        "/listen/chord": encode_message("/listen/chord", -1 if chord.root is None else chord.root, chord.quality or "none",
                                float(chord.confidence)),
        "/listen/key": encode_message("/listen/key", -1 if key.tonic is None else key.tonic, key.mode, float(key.confidence)),
        "/listen/tempo": encode_message("/listen/tempo", float(tempo.bpm or 0.0), float(state.phase), int(tempo.locked)),
    }


class ListenSender:
    """A daemon thread sending the listener's state to (host, port) every interval_ms until `close()`."""

    def __init__(self, listener: Listener, clock: Clock, host: str, port: int, interval_ms: float) -> None:
        try:
            self._target = (socket.gethostbyname(host), port)
        except OSError as err:
            raise PortError(f"[osc] out_host {host!r} does not resolve for /listen/* messages: {err}") from err
        self.listener, self.clock, self.interval_s = listener, clock, interval_ms / 1000
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self.sent = self.errors = 0
        self._last: dict[str, tuple[object, int]] = {}  # address -> (what was sent, when)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="listen-osc", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try_fifo("the /listen/* sender", MAIN_PRIORITY)  # holding the GIL at normal priority, a busy
        # machine could preempt it there and stall the engine's threads and JACK callbacks behind it
        while not self._stop.wait(self.interval_s):
            self.send_once()

    def send_once(self) -> None:
        now = self.clock.now_ns()
        state = self.listener.snapshot(now)
        content = {"/listen/chord": (state.chord.root, state.chord.quality, state.chord.confidence),
                   "/listen/key": (state.key.tonic, state.key.mode, state.key.confidence),
                   "/listen/tempo": None if state.tempo.bpm is None else now}
        for address, packet in messages(state).items():
            what = content[address]
            if address != "/listen/tempo":
                last = self._last.get(address)
                if last is not None and last[0] == what and now - last[1] < REFRESH_NS:
                    continue
            elif what is None:
                continue
            try:
                self._sock.sendto(packet, self._target)
                self.sent += 1
                self._last[address] = (what, now)
            except OSError:  # a full buffer, no route: count, never raise
                self.errors += 1

    def close(self) -> None:
        """Stop the thread (idempotent)."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=1.0)
        self._sock.close()
