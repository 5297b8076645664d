"""OSC intake in its own process: receive, filter, parse and validate there; hand events over a ring.

Why a process: parsing 50,000 hostile datagrams a second in the engine's process keeps its interpreter
lock busy, and a busy lock holder preempted by another program delays the engine's threads behind it.
Here the child (intakechild.py, `python -m realtime.io.intakechild`) runs the very `OscInput` of osc.py (address table,
parser, drop tallies) on a socket the engine's process bound and hands it; every validated event goes
into a shared-memory ring (ring.py) as one fixed-size record, and a byte on a pipe wakes the engine's
reader thread. The engine's process never touches a hostile datagram.

- Senders outside the allowlist are dropped by the kernel (sockfilter.py) before they wake anyone;
  where the filter cannot attach, the child drops them as before and one warning says so.
- Drop counts (per kind, as osc.py counts them) come back as counters in the ring's header; the first
  warning line of each kind comes back over the child's stdout, so `drops` and `take_warnings()` read as
  OscInput's do. The ring full (the engine not keeping up) is one more kind: 'ring-full'.
- A note, a learn request or a game message wakes the reader at once; controls wake it at most once a millisecond (a
  20 ms check covers the last one), since the engine applies controls at its next tick anyway.
- The child dies with its parent: a parent-death signal (prctl), and an end-of-file on its stdin.
- The child runs at SCHED_FIFO below the engine (priority.py) where permitted.
"""

from __future__ import annotations

import os
import pickle
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from ..clock import Clock
from ..errors import InputError, PortError
from ..events import NoteMessage
from ..priority import ENGINE_PRIORITY, INTAKE_PRIORITY, try_fifo
from .intakechild import DROP_KINDS, LENGTH, RECEIVED_SLOT
from .osc import RECEIVE_BUFFER_BYTES, AddressSpec, DropTally, Handler, open_socket, resolve_allowed
from .ports import Listener
from .ring import EventRing
from .sockfilter import attach_allowlist

RING_CAPACITY = 4096  # records waiting for the engine; the engine's inbox holds as many
START_TIMEOUT_S = 10.0


