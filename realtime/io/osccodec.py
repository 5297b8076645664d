"""The OSC codec: bytes <-> messages, with nothing about addresses, ranges or sockets.

Decoding (`decode_packet`) never trusts a datagram: whatever does not parse raises `Drop`, with the
kind it is counted under and a one-line detail. It reads the type tags the address space accepts:
i (int32), h (int64), f (float32), d (float64) and s (a UTF-8 string), in messages and in bundles
nested up to MAX_BUNDLE_DEPTH; a bundle's timetag is skipped (see osc.py for why).

Encoding (`encode_message`, `encode_bundle`, `MessageEncoder`) writes exactly those types, so every
packet we send or build in tests, benchmarks and clients is one the decoder reads back. It refuses,
with a one-line ValueError naming the address and argument, a value its type tag cannot carry.
"""

from __future__ import annotations

import struct

MAX_BUNDLE_DEPTH = 8
IMMEDIATELY = 1  # the OSC timetag meaning "at once"
NTP_EPOCH_OFFSET_S = 2_208_988_800  # seconds from 1900 (NTP's epoch) to 1970 (Unix's)
FIXED_SIZE_TAGS = {"i": (">i", 4), "h": (">q", 8), "f": (">f", 4), "d": (">d", 8)}
TAGS = "ihfds"  # every type tag the decoder reads and the encoder writes
_BUNDLE_HEAD = b"#bundle\x00"
_KINDS = {"i": "int32", "h": "int64", "f": "float32", "d": "float64", "s": "string"}

Message = tuple[str, str, list]  # (address, type tags without the ',', values)


class Drop(Exception):
    """Why a datagram or message is dropped: a kind to count and a detail for the one warning."""

    def __init__(self, kind: str, detail: str, address: str = "") -> None:
        super().__init__(detail)
        self.kind, self.detail, self.address = kind, detail, address


# --- decoding --------------------------------------------------------------------------------------

