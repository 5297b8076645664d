"""The OSC address table: address -> (argument types and ranges, meaning, handler), checked in one place.

The README's table is generated from it (`address_table_markdown`), so the docs and the code agree.
`AddressTable.event` checks one decoded message against its entry and builds the event; a message
failing its check raises osccodec's `Drop`. Decisions, shown in the README with the table:
- Arguments are numbers (type tags i h f d) or, where the table says `name:str`, a short name (tag s:
  letters, digits, '_', '.', '-', at most 64), or where it says `name:text`, free text (tag s: printable
  characters, spaces and `|` too, at most TEXT_BYTES of UTF-8, what the intake ring carries); anything
  else is dropped. An int argument also takes a
  float that is a whole number (many controllers send only floats): 60.0 is 60, 60.5 is dropped.
- `/note/on` with velocity 0 is a note-off, as in MIDI.
- Address patterns with wildcards are not expanded: they are unknown addresses.
- An entry is an exact address, or a prefix ending in "/" (`/control/<name>`); a prefix without a
  handler is reserved (`/game/...`, `/transport/...`) until a mode registers its addresses.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import InputError
from ..events import (Event, LeadSheetRequest, LearnRequest, MemoryRequest, ModeRequest, NamedControl, NoteMessage,
                      ShapeRequest)
from ..settings import CONTROL_TARGETS
from .osccodec import Drop
from .ring import TEXT_BYTES

_CONTROL_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
KEY_BYTES = 32  # "F# minor" is 8

Handler = Callable[[str, tuple], Event | None]  # (address, checked values) -> event; InputError drops


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument: name, kind, inclusive range, and a default if it may be left out."""

    name: str
    kind: Literal["int", "float", "str", "text"]
    low: float | None = None
    high: float | None = None
    default: int | float | None = None

    @property
    def tags(self) -> str:
        """The OSC type tags this argument accepts (an int also takes a whole float)."""
        return "s" if self.kind in ("str", "text") else "ihfd"

    def describe(self) -> str:
        if self.kind == "str":
            return f"{self.name}:str"
        if self.kind == "text":
            return f"{self.name}:text (1-{self.high:g} bytes)"
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
    Route("/mode", AddressSpec((Arg("mode", "str"),), "Play this mode from the next bar on (one of the patch's "
                               "`[engine] modes`); every note of the old mode ends"),
          lambda address, values: ModeRequest(name=values[0])),
    Route("/memory/save", AddressSpec((), "Save the duet's memory of the player now, to the patch's `[continuation] "
                                      "memory` file (it is saved at the end of a run too)"),
          lambda address, values: MemoryRequest("save")),
    Route("/rhythm", AddressSpec((Arg("pattern", "str"),), "The duet's rhythm from its next answer on: a sixteenth "
                                 "grid (`x.x.xx.x`), durations in beats (`1 0.5 0.5 1`), a `.mid` file, or `off`"),
          lambda address, values: ShapeRequest("rhythm", values[0])),
    Route("/mood", AddressSpec((Arg("mood", "str"),), "The duet's mood from its next answer on (a name in the patch's "
                               "mood table, or `off`)"),
          lambda address, values: ShapeRequest("mood", values[0])),
    Route("/style", AddressSpec((Arg("style", "str"),), "The model's style from the next bar line on (a style its "
                                "card lists, e.g. `irish`, or `off`); a game state naming a style keeps its own"),
          lambda address, values: ShapeRequest("style", values[0])),
    Route("/leadsheet/progression", AddressSpec((Arg("progression", "text", high=TEXT_BYTES),), "The lead sheet "
          "plays this progression (chord symbols or Roman numerals in bars, or a .mid file's name, as `[leadsheet] "
          "progression`), from its "
          "first bar, from the next bar line; a bad one is refused in one line and the old one plays on"),
          lambda address, values: LeadSheetRequest("progression", values[0])),
    Route("/leadsheet/key", AddressSpec((Arg("key", "text", high=KEY_BYTES),), "The lead sheet reads its progression in this key "
          "(`Bb`, `c`, `F# minor`: Roman numerals move, the melody's scale too) from the next bar line"),
          lambda address, values: LeadSheetRequest("key", values[0])),
    Route("/game/", AddressSpec((), "Reserved for the game mode: dropped until registered"), None),
    Route("/transport/", AddressSpec((), "Reserved for transport: dropped until registered"), None),
)


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
        """Check one decoded message against its entry and build its event; raises Drop."""
        route = self.routes.get(address)
        if route is None or route.pattern.endswith("/"):
            route = next((r for r in self._prefixes if address.startswith(r.pattern)), None)
        if route is None:
            raise Drop("unknown-address", "no such address in the OSC table")
        if route.handler is None:
            raise Drop("reserved-address", f"{route.pattern} is reserved and has no handler yet")
        args = route.spec.args
        if not sum(arg.default is None for arg in args) <= len(values) <= len(args):
            raise Drop("type", f"expects {_signature(route.spec)}, got type tags ',{tags}'")
        checked = [_check_value(arg, value) for arg, value in zip(args, values)]
        checked += [arg.default for arg in args[len(values):]]
        try:
            return route.handler(address, tuple(checked))
        except InputError as err:  # a handler may name its own kind of drop (e.g. an unknown game name)
            raise Drop(getattr(err, "drop_kind", "value"), str(err)) from None