class OscIntake:
    """An OSC input whose receiving, filtering and parsing run in a child process.

    Same surface as OscInput (`set_listener`, `register`, `drops`, `take_warnings`, `close`,
    `address`, `name`, `received`, `delivered`), plus `register_game` for the game's API, whose
    handlers run in the child. The listener runs on this process's reader thread.
    """

    def __init__(self, clock: Clock, host: str = "127.0.0.1", port: int = 9000,
                 allow: tuple[str, ...] | None = ("127.0.0.1",), receive_buffer_bytes: int = RECEIVE_BUFFER_BYTES,
                 capacity: int = RING_CAPACITY, kernel_filter: bool = True, realtime_priority: bool = True) -> None:
        self.clock = clock
        self._listener: Listener | None = None
        self._post: Callable | None = None
        self._tally = DropTally()  # what goes wrong on this side (a failing listener)
        self._lines: list[str] = []
        self._partial = b""
        self._closed, self._lock = False, threading.Lock()
        self.delivered = 0
        self.realtime_notes: list[str] = []  # why a thread or the child runs without SCHED_FIFO
        allowed = resolve_allowed(allow)
        self._sock = open_socket(host, port, receive_buffer_bytes)
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self.name = f"osc-in {self.address[0]}:{self.address[1]}"
        self.kernel_filtered = False
        if allowed is not None and kernel_filter:
            try:
                attach_allowlist(self._sock, sorted(allowed))
                self.kernel_filtered = True
            except OSError as err:
                self._lines.append(f"{self.name}: senders outside the allow list are dropped here, not by the "
                                   f"kernel (no socket filter: {err.strerror or err})")
        self.ring = EventRing.create(capacity)
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        self._process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        try:
            self._start(allow, realtime_priority)
        except BaseException:
            if self._process is not None and self._process.poll() is None:
                self._process.kill()
                self._process.wait()
            self._release()
            raise

    # --- start-up ------------------------------------------------------------------------------------
    def _start(self, allow: tuple[str, ...] | None, realtime_priority: bool) -> None:
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=package_root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self._process = subprocess.Popen(
            [sys.executable, "-P", "-m", "realtime.io.intakechild", str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True,
            pass_fds=(self._sock.fileno(), self._wake_write))
        self._send({"sock_fd": self._sock.fileno(), "wake_fd": self._wake_write, "ring": self.ring.name,
                    "capacity": self.ring.capacity, "allow": allow, "kernel_filtered": self.kernel_filtered,
                    "priority": INTAKE_PRIORITY if realtime_priority else None})
        ready = self._await("R")
        if ready:
            self.realtime_notes.append(ready)
        os.set_blocking(self._process.stdout.fileno(), False)  # take_warnings never waits for the child
        self._reader = threading.Thread(target=self._read, args=(realtime_priority,), name=f"{self.name} ring",
                                        daemon=True)
        self._reader.start()

    def _send(self, message: object) -> None:
        data = pickle.dumps(message)  # start-up and registration only, never per event
        try:
            self._process.stdin.write(LENGTH.pack(len(data)) + data)
            self._process.stdin.flush()
        except (BrokenPipeError, OSError) as err:
            raise PortError(f"{self.name}: the OSC intake process is gone ({err})") from err

    def _await(self, tag: str) -> str:
        """Wait for the child's line starting with `tag` (start-up and registration only, never per event)."""
        fd = self._process.stdout.fileno()
        deadline = time.monotonic() + START_TIMEOUT_S
        with self._lock:
            while time.monotonic() < deadline:
                while b"\n" in self._partial:
                    raw, self._partial = self._partial.split(b"\n", 1)
                    line = raw.decode("utf-8", "replace")
                    if line[:1] == tag:
                        return line[2:]
                    if line[:1] == "E":
                        raise InputError(line[2:])
                    self._lines.append(line[2:])
                ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
                chunk = os.read(fd, 65536) if ready else b""
                if ready and not chunk:
                    code = self._process.wait(timeout=2)
                    raise PortError(f"{self.name}: the OSC intake process ended at start-up (exit {code}); "
                                    "see its message above")
                self._partial += chunk
        raise PortError(f"{self.name}: the OSC intake process did not answer in {START_TIMEOUT_S:.0f} s")

    # --- configuration -------------------------------------------------------------------------------
    def set_listener(self, listener: Listener | None) -> None:
        self._listener = listener

    def register(self, pattern: str, spec: AddressSpec, handler: Handler) -> None:
        """Extend the table in the child; the handler must be importable by name (a module function)."""
        try:
            pickle.dumps(handler)
        except Exception as err:
            raise InputError(f"{self.name}: a handler for {pattern} must be a module-level function to run in the "
                             f"intake process ({err}); use register_game for the game's API") from None
        self._send(("register", pattern, spec, handler))
        self._await("A")

    def register_game(self, game, post: Callable, message_type: Callable) -> None:
        """The game's OSC API (gameosc.py), its handlers built in the child; `post` hears its messages."""
        self.ring.message_type, self._post = message_type, post
        self._send(("game", game))
        self._await("A")

    # --- the engine's side ---------------------------------------------------------------------------
    def _read(self, realtime_priority: bool) -> None:
        if realtime_priority:
            note = try_fifo("the OSC ring reader", ENGINE_PRIORITY)
            if note:
                self.realtime_notes.append(note)
        ring, wake = self.ring, self._wake_read
        while True:
            try:
                os.read(wake, 4096)  # blocks without the interpreter lock until the child wakes us
            except InterruptedError:
                continue
            except OSError:
                return
            if self._closed:
                return
            self._drain(ring)

    def _drain(self, ring: EventRing) -> None:
        for _ in range(len(ring)):
            item = ring.pop()
            if item is None:
                return
            event, at_ns = item
            try:
                if isinstance(event, NoteMessage) or not hasattr(event, "kind"):
                    listener = self._listener
                    if listener is None:
                        continue
                    listener(event, at_ns)
                elif self._post is not None:
                    self._post(event, at_ns)
                self.delivered += 1
            except Exception as err:  # the reader must outlive a failing listener, as OscInput's thread does
                if not self._tally.bump("callback"):
                    self._tally.count("callback", f"{self.name}: listener failed: {err!r}")

    @property
    def received(self) -> int:
        """Datagrams the child read from the socket (the kernel's drops never get this far)."""
        return self.ring.counter(RECEIVED_SLOT) if not self.ring.closed else 0

    @property
    def drops(self) -> dict[str, int]:
        """Dropped datagrams or messages per kind, as the child last published them (every 20 ms)."""
        if self.ring.closed:
            return self._tally.snapshot()
        counts = {kind: self.ring.counter(slot) for slot, kind in enumerate(DROP_KINDS)}
        for kind, n in self._tally.snapshot().items():
            counts[kind] = counts.get(kind, 0) + n
        return {kind: n for kind, n in counts.items() if n}

    def take_warnings(self) -> list[str]:
        """The first drop of each kind, one line each (from the child and this side); not the hot path."""
        with self._lock:
            if self._process is not None and not self._closed:
                with suppress(BlockingIOError, OSError, ValueError):
                    while chunk := os.read(self._process.stdout.fileno(), 65536):
                        self._partial += chunk
            *lines, self._partial = self._partial.split(b"\n")
            self._lines += [line.decode("utf-8", "replace")[2:] for line in lines if line[:1] == b"W"]
            taken, self._lines = self._lines + self._tally.take(), []
        return taken

    @property
    def alive(self) -> bool:
        return (self._process is not None and self._process.poll() is None and self._reader is not None
                and self._reader.is_alive())

    def close(self) -> None:
        """Stop the child (end of its stdin), then the reader; release the ring and the socket. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed, self._listener, self._post = True, None, None
        if self._process is not None:
            with suppress(OSError):
                self._process.stdin.close()
            try:
                self._process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process.stdout.close()
        with suppress(OSError):
            os.write(self._wake_write, b"q")
        if self._reader is not None and threading.current_thread() is not self._reader:
            self._reader.join(timeout=2)
        self._release()

    def _release(self) -> None:
        if self._reader is None or not self._reader.is_alive():
            self.ring.close()
        for fd in (self._wake_read, self._wake_write):
            with suppress(OSError):
                os.close(fd)
        self._sock.close()
