"""Property tests (hypothesis) for what hostile input reaches: the OSC parser and address table, the patch
parser, the engine's inbox, held-note tracking and the scheduler. Each states what must hold for every
input, not for a few chosen ones; no test here sleeps or touches a socket."""

from __future__ import annotations

import math
import struct
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from realtime.clock import FakeClock
from realtime.engine.engine import NOTE_OFF_RESERVE, Engine
from realtime.errors import PatchError
from realtime.events import NamedControl, NoteMessage
from realtime.io.oscaddress import AddressTable
from realtime.io.osccodec import MAX_BUNDLE_DEPTH, Drop, decode_packet
from realtime.io.ports import HeldNotes, MemoryOutput
from realtime.patch import Patch, parse_patch
from realtime.scheduler import Scheduler

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

addresses = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
                    min_size=1, max_size=40).map(lambda s: "/" + s)
numbers = st.one_of(st.integers(-2**31, 2**31 - 1), st.floats(allow_nan=True, allow_infinity=True, width=32))


def build(address: str, values: list) -> bytes:
    """python-osc's encoder: independent of ours, so a round trip checks our parser, not itself."""
    builder = OscMessageBuilder(address)
    for value in values:
        builder.add_arg(value, "i" if isinstance(value, int) else "f")
    return builder.build().dgram


# --- the OSC parser ---------------------------------------------------------------------------------

@FAST
@given(st.binary(max_size=512))
def test_any_bytes_parse_or_drop_and_nothing_else(data):
    try:
        messages = decode_packet(data)
    except Drop as drop:
        assert drop.kind in {"malformed", "type", "encoding", "bundle-depth"}
        return
    for address, tags, values in messages:
        assert isinstance(address, str) and set(tags) <= set("ihfd") and len(tags) == len(values)


@FAST
@given(addresses, st.lists(numbers, max_size=6))
def test_messages_round_trip_through_an_independent_encoder(address, values):
    ((parsed_address, tags, parsed),) = decode_packet(build(address, values))
    assert parsed_address == address
    assert tags == "".join("i" if isinstance(v, int) else "f" for v in values)
    for sent, got in zip(values, parsed):
        if isinstance(sent, int):
            assert got == sent
        elif math.isnan(sent):
            assert math.isnan(got)
        else:
            assert got == struct.unpack(">f", struct.pack(">f", sent))[0]


@FAST
@given(st.lists(st.tuples(addresses, st.lists(st.integers(0, 127), max_size=3)), min_size=1, max_size=5),
       st.integers(1, MAX_BUNDLE_DEPTH + 3))
def test_bundles_deliver_every_message_in_order_up_to_the_depth_limit(messages, depth):
    builder = OscBundleBuilder(IMMEDIATELY)
    for address, values in messages:
        builder.add_content(OscMessageBuilder(address).build() if not values else _message(address, values))
    packet = builder.build()
    for _ in range(depth - 1):
        outer = OscBundleBuilder(IMMEDIATELY)
        outer.add_content(packet)
        packet = outer.build()
    if depth > MAX_BUNDLE_DEPTH:
        with pytest.raises(Drop) as info:
            decode_packet(packet.dgram)
        assert info.value.kind == "bundle-depth"
    else:
        assert [(a, v) for a, _, v in decode_packet(packet.dgram)] == [(a, v) for a, v in messages]


def _message(address, values):
    builder = OscMessageBuilder(address)
    for value in values:
        builder.add_arg(value, "i")
    return builder.build()


@FAST
@given(st.sampled_from([build("/note/on", [60, 100, 1]), build("/control/temperature", [0.5]),
                        build("/note/off", [61])]),
       st.lists(st.tuples(st.integers(0, 63), st.integers(0, 255)), max_size=6), st.integers(0, 40))
def test_mutated_messages_parse_or_drop(seed, flips, cut):
    data = bytearray(seed)
    for index, value in flips:
        data[index % len(data)] = value
    try:
        decode_packet(bytes(data[:len(data) - cut]))
    except Drop:
        pass


# --- the address table: whatever parses, only sane events come out --------------------------------

@FAST
@given(st.sampled_from(["/note/on", "/note/off", "/control/temperature", "/control/", "/control/a b", "/game/x",
                        "/nope", "/transport/play"]) | addresses,
       st.lists(st.one_of(st.integers(-2**63, 2**63 - 1), st.floats()), max_size=5))
def test_the_table_builds_only_in_range_events(address, values):
    tags = "".join("h" if isinstance(v, int) else "d" for v in values)
    try:
        event = AddressTable().event(address, tags, values)
    except Drop:
        return
    if isinstance(event, NoteMessage):
        assert 0 <= event.pitch <= 127 and 0 <= event.velocity <= 127 and 0 <= event.channel <= 15
        assert all(isinstance(x, int) for x in (event.pitch, event.velocity, event.channel))
    else:
        assert isinstance(event, NamedControl) and math.isfinite(event.value) and event.name


