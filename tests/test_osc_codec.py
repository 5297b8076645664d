"""The OSC codec on its own: every address of the table round-trips through encode and decode with
every type tag it accepts, python-osc reads what we encode, and malformed packets and values that
no tag can carry get their one-line errors. No sockets: osc.py's transport is tested in test_osc.py."""

from __future__ import annotations

import itertools
import math
import struct
import time
from pathlib import Path

import pytest
from pythonosc import osc_bundle, osc_message

from realtime.engine.game import GameMessage
from realtime.engine.gameosc import game_routes
from realtime.events import (LeadSheetRequest, LearnRequest, MemoryRequest, ModeRequest, NamedControl, NoteMessage,
                             ShapeRequest)
from realtime.io.oscaddress import AddressTable
from realtime.io.osccodec import (MAX_BUNDLE_DEPTH, TAGS, Drop, MessageEncoder, decode_packet, encode_bundle,
                                  encode_message, ntp_timetag)
from realtime.patch import load_patch

GAME = load_patch(Path(__file__).resolve().parents[1] / "patches" / "game.toml").game
PARAM, STATE, EVENT = GAME.params[0].name, GAME.states[-1].name, GAME.events[0].name

# (address, values every accepted tag can carry exactly, the event the table builds)
CASES = [
    ("/note/on", [60, 100, 3], NoteMessage(60, 100, 3)),
    ("/note/on", [0, 0], NoteMessage(0, 0, 0)),  # velocity 0: a note-off; the channel left out
    ("/note/on", [127, 127, 15], NoteMessage(127, 127, 15)),
    ("/note/off", [64, 9], NoteMessage(64, 0, 9)),
    ("/note/off", [127], NoteMessage(127, 0, 0)),
    ("/control/temperature", [0.75], NamedControl("temperature", 0.75)),
    ("/control/answer_notes", [-2], NamedControl("answer_notes", -2.0)),  # the patch checks ranges
    ("/learn", ["top_p"], LearnRequest("top_p")),
    ("/mode", ["harmonize"], ModeRequest(name="harmonize")),
    ("/memory/save", [], MemoryRequest("save")),
    ("/rhythm", ["x.x.xx.x"], ShapeRequest("rhythm", "x.x.xx.x")),
    ("/mood", ["calm"], ShapeRequest("mood", "calm")),
    ("/style", ["irish"], ShapeRequest("style", "irish")),
    ("/leadsheet/progression", ["| Dm7 G7 | Cmaj7 | % |"], LeadSheetRequest("progression", "| Dm7 G7 | Cmaj7 | % |")),
    ("/leadsheet/key", ["F# minor"], LeadSheetRequest("key", "F# minor")),
    ("/game/param", [PARAM, 0.5], GameMessage("param", PARAM, 0.5)),
    ("/game/param", [PARAM, GAME.params[0].max], GameMessage("param", PARAM, float(GAME.params[0].max))),
    ("/game/state", [STATE], GameMessage("state", STATE)),
    ("/game/event", [EVENT], GameMessage("event", EVENT)),
    ("/transport/tempo", [120], GameMessage("tempo", value=120.0)),
    ("/transport/tempo", [20.0], GameMessage("tempo", value=20.0)),
    ("/transport/start", [], GameMessage("start", value=0.0)),
    ("/transport/stop", [], GameMessage("stop", value=0.0)),
]


def game_table() -> tuple[AddressTable, list]:
    """The default table with the game's addresses registered, and what its handlers posted."""
    table, posted = AddressTable(), []
    for address, spec, handler in game_routes(GAME, lambda message, at_ns: posted.append(message), lambda: 0):
        table.register(address, spec, handler)
    return table, posted


def event_of(table: AddressTable, posted: list, address: str, tags: str, values: list):
    event = table.event(address, tags, values)
    return posted.pop() if event is None and posted else event


def test_the_cases_cover_every_address_the_table_accepts():
    table, _ = game_table()
    served = {route.pattern for route in table.routes.values() if route.handler is not None}
    covered = {next(p for p in sorted(served, key=len, reverse=True) if address.startswith(p))
               for address, _, _ in CASES}
    assert covered == served