def _check_value(arg: Arg, value: Any) -> int | float | str:
    if arg.kind == "text":
        return _check_text(arg, value)
    if isinstance(value, str) or arg.kind == "str":
        if not (isinstance(value, str) and arg.kind == "str"):
            raise Drop("type", f"{arg.name} {value!r} is not {'a name' if arg.kind == 'str' else 'a number'}")
        if len(value) > 64 or not _CONTROL_NAME.fullmatch(value):
            raise Drop("range", f"{arg.name} {value[:64]!r} must be 1-64 letters, digits, '_', '.' or '-'")
        return value
    if not math.isfinite(value):
        raise Drop("range", f"{arg.name} {value} is not a finite number")
    if arg.kind == "int" and value != int(value):
        raise Drop("range", f"{arg.name} {value} is not a whole number")
    value = int(value) if arg.kind == "int" else float(value)
    if arg.low is not None and not arg.low <= value <= arg.high:
        raise Drop("range", f"{arg.name} {value} is outside {arg.low}-{arg.high}")
    return value


def _check_text(arg: Arg, value: Any) -> str:
    """Free text: a string of printable characters, 1 to `arg.high` (at most TEXT_BYTES) bytes of UTF-8."""
    if not isinstance(value, str):
        raise Drop("type", f"{arg.name} {value!r} is not text (type tag s)")
    size, limit = len(value.encode("utf-8")), int(min(arg.high or TEXT_BYTES, TEXT_BYTES))
    if not 0 < size <= limit:
        raise Drop("range", f"{arg.name} is {size} bytes; it must be 1-{limit} bytes of UTF-8 ({value[:40]!r}...)"
                   if size else f"{arg.name} is empty")
    if not value.isprintable():
        raise Drop("range", f"{arg.name} {value[:64]!r} holds a control character (tab, newline...): write it "
                   "on one line, with spaces")
    return value


def _signature(spec: AddressSpec) -> str:
    return ", ".join(arg.describe() for arg in spec.args) or "-"


def address_table_markdown(table: AddressTable | None = None) -> str:
    """The address table as markdown, so the README shows exactly what the code accepts."""
    lines = ["| Address | Arguments | Meaning |", "| --- | --- | --- |"]
    for route in (table or AddressTable()).routes.values():
        lines.append(f"| `{route.shown()}` | {_signature(route.spec)} | {route.spec.meaning} |")
    return "\n".join(lines) + "\n"
