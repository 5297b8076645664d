"""OSC over UDP: one address table, a parser that never trusts a datagram, and the two ports.

Parse (`_parse_packet`: datagram -> messages, bundles included), dispatch (`AddressTable`: check a
message against its entry, build the event), serve (`OscInput`'s receive thread, `OscOutput`).
Nothing on the receive thread sleeps or logs. Decisions, shown in the README with the table:
- Arguments are numbers (type tags i h f d) or, where the table says `name:str`, a short name (tag s:
  letters, digits, '_', '.', '-', at most 64); anything else is dropped. An int argument also takes a
  float that is a whole number (many controllers send only floats): 60.0 is 60, 60.5 is dropped.
- `/note/on` with velocity 0 is a note-off, as in MIDI.
- Bundle timetags are ignored: a bundle's messages are delivered at arrival, in order, stamped with
  the arrival time, so a timetag in the future can never stall the receive thread.
- A packet that does not parse (bundles nested over MAX_BUNDLE_DEPTH, truncated, a non-number type
  tag, not UTF-8) is dropped whole; a message failing its table check is dropped alone.
- Address patterns with wildcards are not expanded: they are unknown addresses.
- Every drop is counted per kind (`drops`); the first of each kind is one line in `take_warnings()`.
- Floods are bounded twice: the kernel's socket buffer (`RECEIVE_BUFFER_BYTES`; what overflows it is
  counted as 'overflow' where Linux reports it, SO_MEMINFO) and the engine's inbox (engine.py). The
  receive thread drains every waiting datagram per wake-up instead of one select per datagram, and
  rejects a foreign sender before parsing anything, so 50,000 hostile datagrams a second cost one core
  at most and a legitimate note waits behind a short buffer (about a millisecond), not a long backlog.
- Load shedding: past SHED_AFTER datagrams read at one wake-up (from the first, while a backlog
  outlasts whole wake-ups), the backlog is triaged: `/note/...` datagrams are parsed as usual,
  anything else from an allowed sender is dropped unparsed and counted as 'shed' (a control lost in a
  flood is resent by any controller that moves). Reading a datagram and looking at its first bytes
  costs a fraction of parsing it, so the thread keeps up with a flood that would otherwise make the
  kernel drop notes along with the junk.
"""

from __future__ import annotations

import math
import re
import selectors
import socket
import struct
import sys
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Literal

from ..clock import Clock
from ..errors import InputError, PortError
from ..events import Event, LearnRequest, NamedControl, NoteMessage
from ..priority import INTAKE_PRIORITY, try_fifo
from ..settings import CONTROL_TARGETS
from .ports import HeldNotes, Listener

MAX_BUNDLE_DEPTH = 8
MAX_DATAGRAM_BYTES = 65535
RECEIVE_BUFFER_BYTES = 1 << 18  # absorbs the bursts of a 50,000/s flood; a bigger backlog only adds latency
DRAIN_PER_WAKE = 256  # datagrams read per select() before checking for close again
SHED_AFTER = 64  # more than this waiting at once is a flood: the rest of the backlog is triaged, notes first
# Linux reports, per socket, how many datagrams the kernel dropped (SO_MEMINFO: nine u32, drops last)
_SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55 if sys.platform.startswith("linux") else None)
_BUNDLE_HEAD = b"#bundle\x00"
_FIXED_SIZE_TAGS = {"i": (">i", 4), "h": (">q", 8), "f": (">f", 4), "d": (">d", 8)}
_CONTROL_NAME = re.compile(r"[A-Za-z0-9_.\-]+")