def _read_string(data: bytes, index: int, address: str) -> tuple[str, int]:
    end = data.find(b"\x00", index)
    if end < 0:
        raise Drop("malformed", "a string has no terminating NUL", address)
    raw = data[index:end]
    try:
        return raw.decode("utf-8"), index + (len(raw) // 4 + 1) * 4
    except UnicodeDecodeError:
        raise Drop("encoding", "a string is not UTF-8", address or raw.decode("utf-8", "replace")) from None


def decode_message(data: bytes) -> Message:
    """One message (a datagram starting with '/'); raises Drop."""
    address, index = _read_string(data, 0, "")
    if index >= len(data):
        return address, "", []  # no type tag string: no arguments
    tags, index = _read_string(data, index, address)
    if not tags.startswith(","):
        raise Drop("malformed", f"type tags {tags!r} do not start with ','", address)
    values: list = []
    for tag in tags[1:]:
        if tag == "s":
            text, index = _read_string(data, index, address)
            values.append(text)
            continue
        if tag not in FIXED_SIZE_TAGS:
            raise Drop("type", f"type tag {tag!r} is not a number or name (only i h f d s are accepted)", address)
        fmt, size = FIXED_SIZE_TAGS[tag]
        if index + size > len(data):
            raise Drop("malformed", f"arguments end before type tags {tags!r} do", address)
        values.append(struct.unpack_from(fmt, data, index)[0])
        index += size
    return address, tags[1:], values


def decode_packet(data: bytes, depth: int = 0) -> list[Message]:
    """Every message of a datagram, a bundle's in order; raises Drop for the whole datagram."""
    if data.startswith(b"/"):
        return [decode_message(data)]
    if not data.startswith(_BUNDLE_HEAD):
        raise Drop("malformed", "neither an OSC message nor a bundle")
    if depth >= MAX_BUNDLE_DEPTH:
        raise Drop("bundle-depth", f"bundles nested more than {MAX_BUNDLE_DEPTH} deep")
    if len(data) < 16:
        raise Drop("malformed", "bundle shorter than its header")
    messages, index = [], 16  # bytes 8-16 hold the timetag, ignored on purpose (see osc.py)
    while index < len(data):
        size = struct.unpack_from(">i", data, index)[0] if index + 4 <= len(data) else -1
        index += 4
        if size <= 0 or size % 4 or index + size > len(data):
            raise Drop("malformed", f"bundle element size {size} does not fit the bundle")
        messages += decode_packet(data[index:index + size], depth + 1)
        index += size
    return messages


# --- encoding --------------------------------------------------------------------------------------

def _osc_string(raw: bytes) -> bytes:
    return raw + b"\x00" * (4 - len(raw) % 4)


def _string_bytes(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a str, got {text!r}")
    if "\x00" in text:
        raise ValueError(f"{what} {text!r} contains a NUL, which OSC strings cannot carry")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"{what} {text!r} is not encodable as UTF-8 ({err.reason})") from None


def tag_of(value: object) -> str:
    """The type tag a Python value is sent as: int -> i, float -> f, str -> s (as python-osc does)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"OSC arguments are int, float or str, got {value!r}")
    return "i" if isinstance(value, int) else "f" if isinstance(value, float) else "s"


class MessageEncoder:
    """Messages of one address and one type signature, the header built once (OscOutput's sends)."""

    __slots__ = ("address", "tags", "_head", "_fixed")

    def __init__(self, address: str, tags: str) -> None:
        if not isinstance(address, str) or not address.startswith("/"):
            raise ValueError(f"an OSC address must be a str starting with '/', got {address!r}")
        bad = [tag for tag in tags if tag not in TAGS]
        if bad:
            raise ValueError(f"OSC {address}: type tag {bad[0]!r} is not one of {' '.join(TAGS)}")
        self.address, self.tags = address, tags
        self._head = _osc_string(_string_bytes(address, "an OSC address")) + _osc_string(b"," + tags.encode())
        self._fixed = None if "s" in tags else struct.Struct(">" + "".join(FIXED_SIZE_TAGS[t][0][1] for t in tags))

    def __call__(self, *values: int | float | str) -> bytes:
        if len(values) != len(self.tags):
            raise ValueError(f"OSC {self.address}: type tags ',{self.tags}' take {len(self.tags)} arguments, "
                             f"got {len(values)}")
        if self._fixed is not None:
            try:
                return self._head + self._fixed.pack(*values)
            except (struct.error, OverflowError, TypeError):
                pass  # find the argument at fault, below
        return self._head + b"".join(self._pack(index, tag, value)
                                     for index, (tag, value) in enumerate(zip(self.tags, values)))

    def _pack(self, index: int, tag: str, value: object) -> bytes:
        what = f"OSC {self.address}: argument {index + 1}"
        if tag == "s":
            return _osc_string(_string_bytes(value, what))
        try:
            return struct.pack(FIXED_SIZE_TAGS[tag][0], value)
        except (struct.error, OverflowError, TypeError):
            if isinstance(value, (int, float)) and not (tag in "ih" and isinstance(value, float)):
                raise ValueError(f"{what} {value!r} does not fit type tag {tag!r} ({_KINDS[tag]})") from None
            raise ValueError(f"{what} {value!r} is not a{'n int' if tag in 'ih' else ' number'} "
                             f"for type tag {tag!r} ({_KINDS[tag]})") from None


def encode_message(address: str, *values: int | float | str, tags: str | None = None) -> bytes:
    """One OSC message. Without `tags`, int -> i, float -> f, str -> s; `tags` (e.g. "hd") picks each
    argument's type among i h f d s. A value its tag cannot carry is a one-line ValueError."""
    if tags is None:
        tags = "".join(tag_of(value) for value in values)
    return MessageEncoder(address, tags)(*values)


def ntp_timetag(unix_s: float) -> int:
    """The OSC (NTP) timetag of a moment given in Unix seconds."""
    seconds = int(unix_s // 1)
    return (seconds + NTP_EPOCH_OFFSET_S) << 32 | int((unix_s - seconds) * (1 << 32))


def encode_bundle(*elements: bytes, timetag: int = IMMEDIATELY) -> bytes:
    """A bundle of encoded messages or bundles, in order; `timetag` is NTP fixed point (ntp_timetag)."""
    for element in elements:
        if not isinstance(element, bytes) or len(element) % 4 or not element.startswith((b"/", _BUNDLE_HEAD)):
            raise ValueError(f"a bundle element must be an encoded OSC message or bundle, got {element[:16]!r}")
    if not 0 <= timetag < 1 << 64:
        raise ValueError(f"an OSC timetag is 64 bits, got {timetag}")
    return _BUNDLE_HEAD + struct.pack(">Q", timetag) + b"".join(struct.pack(">i", len(e)) + e for e in elements)