@pytest.mark.parametrize("address, values, expected", CASES, ids=[f"{c[0]}{c[1]}" for c in CASES])
def test_every_address_round_trips_with_every_accepted_type(address, values, expected):
    table, posted = game_table()
    route = table.routes.get(address) or next(r for p, r in table.routes.items() if address.startswith(p))
    whole = [isinstance(v, str) or v == int(v) for v in values]  # an int tag carries a whole number only
    choices = [arg.tags if ok else arg.tags.replace("i", "").replace("h", "")
               for arg, ok in zip(route.spec.args, whole)]
    assert all(set(tags) <= set(TAGS) for tags in choices)
    for tags in map("".join, itertools.product(*choices)):
        packet = encode_message(address, *[int(v) if t in "ih" else v for t, v in zip(tags, values)], tags=tags)
        ((got_address, got_tags, got_values),) = decode_packet(packet)
        assert (got_address, got_tags, got_values) == (address, tags, values)
        assert len(packet) % 4 == 0
        assert [type(v) for v in got_values] == [str if t == "s" else int if t in "ih" else float for t in tags]
        assert event_of(table, posted, address, got_tags, got_values) == expected, tags
        parsed = osc_message.OscMessage(packet)  # an independent parser reads the same message
        assert (parsed.address, parsed.params) == (address, values)


def test_bundles_round_trip_in_order_up_to_the_depth_limit():
    messages = [encode_message(address, *values) for address, values, _ in CASES]
    packet = encode_bundle(*messages[:5], encode_bundle(*messages[5:]), timetag=ntp_timetag(time.time() + 60))
    assert [(a, v) for a, _, v in decode_packet(packet)] == [(a, v) for a, v, _ in CASES]
    python_osc = osc_bundle.OscBundle(packet)
    assert python_osc.num_contents == 6 and abs(python_osc.timestamp - (time.time() + 60)) < 1
    nested = messages[0]
    for _ in range(MAX_BUNDLE_DEPTH):
        nested = encode_bundle(nested)
    assert [a for a, _, _ in decode_packet(nested)] == ["/note/on"]
    with pytest.raises(Drop, match="nested more than 8 deep"):
        decode_packet(encode_bundle(nested))


def test_timetags_are_ntp_fixed_point():
    assert ntp_timetag(0.0) == 2_208_988_800 << 32
    assert ntp_timetag(1.5) == (2_208_988_801 << 32) | (1 << 31)
    assert encode_bundle()[8:16] == struct.pack(">Q", 1)  # "immediately" by default


def test_one_encoder_per_signature_matches_the_general_one():
    note_on = MessageEncoder("/synth/note/on", "iii")
    assert note_on(60, 100, 1) == encode_message("/synth/note/on", 60, 100, 1)
    assert note_on(60, 100, 1) == b"/synth/note/on\x00\x00,iii\x00\x00\x00\x00" + struct.pack(">iii", 60, 100, 1)
    assert encode_message("/a", "é", 2.5, 2**40, tags="sdh") == (b"/a\x00\x00,sdh\x00\x00\x00\x00\xc3\xa9\x00\x00"
                                                                 + struct.pack(">dq", 2.5, 2**40))