Handler = Callable[[str, tuple], Event | None]  # (address, checked values) -> event; InputError drops


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument: name, kind, inclusive range, and a default if it may be left out."""

    name: str
    kind: Literal["int", "float", "str"]
    low: float | None = None
    high: float | None = None
    default: int | float | None = None

    def describe(self) -> str:
        if self.kind == "str":
            return f"{self.name}:str"
        text = f"{self.name}:{self.kind} " + (f"{self.low}-{self.high}" if self.low is not None else "(finite)")
        return text if self.default is None else f"[{text} = {self.default}]"


@dataclass(frozen=True, slots=True)
class AddressSpec:
    """What an address takes and what it means to a musician."""

    args: tuple[Arg, ...]
    meaning: str


@dataclass(frozen=True, slots=True)
class Route:
    """A table entry: an exact address or a prefix ending in "/"; no handler means reserved."""

    pattern: str
    spec: AddressSpec
    handler: Handler | None

    def shown(self) -> str:
        """How the README writes the address: /control/<name>, /game/... for a reserved prefix."""
        suffix = ("<name>" if self.handler else "...") if self.pattern.endswith("/") else ""
        return self.pattern + suffix


def _control(address: str, values: tuple) -> Event:
    name = address[len("/control/"):]
    if not _CONTROL_NAME.fullmatch(name):
        raise InputError(f"control name {name!r} must be letters, digits, '_', '.' or '-'")
    return NamedControl(name, values[0])


def _learn(address: str, values: tuple) -> Event:
    if values[0] not in CONTROL_TARGETS:
        raise InputError(f"cannot learn {values[0]!r}; controls: {', '.join(CONTROL_TARGETS)}")
    return LearnRequest(values[0])


_PITCH, _CHANNEL = Arg("pitch", "int", 0, 127), Arg("channel", "int", 0, 15, default=0)
ADDRESS_TABLE: tuple[Route, ...] = (  # the one place the OSC address space is defined
    Route("/note/on", AddressSpec((_PITCH, Arg("velocity", "int", 0, 127), _CHANNEL),
                                  "Note-on (velocity 0 is a note-off, as in MIDI)"),
          lambda address, values: NoteMessage(*values)),
    Route("/note/off", AddressSpec((_PITCH, _CHANNEL), "Note-off"),
          lambda address, values: NoteMessage(values[0], 0, values[1])),
    Route("/control/", AddressSpec((Arg("value", "float"),), "Set the named control; the patch checks its range"),
          _control),
    Route("/learn", AddressSpec((Arg("control", "str"),), "MIDI learn: the next moved controller is bound to "
                                f"this control ({', '.join(CONTROL_TARGETS)}) and saved in the patch"),
          _learn),
    Route("/game/", AddressSpec((), "Reserved for the game mode: dropped until registered"), None),
    Route("/transport/", AddressSpec((), "Reserved for transport: dropped until registered"), None),
)


class _Drop(Exception):
    """Why a datagram or message is dropped: a kind to count and a detail for the one warning."""

    def __init__(self, kind: str, detail: str, address: str = "") -> None:
        super().__init__(detail)
        self.kind, self.detail, self.address = kind, detail, address


class AddressTable:
    """The address space of one input: an exact address first, else the longest matching prefix."""

    def __init__(self, routes: tuple[Route, ...] = ADDRESS_TABLE) -> None:
        self.routes: dict[str, Route] = {}
        self._prefixes: tuple[Route, ...] = ()
        for route in routes:
            self.register(route.pattern, route.spec, route.handler)

    def register(self, pattern: str, spec: AddressSpec, handler: Handler | None) -> None:
        """Add or replace an address, or a prefix ending in "/" (e.g. "/game/guess" or "/game/")."""
        if not pattern.startswith("/") or pattern == "/":
            raise InputError(f"OSC address {pattern!r} must start with '/' and name something")
        self.routes[pattern] = Route(pattern, spec, handler)
        prefixes = [route for route in self.routes.values() if route.pattern.endswith("/")]
        self._prefixes = tuple(sorted(prefixes, key=lambda route: -len(route.pattern)))

    def event(self, address: str, tags: str, values: list) -> Event | None:
        """Check one parsed message against its entry and build its event; raises _Drop."""
        route = self.routes.get(address)
        if route is None or route.pattern.endswith("/"):
            route = next((r for r in self._prefixes if address.startswith(r.pattern)), None)
        if route is None:
            raise _Drop("unknown-address", "no such address in the OSC table")
        if route.handler is None:
            raise _Drop("reserved-address", f"{route.pattern} is reserved and has no handler yet")
        args = route.spec.args
        if not sum(arg.default is None for arg in args) <= len(values) <= len(args):
            raise _Drop("type", f"expects {_signature(route.spec)}, got type tags ',{tags}'")
        checked = [_check_value(arg, value) for arg, value in zip(args, values)]
        checked += [arg.default for arg in args[len(values):]]
        try:
            return route.handler(address, tuple(checked))
        except InputError as err:  # a handler may name its own kind of drop (e.g. an unknown game name)
            raise _Drop(getattr(err, "drop_kind", "value"), str(err)) from None


def _check_value(arg: Arg, value: Any) -> int | float | str:
    if isinstance(value, str) or arg.kind == "str":
        if not (isinstance(value, str) and arg.kind == "str"):
            raise _Drop("type", f"{arg.name} {value!r} is not {'a name' if arg.kind == 'str' else 'a number'}")
        if len(value) > 64 or not _CONTROL_NAME.fullmatch(value):
            raise _Drop("range", f"{arg.name} {value[:64]!r} must be 1-64 letters, digits, '_', '.' or '-'")
        return value
    if not math.isfinite(value):
        raise _Drop("range", f"{arg.name} {value} is not a finite number")
    if arg.kind == "int" and value != int(value):
        raise _Drop("range", f"{arg.name} {value} is not a whole number")
    value = int(value) if arg.kind == "int" else float(value)
    if arg.low is not None and not arg.low <= value <= arg.high:
        raise _Drop("range", f"{arg.name} {value} is outside {arg.low}-{arg.high}")
    return value


def _signature(spec: AddressSpec) -> str:
    return ", ".join(arg.describe() for arg in spec.args) or "-"


def address_table_markdown(table: AddressTable | None = None) -> str:
    """The address table as markdown, so the README shows exactly what the code accepts."""
    lines = ["| Address | Arguments | Meaning |", "| --- | --- | --- |"]
    for route in (table or AddressTable()).routes.values():
        lines.append(f"| `{route.shown()}` | {_signature(route.spec)} | {route.spec.meaning} |")
    return "\n".join(lines) + "\n"


def _read_string(data: bytes, index: int, address: str) -> tuple[str, int]:
    end = data.find(b"\x00", index)
    if end < 0:
        raise _Drop("malformed", "a string has no terminating NUL", address)
    raw = data[index:end]
    try:
        return raw.decode("utf-8"), index + (len(raw) // 4 + 1) * 4
    except UnicodeDecodeError:
        raise _Drop("encoding", "a string is not UTF-8", address or raw.decode("utf-8", "replace")) from None


def _parse_message(data: bytes) -> tuple[str, str, list]:
    address, index = _read_string(data, 0, "")
    if index >= len(data):
        return address, "", []  # no type tag string: no arguments
    tags, index = _read_string(data, index, address)
    if not tags.startswith(","):
        raise _Drop("malformed", f"type tags {tags!r} do not start with ','", address)
    values: list = []
    for tag in tags[1:]:
        if tag == "s":
            text, index = _read_string(data, index, address)
            values.append(text)
            continue
        if tag not in _FIXED_SIZE_TAGS:
            raise _Drop("type", f"type tag {tag!r} is not a number or name (only i h f d s are accepted)", address)
        fmt, size = _FIXED_SIZE_TAGS[tag]
        if index + size > len(data):
            raise _Drop("malformed", f"arguments end before type tags {tags!r} do", address)
        values.append(struct.unpack_from(fmt, data, index)[0])
        index += size
    return address, tags[1:], values


def _parse_packet(data: bytes, depth: int = 0) -> list[tuple[str, str, list]]:
    if data.startswith(b"/"):
        return [_parse_message(data)]
    if not data.startswith(_BUNDLE_HEAD):
        raise _Drop("malformed", "neither an OSC message nor a bundle")
    if depth >= MAX_BUNDLE_DEPTH:
        raise _Drop("bundle-depth", f"bundles nested more than {MAX_BUNDLE_DEPTH} deep")
    if len(data) < 16:
        raise _Drop("malformed", "bundle shorter than its header")
    messages, index = [], 16  # bytes 8-16 hold the timetag, ignored on purpose (see module doc)
    while index < len(data):
        size = struct.unpack_from(">i", data, index)[0] if index + 4 <= len(data) else -1
        index += 4
        if size <= 0 or size % 4 or index + size > len(data):
            raise _Drop("malformed", f"bundle element size {size} does not fit the bundle")
        messages += _parse_packet(data[index:index + size], depth + 1)
        index += size
    return messages


class _Tally:
    """Counts drops per kind and keeps one warning line per kind for a status thread to take."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._warnings: list[str] = []

    def count(self, kind: str, line: str, n: int = 1) -> None:
        with self._lock:
            if kind not in self._counts:  # ascii() keeps a hostile address from breaking the line
                line = line if line.isprintable() else ascii(line)
                self._warnings.append(f"{line} (first '{kind}' drop; later ones are only counted)")
            self._counts[kind] = self._counts.get(kind, 0) + n

    def bump(self, kind: str) -> bool:
        """Count one more of a kind already warned about; False (nothing counted) for a new kind."""
        with self._lock:
            if kind not in self._counts:
                return False
            self._counts[kind] += 1
            return True

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def take(self) -> list[str]:
        with self._lock:
            taken, self._warnings = self._warnings, []
            return taken


