"""A scheduler in front of an output that keeps time itself (lead_ns, send_at): what it reports sending."""

from __future__ import annotations

from realtime.clock import FakeClock
from realtime.events import NoteMessage
from realtime.scheduler import Scheduler

LEAD_NS = 4_666_666  # two 64-frame periods at 48 kHz and 2 ms, as the JACK port asks


class TimedOutput:
    """An in-memory output with a lead: records each hand-over (clock time, message, deadline)."""

    lead_ns = LEAD_NS

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


def test_a_late_handover_is_reported_late_by_its_lateness() -> None:
    clock = FakeClock(1_000_000_000)
    output = TimedOutput(clock)
    scheduler = Scheduler(output, clock)
    heard = []
    scheduler.on_sent = lambda message, deadline, sent: heard.append((deadline, sent))
    deadline = clock.now_ns() + 100_000_000
    scheduler.push(NoteMessage(62, 90), deadline)
    clock.sleep_until(deadline - LEAD_NS + 3_000_000)  # the output thread woke 3 ms late
    scheduler.dispatch_due(clock.now_ns())
    assert heard == [(deadline, deadline + 3_000_000)]
    assert scheduler.late_count == 1


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
    assert heard == [(deadline, clock.now_ns())]
