"""A scheduler in front of an output that keeps time itself (lead_ns, send_at): what it reports sending."""

from __future__ import annotations

from realtime.clock import FakeClock
from realtime.events import NoteMessage
from realtime.scheduler import Scheduler

LEAD_NS = 4_666_666  # two 64-frame periods at 48 kHz and 2 ms, as the JACK port asks
PERIOD_NS = 1_333_333  # one 64-frame period


class TimedOutput:
    """An in-memory output with a lead: records each hand-over (clock time, message, deadline)."""

    lead_ns = LEAD_NS
    period_ns = PERIOD_NS

    def __init__(self, clock: FakeClock) -> None:
        self.clock, self.handed = clock, []

    def send_at(self, message: NoteMessage, deadline_ns: int | None) -> None:
        self.handed.append((self.clock.now_ns(), message, deadline_ns))

    def send(self, message: NoteMessage) -> None:
        self.send_at(message, None)

    def all_notes_off(self) -> None:
        pass


def test_a_timed_output_gets_the_note_its_lead_early_and_listeners_hear_its_deadline() -> None:
    clock = FakeClock(1_000_000_000)
    output = TimedOutput(clock)
    scheduler = Scheduler(output, clock)
    heard = []
    scheduler.on_sent = lambda message, deadline, sent: heard.append((deadline, sent, message.pitch))
    deadline = clock.now_ns() + 100_000_000
    scheduler.push(NoteMessage(60, 90), deadline)
    assert scheduler.planned() == [(deadline, NoteMessage(60, 90))], "the plan shows deadlines, not releases"
    clock.sleep_until(deadline - LEAD_NS)
    assert scheduler.dispatch_due(clock.now_ns()) == 1
    assert output.handed == [(deadline - LEAD_NS, NoteMessage(60, 90), deadline)]
    assert heard == [(deadline, deadline, 60)], "on time: it sounds at its deadline"
    assert scheduler.late_count == 0


def test_a_late_handover_is_late_only_when_the_port_has_less_than_a_period() -> None:
    clock = FakeClock(1_000_000_000)
    output = TimedOutput(clock)
    scheduler = Scheduler(output, clock)
    heard = []
    scheduler.on_sent = lambda message, deadline, sent: heard.append((deadline, sent))
    first, second = clock.now_ns() + 100_000_000, clock.now_ns() + 200_000_000
    scheduler.push(NoteMessage(62, 90), first)
    scheduler.push(NoteMessage(64, 90), second)
    clock.sleep_until(first - LEAD_NS + 3_000_000)  # 3 ms late: still 1.67 ms, over a period, ahead
    scheduler.dispatch_due(clock.now_ns())
    assert heard == [(first, first)], "the port still writes it at its frame"
    clock.sleep_until(second - 500_000)  # woke with half a millisecond to go: out within a period
    scheduler.dispatch_due(clock.now_ns())
    assert heard[1] == (second, second - 500_000 + PERIOD_NS)
    assert scheduler.late_count == 0 and scheduler.worst_late_ns == PERIOD_NS - 500_000


def test_a_note_pushed_after_its_deadline_is_reported_when_handed_over() -> None:
    clock = FakeClock(1_000_000_000)
    output = TimedOutput(clock)
    scheduler = Scheduler(output, clock)
    heard = []
    scheduler.on_sent = lambda message, deadline, sent: heard.append((deadline, sent))
    deadline = clock.now_ns() - 2_000_000
    scheduler.push(NoteMessage(64, 90), deadline)  # its release is clamped to now
    clock.advance_ms(0.5)
    scheduler.dispatch_due(clock.now_ns())
    assert heard == [(deadline, clock.now_ns() + PERIOD_NS)], "out within a period of the handover"