def resolve_allowed(allow: tuple[str, ...] | None) -> frozenset[str] | None:
    """The allowed senders' IPv4 addresses (None: anyone); a name that does not resolve is a PortError."""
    try:
        return None if allow is None else frozenset(socket.gethostbyname(h) for h in allow)
    except OSError as err:
        raise PortError(f"OSC input: cannot resolve the allowed senders {allow}: {err}") from err


def open_socket(host: str, port: int, receive_buffer_bytes: int = RECEIVE_BUFFER_BYTES) -> socket.socket:
    """A UDP socket bound to (host, port) with the flood-sized receive buffer; one-line PortError if not."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as err:
        sock.close()
        raise PortError(f"OSC input cannot listen on UDP {host}:{port}: {getattr(err, 'strerror', None) or err}; "
                        "choose another port or stop the program using it") from err
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer_bytes)
    return sock


class OscInput:
    """Receives OSC on its own UDP thread and hands valid notes and controls to the listener.

    `allow` lists the sender hosts accepted (None: anyone). `address` is the (host, port) actually
    bound; port=0 picks a free one. The listener runs on the receive thread.
    """

    def __init__(self, clock: Clock, host: str = "127.0.0.1", port: int = 9000,
                 allow: tuple[str, ...] | None = ("127.0.0.1",), table: AddressTable | None = None,
                 receive_buffer_bytes: int = RECEIVE_BUFFER_BYTES, sock: socket.socket | None = None,
                 kernel_filtered: bool = False) -> None:
        """`sock` adopts a socket already bound (the intake process gets its parent's); with
        `kernel_filtered`, a socket filter drops foreign senders, so the kernel's count includes them."""
        self.clock, self.table = clock, table or AddressTable()
        self._tally, self._listener = _Tally(), None
        self._closed, self._close_lock = False, threading.Lock()
        self._allowed = resolve_allowed(allow)
        self._sock = sock if sock is not None else open_socket(host, port, receive_buffer_bytes)
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self.name = f"osc-in {self.address[0]}:{self.address[1]}"
        self._sock.setblocking(False)
        self._kernel_filtered = kernel_filtered
        self._overflow_seen = 0  # the kernel's running count of datagrams it dropped for this socket
        self.received = 0  # datagrams read from the socket (allowed or not)
        self._flooded = False  # the last wake-up read DRAIN_PER_WAKE datagrams and more were waiting
        self.delivered = 0  # events handed to the listener
        self._wake_read, self._wake_write = socket.socketpair()  # lets close() end the select at once
        self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
        self._thread.start()

    def set_listener(self, listener: Listener | None) -> None:
        self._listener = listener

    def register(self, pattern: str, spec: AddressSpec, handler: Handler) -> None:
        """Extend this input's table, e.g. under the reserved /game/ or /transport/ prefixes."""
        self.table.register(pattern, spec, handler)

    @property
    def drops(self) -> dict[str, int]:
        """Dropped datagrams or messages per kind (a copy); 'overflow' is what the kernel dropped."""
        self._count_overflow()
        return self._tally.snapshot()

    def take_warnings(self) -> list[str]:
        """One line for the first drop of each kind; call from a status thread, not the hot path."""
        self._count_overflow()
        return self._tally.take()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed, self._listener = True, None
        with suppress(OSError):
            self._wake_write.send(b"x")
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _serve(self) -> None:
        try_fifo(f"OSC input {self.name}", INTAKE_PRIORITY)  # see realtime/priority.py; below the engine's
        selector = selectors.DefaultSelector()  # not select.select: it fails past file descriptor 1024
        selector.register(self._sock, selectors.EVENT_READ)
        selector.register(self._wake_read, selectors.EVENT_READ)
        try:
            while not self._closed:
                if any(key.fileobj is self._wake_read for key, _ in selector.select()):
                    return
                self._drain()
        finally:
            selector.close()
            for sock in (self._sock, self._wake_read, self._wake_write):
                sock.close()

    def _drain(self) -> None:
        """Read and handle every datagram waiting (up to DRAIN_PER_WAKE), each stamped at its arrival."""
        sock, clock, allowed = self._sock, self.clock, self._allowed
        shed_from = 0 if self._flooded else SHED_AFTER  # a flood still on at the last wake-up: triage at once
        for index in range(DRAIN_PER_WAKE):
            try:
                data, sender = sock.recvfrom(MAX_DATAGRAM_BYTES)
            except (BlockingIOError, InterruptedError):
                self._flooded = False
                return
            except OSError as err:  # e.g. ICMP errors surfacing on the socket: count and go on
                self._drop("socket", f"receive failed: {err}", "", ("?", 0))
                return
            self.received += 1
            try:
                if index >= shed_from and not data.startswith(b"/note/") and (allowed is None or sender[0] in allowed):
                    self._drop("shed", "not read: a flood is on, and only notes are read until it ends", "", sender)
                    continue
                self._handle(data, sender, clock.now_ns())
            except Exception as err:  # last line of defence: the thread must outlive any datagram
                self._drop("internal", f"unexpected {err!r}", "", ("?", 0))
        self._flooded = True  # the backlog outlasted a whole wake-up

    def _count_overflow(self) -> None:
        """Add what the kernel dropped since last asked (outside the receive thread; a no-op off Linux)."""
        if _SO_MEMINFO is None:
            return
        with self._close_lock:
            if self._sock.fileno() < 0:
                return
            try:
                total = struct.unpack("=9I", self._sock.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, 36))[8]
            except (OSError, struct.error):
                return
            lost, self._overflow_seen = (total - self._overflow_seen) % (1 << 32), total
        if lost and self._kernel_filtered:
            self._tally.count("kernel", f"{self.name}: the kernel dropped {lost} datagrams: from senders not in "
                                        f"the allow list {sorted(self._allowed)} (filtered before this program "
                                        "wakes), or past a full receive buffer", lost)
        elif lost:
            self._tally.count("overflow", f"{self.name}: the receive buffer overflowed; the kernel dropped "
                                          f"{lost} datagrams (a flood faster than this input reads)", lost)

    def _handle(self, data: bytes, sender: tuple[str, int], arrival_ns: int) -> None:
        if self._allowed is not None and sender[0] not in self._allowed:
            return self._drop("sender", "sender not in the allow list " + str(sorted(self._allowed)), "", sender)
        try:
            messages = _parse_packet(data)
        except _Drop as drop:
            return self._drop(drop.kind, drop.detail, drop.address, sender)
        for address, tags, values in messages:
            try:
                event = self.table.event(address, tags, values)
                listener = self._listener
                if event is not None and listener is not None:
                    listener(event, arrival_ns)
                    self.delivered += 1
            except _Drop as drop:
                self._drop(drop.kind, drop.detail, address, sender)
            except Exception as err:  # a registered handler or the listener failed; keep serving
                self._drop("callback", f"handler or listener failed: {err!r}", address, sender)

    def _drop(self, kind: str, detail: str, address: str, sender: tuple[str, int]) -> None:
        if self._tally.bump(kind):  # seen before: only counted, so a flood costs no formatting
            return
        where = f"{address[:80] or 'datagram'} from {sender[0]}:{sender[1]}"
        self._tally.count(kind, f"{self.name}: dropped {where}: {detail}")


