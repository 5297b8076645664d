"""A bounded single-producer single-consumer ring of fixed-size event records in shared memory.

The OSC intake process (intake.py) writes validated events; the engine's process reads them. Nothing
is pickled on the way: each event is one fixed-size record packed with `struct`, so a record costs a
`pack_into` and a counter store. Layout of the shared block:

    [0:8)        head: records written so far (only the producer stores it)
    [64:72)      tail: records read so far (only the consumer stores it)
    [128:128+8k) counters the producer publishes (drops per kind, datagrams received), u64 each
    [HEADER:)    capacity records of RECORD_BYTES

Head and tail only grow (u64 never wraps in practice); slot = counter % capacity. The producer writes a
record, then stores head; the consumer reads head, then the records, then stores tail. Both counters sit
on their own cache line. On x86 (total store order) and with CPython storing in program order that is
enough; a weakly ordered CPU would need a fence between record and counter (not provided here). Each
counter is loaded and stored as one aligned 8-byte word (a memoryview cast to native "Q"), never with
`struct.pack_into`: that zero-fills its target before writing, so the other process could read a
counter as 0 halfway through a store (the engine's reader saw a negative length, and its thread died).

A full ring refuses the record (`push` returns False): the producer counts the drop, the consumer never
waits. Control names longer than NAME_BYTES do not fit a record and are refused the same way.

Free text (a lead sheet's progression, up to TEXT_BYTES of UTF-8) does not fit one record: it goes as a
chain, a TEXT record (its own first NAME_BYTES, and how many TEXT_MORE records follow) and the rest in
the records after it. The producer writes the whole chain before it publishes head once, so the consumer
never sees part of one; `pop` takes the chain as one event. A chain needs room for all its records.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable
from multiprocessing import shared_memory
from typing import Any

from ..events import (SHAPES, ControlChange, LeadSheetRequest, LearnRequest, MemoryRequest, ModeRequest,
                      NamedControl, NoteMessage, ShapeRequest)

RECORD_BYTES = 128
NAME_BYTES = 100  # control or game names; the OSC table allows longer control names, refused here
# kind, a, b, c, name length, spare, arrival ns, value, name
_RECORD = struct.Struct(f"<BBBBBxxxqd{NAME_BYTES}s")
_HEAD, _TAIL, _COUNTERS = 0, 8, 16  # in 8-byte words: bytes 0, 64 and 128
COUNTER_SLOTS = 32
HEADER_BYTES = 512
assert _RECORD.size <= RECORD_BYTES and 8 * (_COUNTERS + COUNTER_SLOTS) <= HEADER_BYTES

NOTE, CONTROL_CHANGE, NAMED_CONTROL, MESSAGE, LEARN, MODE = 1, 2, 3, 4, 5, 6  # LEARN: /learn <control>, MODE: /mode
MEMORY = 7  # /memory/save (the action by name)
SHAPE = 8  # /rhythm, /mood (a = which, by index of events.SHAPES; the text as the name)
TEXT, TEXT_MORE = 9, 10  # a LeadSheetRequest: its first record (a = what, b = records after it), then the rest
TEXT_BYTES = 1000  # the longest free text a chain carries (the OSC table refuses longer): 10 records
TEXT_WHAT = ("progression", "key")  # LeadSheetRequest.what, by index
# The game's message kinds (GameMessage.kind), by index: a record carries the index, not the string
MESSAGE_KINDS = ("param", "state", "event", "tempo", "start", "stop")


class EventRing:
    """One end of the ring (`create` it in the consumer's process, `attach` to it in the producer's).

    `message_type` builds what a MESSAGE record decodes to (the game's GameMessage(kind, name, value)):
    passed in, so this module never imports the engine.
    """

    def __init__(self, memory: shared_memory.SharedMemory, capacity: int, owner: bool,
                 message_type: Callable[[str, str, float], Any] | None = None) -> None:
        self._memory, self.capacity, self._owner = memory, capacity, owner
        self._buf = memory.buf
        self._words = memory.buf[:HEADER_BYTES].cast("Q")  # the counters: one aligned load or store each
        self.message_type = message_type
        self.name = memory.name

    @classmethod
    def create(cls, capacity: int = 4096, message_type: Callable | None = None) -> EventRing:
        if capacity <= 0:
            raise ValueError(f"a ring needs room for at least one record, got {capacity}")
        memory = shared_memory.SharedMemory(create=True, size=HEADER_BYTES + capacity * RECORD_BYTES)
        memory.buf[:HEADER_BYTES] = bytes(HEADER_BYTES)
        return cls(memory, capacity, owner=True, message_type=message_type)

    @classmethod
    def attach(cls, name: str, capacity: int, other_process: bool = True) -> EventRing:
        """The producer's end. From another process, the mapping is taken off that process's resource
        tracker, which would otherwise remove it when the producer exits (Python < 3.13 has no flag)."""
        memory = shared_memory.SharedMemory(name=name)
        if other_process:
            from multiprocessing import resource_tracker

            with contextlib.suppress(Exception):
                resource_tracker.unregister(memory._name, "shared_memory")  # type: ignore[attr-defined]
        return cls(memory, capacity, owner=False)

    # --- producer -----------------------------------------------------------------------------------
    def push(self, event: Any, at_ns: int) -> bool:
        """Write one event; False (nothing written) when the ring is full or the event has no record."""
        words = self._words
        head = words[_HEAD]
        if head - words[_TAIL] >= self.capacity:
            return False
        if isinstance(event, LeadSheetRequest):
            return self._push_text(event, at_ns, head)
        if not _encode_into(self._buf, HEADER_BYTES + (head % self.capacity) * RECORD_BYTES, event, at_ns):
            return False
        words[_HEAD] = head + 1  # publish after the record is in place
        return True

    def _push_text(self, event: LeadSheetRequest, at_ns: int, head: int) -> bool:
        """A chain of records, published at once: False when the text is too long or the ring has no room."""
        raw = event.text.encode("utf-8")
        if len(raw) > TEXT_BYTES or event.what not in TEXT_WHAT:
            return False
        chunks = [raw[i:i + NAME_BYTES] for i in range(0, len(raw), NAME_BYTES)] or [b""]
        if head + len(chunks) - self._words[_TAIL] > self.capacity:
            return False
        for i, chunk in enumerate(chunks):
            offset = HEADER_BYTES + ((head + i) % self.capacity) * RECORD_BYTES
            if i == 0:
                _RECORD.pack_into(self._buf, offset, TEXT, TEXT_WHAT.index(event.what), len(chunks) - 1, 0,
                                  len(chunk), at_ns, 0.0, chunk)
            else:
                _RECORD.pack_into(self._buf, offset, TEXT_MORE, 0, 0, 0, len(chunk), at_ns, 0.0, chunk)
        self._words[_HEAD] = head + len(chunks)  # the whole chain, published at once
        return True

    def publish(self, slot: int, value: int) -> None:
        """Store one of the producer's counters (drops per kind, datagrams received)."""
        self._words[_COUNTERS + slot] = value

    # --- consumer -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        words = self._words
        tail = words[_TAIL]  # first: the producer only moves head on, so the difference is never negative
        return words[_HEAD] - tail

    def pop(self) -> tuple[Any, int] | None:
        """The oldest event and its arrival ns, or None when the ring is empty; never waits."""
        words = self._words
        tail = words[_TAIL]
        if tail == words[_HEAD]:
            return None
        offset = HEADER_BYTES + (tail % self.capacity) * RECORD_BYTES
        fields = _RECORD.unpack_from(self._buf, offset)
        if fields[0] == TEXT:
            return self._pop_text(fields, tail)
        item = _decode(fields, self.message_type)
        words[_TAIL] = tail + 1  # the slot is free only after it was read
        return item

    def _pop_text(self, fields: tuple, tail: int) -> tuple[LeadSheetRequest, int]:
        """A chain's records (published with its first), joined; the slots are freed after all were read."""
        _, what, more, _, length, at_ns, _, name = fields
        raw = [name[:length]]
        for i in range(1, more + 1):
            record = _RECORD.unpack_from(self._buf, HEADER_BYTES + ((tail + i) % self.capacity) * RECORD_BYTES)
            raw.append(record[7][:record[4]])
        self._words[_TAIL] = tail + 1 + more
        return LeadSheetRequest(TEXT_WHAT[what], b"".join(raw).decode("utf-8")), at_ns

    def counter(self, slot: int) -> int:
        return self._words[_COUNTERS + slot]

    @property
    def closed(self) -> bool:
        return self._memory is None

    def close(self) -> None:
        """Let go of the mapping (the creator also removes it); safe to call twice."""
        if self._memory is None:
            return
        self._words.release()
        self._buf = None
        self._memory.close()
        if self._owner:
            try:
                self._memory.unlink()
            except FileNotFoundError:
                pass
        self._memory = None


def _name_bytes(name: str) -> bytes | None:
    raw = name.encode("utf-8")
    return raw if len(raw) <= NAME_BYTES else None


def _encode_into(buf, offset: int, event: Any, at_ns: int) -> bool:
    """Pack an event's record at offset; False when it has none (an unknown type, a name too long)."""
    if isinstance(event, NoteMessage):
        _RECORD.pack_into(buf, offset, NOTE, event.pitch, event.velocity, event.channel, 0, at_ns, 0.0, b"")
    elif isinstance(event, NamedControl):
        name = _name_bytes(event.name)
        if name is None:
            return False
        _RECORD.pack_into(buf, offset, NAMED_CONTROL, 0, 0, 0, len(name), at_ns, event.value, name)
    elif isinstance(event, ControlChange):
        _RECORD.pack_into(buf, offset, CONTROL_CHANGE, event.control, event.value, event.channel, 0, at_ns, 0.0, b"")
    elif isinstance(event, LearnRequest):
        name = _name_bytes(event.target)
        if name is None:
            return False
        _RECORD.pack_into(buf, offset, LEARN, 0, 0, 0, len(name), at_ns, 0.0, name)
    elif isinstance(event, ModeRequest):  # by name, or by program (a = program + 1)
        name = _name_bytes(event.name or "")
        if name is None:
            return False
        program = 0 if event.program is None else event.program + 1
        _RECORD.pack_into(buf, offset, MODE, program, 0, 0, len(name), at_ns, 0.0, name)
    elif isinstance(event, MemoryRequest):
        name = _name_bytes(event.action)
        if name is None:
            return False
        _RECORD.pack_into(buf, offset, MEMORY, 0, 0, 0, len(name), at_ns, 0.0, name)
    elif isinstance(event, ShapeRequest) and event.what in SHAPES:
        name = _name_bytes(event.text)
        if name is None:
            return False
        _RECORD.pack_into(buf, offset, SHAPE, SHAPES.index(event.what), 0, 0, len(name), at_ns, 0.0, name)
    elif getattr(event, "kind", None) in MESSAGE_KINDS:
        name = _name_bytes(event.name)
        if name is None:
            return False
        _RECORD.pack_into(buf, offset, MESSAGE, MESSAGE_KINDS.index(event.kind), 0, 0, len(name), at_ns,
                          float(event.value), name)
    else:
        return False
    return True


def _decode(fields: tuple, message_type: Callable | None) -> tuple[Any, int]:
    kind, a, b, c, name_length, at_ns, value, name = fields
    if kind == NOTE:
        return NoteMessage(a, b, c), at_ns
    if kind == NAMED_CONTROL:
        return NamedControl(name[:name_length].decode("utf-8"), value), at_ns
    if kind == CONTROL_CHANGE:
        return ControlChange(a, b, c), at_ns
    if kind == LEARN:
        return LearnRequest(name[:name_length].decode("utf-8")), at_ns
    if kind == MODE:
        return ModeRequest(name[:name_length].decode("utf-8") or None, a - 1 if a else None), at_ns
    if kind == MEMORY:
        return MemoryRequest(name[:name_length].decode("utf-8")), at_ns
    if kind == SHAPE:
        return ShapeRequest(SHAPES[a], name[:name_length].decode("utf-8")), at_ns
    if kind == MESSAGE and message_type is not None:
        return message_type(MESSAGE_KINDS[a], name[:name_length].decode("utf-8"), value), at_ns
    raise ValueError(f"ring record of unknown kind {kind}")
