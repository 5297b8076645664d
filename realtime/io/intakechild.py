"""The OSC intake process (`python -m realtime.io.intakechild`): an OscInput whose listener writes a ring.

The parent's side is intake.py (OscIntake), which starts this process and reads the ring. Here: the
configuration arrives as length-prefixed pickles on stdin (start-up and registration only, never per
event); each validated event becomes one ring record; drop counts are published into the ring's
header every PUBLISH_EVERY_S and each kind's first warning line goes to stdout ("W ..."), answers to
commands as "R"/"A"/"E" lines. The process dies with its parent (a parent-death signal, and the end
of its stdin) and ignores Ctrl-C, which reaches the whole group: the parent decides.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import selectors
import signal
import socket
import struct
import sys
from contextlib import suppress

from ..errors import InputError
from ..events import LeadSheetRequest, LearnRequest, MemoryRequest, ModeRequest, NoteMessage, ShapeRequest
from ..priority import try_fifo
from .osc import OscInput
from .ring import EventRing

# drop kinds published as counters, by slot; a kind not listed is counted under 'other'
DROP_KINDS = ("sender", "malformed", "encoding", "type", "range", "unknown-address", "reserved-address",
              "bundle-depth", "value", "unknown-name", "callback", "internal", "socket", "shed", "overflow",
              "kernel", "ring-full", "other")
RECEIVED_SLOT = len(DROP_KINDS)
PUBLISH_EVERY_S = 0.02
CONTROL_WAKE_NS = 1_000_000
_PR_SET_PDEATHSIG = 1
LENGTH = struct.Struct("<I")  # the length prefix of each pickle on the child's stdin


class _Child:
    """The intake process: an OscInput on the inherited socket, its listener writing the ring."""

    def __init__(self, config: dict, out) -> None:
        from ..clock import SystemClock

        self.out = out
        self.ring = EventRing.attach(config["ring"], config["capacity"])
        self.wake_fd = config["wake_fd"]
        os.set_blocking(self.wake_fd, False)
        self.last_wake_ns = 0
        sock = socket.socket(fileno=config["sock_fd"])
        self.osc = OscInput(SystemClock(), allow=config["allow"], sock=sock,
                            kernel_filtered=config["kernel_filtered"])
        self.osc.set_listener(self.hand_over)

    def wake(self) -> None:
        with suppress(BlockingIOError, OSError):  # a full pipe already holds a wake-up
            os.write(self.wake_fd, b"w")

    def hand_over(self, event, at_ns: int) -> None:
        """The OscInput's listener (its receive thread): one record, and a wake-up for what is urgent."""
        if not self.ring.push(event, at_ns):
            kind = "ring-full" if len(self.ring) >= self.ring.capacity else "range"
            detail = ("the engine is not keeping up; the ring to it is full" if kind == "ring-full"
                      else "a name longer than the ring's records hold (100 bytes)" if not isinstance(event, LeadSheetRequest)
                      else "no room in the ring for the text's records (the engine is not keeping up)")
            self.osc._drop(kind, detail, getattr(event, "name", ""), ("osc", 0))
            return
        if isinstance(event, (NoteMessage, LearnRequest, ModeRequest, MemoryRequest, ShapeRequest, LeadSheetRequest)) \
                or hasattr(event, "kind"):
            self.wake()
            return
        if at_ns - self.last_wake_ns >= CONTROL_WAKE_NS:
            self.last_wake_ns = at_ns
            self.wake()

    def post(self, message, at_ns: int) -> None:
        self.hand_over(message, at_ns)

    def publish(self) -> None:
        """Counters into the ring's header, new warning lines to stdout, and a wake-up owed to a control."""
        for line in self.osc.take_warnings():  # counts the kernel's drops first
            self.out.write(f"W {line}\n".encode("utf-8", "replace"))
        self.out.flush()
        counts = self.osc.drops
        other = sum(n for kind, n in counts.items() if kind not in DROP_KINDS)
        for slot, kind in enumerate(DROP_KINDS):
            self.ring.publish(slot, counts.get(kind, 0) + (other if kind == "other" else 0))
        self.ring.publish(RECEIVED_SLOT, self.osc.received)
        if len(self.ring):
            self.wake()

    def command(self, message) -> None:
        if message[0] == "register":
            _, pattern, spec, handler = message
            self.osc.register(pattern, spec, handler)
        elif message[0] == "game":
            from ..engine.gameosc import game_routes

            for address, spec, handler in game_routes(message[1], self.post, self.osc.clock.now_ns):
                self.osc.register(address, spec, handler)
        self.out.write(b"A ok\n")
        self.out.flush()

    def close(self) -> None:
        self.osc.close()
        self.publish_final()

    def publish_final(self) -> None:
        with suppress(Exception):
            self.publish()
        self.ring.close()


def _die_with_parent(parent_pid: int) -> None:
    """SIGKILL when the parent ends (Linux); if it already ended before this line ran, end now."""
    with suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def _read_exactly(fd: int, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _read_message(fd: int) -> object | None:
    """One length-prefixed pickle from the parent (configuration only); None at end of file."""
    head = _read_exactly(fd, LENGTH.size)
    body = None if head is None else _read_exactly(fd, LENGTH.unpack(head)[0])
    return None if body is None else pickle.loads(body)


def child_main(argv: list[str]) -> None:
    _die_with_parent(int(argv[0]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    stdin, out = sys.stdin.fileno(), sys.stdout.buffer
    config = _read_message(stdin)
    if config is None:
        return
    note = try_fifo("the OSC intake process", config["priority"]) if config["priority"] else None
    import gc

    child = _Child(config, out)  # the receive thread starts here, inheriting this thread's priority
    gc.collect()
    gc.freeze()
    out.write(f"R {note or ''}\n".encode())
    out.flush()
    selector = selectors.DefaultSelector()
    selector.register(stdin, selectors.EVENT_READ)
    try:
        while True:
            if selector.select(PUBLISH_EVERY_S):
                message = _read_message(stdin)
                if message is None:  # the parent closed our stdin, or died
                    break
                try:
                    child.command(message)
                except InputError as err:
                    out.write(f"E {err}\n".encode())
                    out.flush()
            child.publish()
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    finally:
        selector.close()
        child.close()


if __name__ == "__main__":
    child_main(sys.argv[1:])