# --- the patch parser -----------------------------------------------------------------------------

toml_values = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3), max_leaves=8)
section_names = st.sampled_from(["engine", "model", "continuation", "midi", "osc", "synth", "controls", "other"])
keys = st.sampled_from(["budget_ms", "tempo_bpm", "seed", "name", "temperature", "channel", "enabled", "port",
                        "allow", "source", "target", "min", "max", "curve", "kind", "gain", "x"])


@FAST
@given(st.dictionaries(section_names, st.dictionaries(keys, toml_values, max_size=4) | st.lists(
    st.dictionaries(keys, toml_values, max_size=4), max_size=2) | toml_values, max_size=4))
def test_any_patch_table_loads_or_names_its_fault_in_one_line(raw):
    try:
        patch = parse_patch(raw, "p.toml")
    except PatchError as err:
        assert str(err).startswith("p.toml: ") and "\n" not in str(err)
        return
    assert isinstance(patch, Patch) and 1 <= patch.continuation.channel <= 16


# --- the engine's inbox: bounded, and note-offs keep a reserve --------------------------------------

class _QuietMode:
    def on_message(self, message, at_ns): pass
    def tick(self, now_ns): pass
    def next_deadline_ns(self): return None
    def stop(self, now_ns): pass
    def apply_control(self, target, value): pass


messages = st.one_of(st.builds(NoteMessage, st.integers(0, 127), st.integers(0, 127), st.integers(0, 15)),
                     st.builds(NamedControl, st.just("temperature"), st.floats(0, 1)))


@FAST
@given(st.lists(messages, max_size=400), st.integers(1, 64))
def test_the_inbox_never_grows_past_its_bound_and_counts_every_drop(offered, limit):
    clock = FakeClock()
    engine = Engine(_QuietMode(), clock, [], Scheduler(MemoryOutput(clock)), inbox_limit=limit)
    for message in offered:
        engine._hear(message, 0)
    accepted = len(engine._inbox)
    assert accepted + engine.inbox_drops == len(offered)
    assert accepted <= limit + NOTE_OFF_RESERVE
    offs = sum(isinstance(m, NoteMessage) and not m.is_on for m in offered)
    assert accepted >= min(len(offered), limit) and accepted >= min(offs, NOTE_OFF_RESERVE)
    engine.tick()
    assert engine.messages_in == accepted and not engine._inbox


# --- held notes and the scheduler: whatever happens, stopping leaves silence ----------------------

notes = st.builds(NoteMessage, st.integers(0, 127), st.integers(0, 127), st.integers(0, 15))


@FAST
@given(st.lists(notes, max_size=200))
def test_held_notes_match_a_plain_model_and_release_exactly_them(sequence):
    """The model: a count of note-ons not yet ended per key (a re-strike is a second sounding note)."""
    held, model = HeldNotes(), Counter()
    for message in sequence:
        held.track(message)
        key = (message.channel, message.pitch)
        if message.is_on:
            model[key] += 1
        elif model[key]:
            model[key] -= 1
    model = +model  # keys whose count fell to 0 are not held
    assert held.held == set(model)
    offs = held.releases()
    assert Counter((m.channel, m.pitch) for m in offs) == model and all(not m.is_on for m in offs) and not held.held


actions = st.one_of(
    st.tuples(st.just("push"), notes, st.integers(0, 50), st.integers(1, 50)),  # note, onset ms, length ms
    st.tuples(st.just("advance"), st.integers(0, 40)),
    st.tuples(st.just("cancel")),
)


@FAST
@given(st.lists(actions, max_size=80))
def test_the_scheduler_sends_in_deadline_order_never_early_and_a_stop_is_silent(script):
    clock = FakeClock()
    output = MemoryOutput(clock)
    scheduler = Scheduler(output, clock)
    deadlines = {}  # id of a pushed message object -> its deadline
    since_cancel = []
    for action in script:
        if action[0] == "push":
            _, note, onset_ms, length_ms = action
            on = NoteMessage(note.pitch, max(1, note.velocity), note.channel)
            off = NoteMessage(note.pitch, 0, note.channel)
            at = clock.now_ns() + onset_ms * 1_000_000
            scheduler.push(on, at)
            scheduler.push(off, at + length_ms * 1_000_000)
            deadlines[id(on)], deadlines[id(off)] = at, at + length_ms * 1_000_000
        elif action[0] == "advance":
            clock.advance_ms(action[1])
            before = len(output.sent)
            scheduler.dispatch_due(clock.now_ns())
            for sent_ns, message in output.sent[before:]:
                assert sent_ns >= deadlines[id(message)], "never before its deadline"
                since_cancel.append(deadlines[id(message)])
        else:
            scheduler.cancel_all()
            since_cancel = []
        assert since_cancel == sorted(since_cancel), "in deadline order"
    scheduler.cancel_all()
    output.close()
    assert output.held == set()
    assert len(scheduler) == 0
