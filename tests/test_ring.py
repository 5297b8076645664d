"""The shared-memory event ring between the OSC intake process and the engine: records, wrap-around, a full ring.

Unit tests on one process's view of both ends (the ring is the same bytes either way), and one with a
producer process racing the consumer; the intake's two-process path is tested in test_intake.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import realtime
from realtime.engine.game import GameMessage
from realtime.events import ControlChange, LearnRequest, MemoryRequest, ModeRequest, NamedControl, NoteMessage
from realtime.io.ring import MESSAGE_KINDS, NAME_BYTES, EventRing


@pytest.fixture
def ring():
    producer = EventRing.create(capacity=8, message_type=GameMessage)
    consumer = EventRing.attach(producer.name, 8, other_process=False)
    consumer.message_type = GameMessage
    yield producer, consumer
    consumer.close()
    producer.close()


def test_every_event_type_survives_its_record(ring):
    producer, consumer = ring
    events = [NoteMessage(60, 100, 0), NoteMessage(127, 0, 15), ControlChange(64, 127, 9),
              NamedControl("temperature", 0.8125), NamedControl("x" * NAME_BYTES, -1e9),
              LearnRequest("temperature"), LearnRequest("phrase_end_ms"),
              ModeRequest(name="accompany"), ModeRequest(program=0), ModeRequest(program=127),
              MemoryRequest("save")]
    events += [GameMessage(kind, "boss.fight-2" if kind in ("param", "state", "event") else "", 0.25 * i)
               for i, kind in enumerate(MESSAGE_KINDS)]
    for at_ns, event in enumerate(events, start=1_000_000_000_000):
        assert producer.push(event, at_ns)
        assert consumer.pop() == (event, at_ns)
    assert consumer.pop() is None


def test_a_record_never_carries_a_stale_longer_name(ring):
    producer, consumer = ring
    for _ in range(8):  # every slot once held a long name
        producer.push(NamedControl("a-very-long-control-name", 1.0), 1)
        assert consumer.pop()[0].name == "a-very-long-control-name"
    for _ in range(8):
        producer.push(NamedControl("t", 0.5), 2)
        assert consumer.pop() == (NamedControl("t", 0.5), 2)


def test_wrap_around_keeps_order_over_many_laps(ring):
    producer, consumer = ring
    sent, got = [], []
    for i in range(1000):
        event = NoteMessage(i % 128, (i * 7) % 128, i % 16)
        assert producer.push(event, i)
        sent.append((event, i))
        if i % 3 == 2:  # the consumer lags a little, so the ring is partly full across the wrap
            while (item := consumer.pop()) is not None:
                got.append(item)
    while (item := consumer.pop()) is not None:
        got.append(item)
    assert got == sent


def test_a_full_ring_refuses_and_the_oldest_stay(ring):
    producer, consumer = ring
    for pitch in range(8):
        assert producer.push(NoteMessage(pitch, 90), pitch)
    assert len(consumer) == 8
    assert not producer.push(NoteMessage(100, 90), 100), "full: refused, never overwrites an unread record"
    assert [consumer.pop()[0].pitch for _ in range(8)] == list(range(8))
    assert producer.push(NoteMessage(101, 90), 101), "room again once read"
    assert consumer.pop() == (NoteMessage(101, 90), 101)


def test_what_has_no_record_is_refused(ring):
    producer, consumer = ring
    assert not producer.push(NamedControl("x" * (NAME_BYTES + 1), 1.0), 1)
    assert not producer.push(LearnRequest("x" * (NAME_BYTES + 1)), 1)
    assert not producer.push("not an event", 1)
    assert not producer.push(GameMessage("dance", "x", 1.0), 1)
    assert consumer.pop() is None


def test_counters_cross_from_producer_to_consumer(ring):
    producer, consumer = ring
    producer.publish(3, 123_456_789_012)
    assert consumer.counter(3) == 123_456_789_012
    assert consumer.counter(4) == 0


def test_close_twice_is_safe():
    ring = EventRing.create(capacity=2)
    ring.close()
    ring.close()
    assert ring.closed



PRODUCER = """
import sys
from realtime.events import NoteMessage
from realtime.io.ring import EventRing
ring, sent, count = EventRing.attach(sys.argv[1], int(sys.argv[2])), 0, int(sys.argv[3])
while sent < count:
    if ring.push(NoteMessage(60, 100), sent):  # the arrival stamp numbers the events
        sent += 1
ring.close()
"""


def test_a_consumer_racing_a_producer_process_never_reads_a_counter_halfway_stored():
    """struct.pack_into zero-fills before it writes: a consumer reading head meanwhile saw it at 0, so
    len() went negative (about 1 in 300 events here) and the engine's reader thread died of it."""
    count, capacity = 100_000, 64
    consumer = EventRing.create(capacity)
    package_root = str(Path(realtime.__file__).resolve().parents[1])  # the producer runs the code under test
    producer = subprocess.Popen([sys.executable, "-P", "-c", PRODUCER, consumer.name, str(capacity), str(count)],
                                env=dict(os.environ, PYTHONPATH=package_root))
    expected, negative, deadline = 0, 0, time.monotonic() + 60
    try:
        while expected < count and time.monotonic() < deadline:
            try:
                len(consumer)
            except ValueError:  # __len__() should return >= 0
                negative += 1
            item = consumer.pop()
            if item is not None:
                assert item[1] == expected, "every event once, in order"
                expected += 1
    finally:
        producer.wait(timeout=10)
        consumer.close()
    assert expected == count and negative == 0