def _osc_string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return raw + b"\x00" * (4 - len(raw) % 4)


def encode_message(address: str, *values: int | float | str) -> bytes:
    """An OSC message: an int goes as int32 (i), a float as float32 (f), a str as a string (s)."""
    tags, payload = ",", b""
    for value in values:
        if isinstance(value, str):
            tags, payload = tags + "s", payload + _osc_string(value)
        elif isinstance(value, float):
            tags, payload = tags + "f", payload + struct.pack(">f", value)
        else:
            tags, payload = tags + "i", payload + struct.pack(">i", value)
    return _osc_string(address) + _osc_string(tags) + payload


class OscOutput:
    """Sends `/note/on pitch velocity channel` and `/note/off pitch channel` over UDP, under `prefix`.

    Never blocks and never raises into the caller's loop: failures are counted in `errors` and
    reported once per kind by `take_warnings()`. Closing releases every held note.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 57120, prefix: str = "") -> None:
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise InputError(f"OSC output prefix must look like '/synth' (or be empty), got {prefix!r}")
        if not 0 < port < 65536:
            raise PortError(f"OSC output port must be 1-65535, got {port}")
        try:
            self._target = (socket.gethostbyname(host), port)
        except OSError as err:
            raise PortError(f"OSC output cannot resolve host {host!r}: {err}") from err
        self.name, self.prefix = f"osc-out {host}:{port}", prefix
        self.notes, self._tally = HeldNotes(), _Tally()
        self._lock, self._closed = threading.Lock(), False
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def send(self, message: NoteMessage) -> None:
        if not (0 <= message.pitch <= 127 and 0 <= message.velocity <= 127 and 0 <= message.channel <= 15):
            return self._tally.count("range", f"{self.name}: not sent {message}: outside MIDI ranges")
        with self._lock:
            if self._closed:
                return self._tally.count("closed", f"{self.name}: not sent {message}: the port is closed")
            self.notes.track(message)
            self._send_locked(message)

    def all_notes_off(self) -> None:
        with self._lock:
            if not self._closed:
                for message in self.notes.releases():
                    self._send_locked(message)

    def close(self) -> None:
        """Release every held note, then close; safe to call twice."""
        with self._lock:
            if not self._closed:
                for message in self.notes.releases():
                    self._send_locked(message)
                self._closed = True
                self._sock.close()

    @property
    def errors(self) -> dict[str, int]:
        return self._tally.snapshot()

    def take_warnings(self) -> list[str]:
        return self._tally.take()

    def _send_locked(self, message: NoteMessage) -> None:
        if message.is_on:
            packet = encode_message(self.prefix + "/note/on", message.pitch, message.velocity, message.channel)
        else:
            packet = encode_message(self.prefix + "/note/off", message.pitch, message.channel)
        try:
            self._sock.sendto(packet, self._target)
        except OSError as err:  # a full buffer (BlockingIOError), no route, ...: count, never raise
            self._tally.count("send", f"{self.name}: send failed: {err}")