# Each malformed packet and the (kind, detail) it is dropped with: the same lines as before the codec
# moved into its own module (details are what `take_warnings()` shows after the address and sender).
MALFORMED = [
    (encode_message("/note/on", 60, 100)[:-4], "malformed", "arguments end before type tags ',ii' do"),
    (encode_message("/learn", "temperature")[:-4], "malformed", "a string has no terminating NUL"),
    (b"/note", "malformed", "a string has no terminating NUL"),
    (encode_message("/note/on", 60, 100).replace(b",ii", b",ib"), "type",
     "type tag 'b' is not a number or name (only i h f d s are accepted)"),
    (encode_message("/note/on", 0, 0, 0).replace(b",iii\x00\x00\x00\x00", b"iii\x00"), "malformed",
     "type tags 'iii' do not start with ','"),
    (encode_message("/no?te?", 60, 100).replace(b"?", b"\xff"), "encoding", "a string is not UTF-8"),
    (b"hello", "malformed", "neither an OSC message nor a bundle"),
    (b"", "malformed", "neither an OSC message nor a bundle"),
    (b"#bundle\x00" + bytes(4), "malformed", "bundle shorter than its header"),
    (encode_bundle(encode_message("/note/on", 1, 1))[:-2], "malformed",
     "bundle element size 24 does not fit the bundle"),
    (encode_message("/note/on", "C4", "loud"), "type", "pitch 'C4' is not a number"),
    (encode_message("/learn", 3), "type", "control 3 is not a name"),
    (encode_message("/note/on", 60), "type",
     "expects pitch:int 0-127, velocity:int 0-127, [channel:int 0-15 = 0], got type tags ',i'"),
    (encode_message("/note/off", 60, 0, 0), "type",
     "expects pitch:int 0-127, [channel:int 0-15 = 0], got type tags ',iii'"),
    (encode_message("/note/on", 200, 100), "range", "pitch 200 is outside 0-127"),
    (encode_message("/note/on", 60, 128, tags="ih"), "range", "velocity 128 is outside 0-127"),
    (encode_message("/note/on", 60, 100, 16.0, tags="iid"), "range", "channel 16 is outside 0-15"),
    (encode_message("/note/on", 60.5, 100), "range", "pitch 60.5 is not a whole number"),
    (encode_message("/control/temperature", math.nan), "range", "value nan is not a finite number"),
    (encode_message("/control/temperature", math.inf, tags="d"), "range", "value inf is not a finite number"),
    (encode_message("/control/bad/name", 1.0), "value", "control name 'bad/name' must be letters, digits, '_', '.' or '-'"),
    (encode_message("/learn", "volume"), "value",
     "cannot learn 'volume'; controls: temperature, top_p, answer_notes, phrase_end_ms, blend, key_pull"),
    (encode_message("/learn", "a b"), "range", "control 'a b' must be 1-64 letters, digits, '_', '.' or '-'"),
    (encode_message("/nowhere", 1), "unknown-address", "no such address in the OSC table"),
    (encode_message("/game/guess", 60), "reserved-address", "/game/ is reserved and has no handler yet"),
]


@pytest.mark.parametrize("packet, kind, detail", MALFORMED, ids=[m[2][:40] for m in MALFORMED])
def test_malformed_packets_are_dropped_with_their_one_line_reason(packet, kind, detail):
    with pytest.raises(Drop) as info:
        for address, tags, values in decode_packet(packet):
            AddressTable().event(address, tags, values)
    assert (info.value.kind, info.value.detail) == (kind, detail)
    assert "\n" not in info.value.detail


@pytest.mark.parametrize("call, words", [
    (lambda: encode_message("/note/on", 2**31), "OSC /note/on: argument 1 2147483648 does not fit type tag 'i' (int32)"),
    (lambda: encode_message("/x", 2**63, tags="h"), "argument 1 9223372036854775808 does not fit type tag 'h'"),
    (lambda: encode_message("/x", 1e300, tags="f"), "argument 1 1e+300 does not fit type tag 'f' (float32)"),
    (lambda: encode_message("/x", 60.5, tags="i"), "argument 1 60.5 is not an int for type tag 'i'"),
    (lambda: encode_message("/x", "60", tags="f"), "argument 1 '60' is not a number for type tag 'f'"),
    (lambda: encode_message("/x", 60, tags="s"), "argument 1 must be a str, got 60"),
    (lambda: encode_message("/x", "a\x00b"), "contains a NUL"),
    (lambda: encode_message("/x", True), "OSC arguments are int, float or str, got True"),
    (lambda: encode_message("/x", b"raw"), "OSC arguments are int, float or str"),
    (lambda: encode_message("/x", 1, tags="b"), "OSC /x: type tag 'b' is not one of i h f d s"),
    (lambda: encode_message("/x", 1, 2, tags="i"), "type tags ',i' take 1 arguments, got 2"),
    (lambda: encode_message("x", 1), "must be a str starting with '/'"),
    (lambda: encode_bundle(b"/ab"), "a bundle element must be an encoded OSC message or bundle"),
    (lambda: encode_bundle(timetag=-1), "an OSC timetag is 64 bits"),
])
def test_what_no_type_tag_can_carry_is_a_one_line_value_error(call, words):
    with pytest.raises(ValueError) as info:
        call()
    assert words in str(info.value) and "\n" not in str(info.value)
