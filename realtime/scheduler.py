"""Absolute-deadline output: notes are pushed ahead of time and sent when their moment comes.

The engine pushes from its own thread; the messages cross over a deque (appends and pops are
atomic in CPython, so no lock is shared with the model). Either the engine calls
`dispatch_due` itself (fake clock, tests), or `start()` runs a dedicated output thread that
sleeps until just before each deadline and spins the last stretch.

An output that keeps time itself (the JACK-Client port writes each message at its frame) has a
`lead_ns` and a `send_at(message, deadline_ns)`: it gets each message that long before the deadline,
with the deadline; a message already due when it was pushed goes to its `send`, at once. A FanOut is
taken apart, so each of its outputs gets the message at its own lead.

Contract for the output path (`dispatch_due` and the output thread): it only moves messages
from the inbox to the heap and sends what is due. It never computes music, never waits on a
lock the model holds, and never logs: lateness is counted (`late_count`, `lateness_ns`) and
reported by whoever reads the counters outside.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import deque

import numpy as np

from .clock import Clock
from .events import NoteMessage
from .io.ports import FanOut, Output
from .priority import OUTPUT_PRIORITY, try_fifo

_CANCEL = object()


class Scheduler:
    """A time-ordered queue of (deadline, message) for one output."""

    def __init__(self, output: Output, clock: Clock | None = None, late_tolerance_ns: int = 1_000_000,
                 spin_ns: int = 400_000, history: int = 1 << 16) -> None:
        self.output, self.clock = output, clock
        self._targets = list(output.outputs) if isinstance(output, FanOut) else [output]
        self._timed = any(hasattr(target, "send_at") for target in self._targets)
        # outputs whose all_notes_off only queues a panic (JACK-Client): told at once on a cancel
        self._panic_at_once = [target for target in self._targets if getattr(target, "panics_at_once", False)]
        self.late_tolerance_ns, self.spin_ns = late_tolerance_ns, spin_ns
        self._inbox: deque = deque()
        self._queue: list[tuple[int, int, NoteMessage]] = []
        self._order = itertools.count()  # equal deadlines go out in push order
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = False
        self.sent_count = self.late_count = 0
        self.worst_late_ns = 0
        self.lateness_ns = np.zeros(history, dtype=np.int64)  # ring of (sent - deadline) per message
        # optional callback(message, deadline_ns, sent_ns), called on the output path; for a timed
        # target, deadline_ns is the message's deadline (not its release) and sent_ns when it sounds
        self.on_sent = None
        self.realtime_note: str | None = None  # why the output thread did not get SCHED_FIFO, if it did not

    # --- engine side ------------------------------------------------------------------------------
    def push(self, message: NoteMessage, at_ns: int) -> None:
        if self._timed:
            order = next(self._order)
            now = self.clock.now_ns() if self.clock is not None else None
            for index, target in enumerate(self._targets):
                release = at_ns - getattr(target, "lead_ns", 0)
                if now is not None and release < now:
                    release = now  # pushed later than its lead: hand it over now, it is not late yet
                self._inbox.append((release, order, message, index, at_ns))
        else:
            self._inbox.append((at_ns, next(self._order), message))
        self._wake.set()

    def cancel_all(self) -> None:
        """Drop every pending message and silence what the output holds (the player cut in).

        An output that keeps time itself is told at once, from the caller's thread (an input's, on a
        cut-in), without waiting for the output thread to wake; it is told again when the output thread
        drains the cancel, which also ends anything handed over in between."""
        for target in self._panic_at_once:
            target.all_notes_off()
        self._inbox.append(_CANCEL)
        self._wake.set()
        if self._thread is None:
            self._drain()

    @property
    def lead_ns(self) -> int:
        """How long before its deadline a message must be pushed to be written at its frame: the longest
        lead of the outputs that keep time (0 when none does). A mode that plans ahead pushes no earlier
        than this (plus its own margin), so what it has not pushed yet it can still change."""
        return max((getattr(target, "lead_ns", 0) for target in self._targets), default=0)

    def __len__(self) -> int:
        return len(self._queue) + len(self._inbox)

    def next_deadline_ns(self) -> int | None:
        if self._thread is not None:
            return None  # the output thread keeps its own time
        self._drain()
        return self._queue[0][0] if self._queue else None

    def planned(self) -> list[tuple[int, NoteMessage]]:
        """A copy of what waits to be sent, (deadline ns, message) in deadline order: for the view.

        Copying a list or deque is one call under the GIL, so this reads a consistent picture
        without a lock on the output path; a cancel still in the inbox hides everything before it.
        """
        items = list(self._queue) + list(self._inbox)
        if any(item is _CANCEL for item in items):
            last = max(i for i, item in enumerate(items) if item is _CANCEL)
            items = items[last + 1:]
        if self._timed:  # (release, order, message, target, deadline): each message once, at its deadline
            items = [(item[4], item[1], item[2]) for item in items if not item[3]]
        return [(deadline, message) for deadline, _, message in sorted(items, key=lambda item: item[:2])]

    # --- output side ------------------------------------------------------------------------------
    def _drain(self) -> None:
        inbox, queue = self._inbox, self._queue
        while inbox:
            item = inbox.popleft()
            if item is _CANCEL:
                queue.clear()
                self.output.all_notes_off()
            else:
                heapq.heappush(queue, item)

    def dispatch_due(self, now_ns: int) -> int:
        """Send everything whose deadline has come; returns how many were sent.

        With an output thread running, only that thread sends: a call from elsewhere does nothing.
        """
        if self._thread is not None and threading.current_thread() is not self._thread:
            return 0
        self._drain()
        sent = 0
        queue = self._queue
        while queue and queue[0][0] <= now_ns:
            item = heapq.heappop(queue)
            deadline, message = item[0], item[2]
            if self._timed:
                target = self._targets[item[3]]
                send_at = getattr(target, "send_at", None)
                if send_at is not None and item[4] > item[0]:
                    send_at(message, item[4])
                else:  # (a message due when it was pushed, a harmony note: at once, not written "late")
                    target.send(message)
                if item[3]:
                    continue  # timing and counts follow each message's first output
            else:
                self.output.send(message)
            sent_ns = self.clock.now_ns() if self.clock is not None else now_ns
            late = sent_ns - deadline  # for a timed target: handed over after its release time
            if self._timed and hasattr(target, "lead_ns"):
                # What the listener hears about is the note's own deadline and when it sounds: a port
                # that keeps time writes it at its deadline's frame when it has it a period ahead;
                # handed over later, it goes out within a period of the handover (an upper bound).
                deadline, period = item[4], getattr(target, "period_ns", 0)
                sent_ns = deadline if sent_ns + period <= deadline else max(deadline, sent_ns + period)
                late = sent_ns - deadline
            self.lateness_ns[self.sent_count % len(self.lateness_ns)] = late
            self.sent_count += 1
            if late > self.late_tolerance_ns:
                self.late_count += 1
            if late > self.worst_late_ns:
                self.worst_late_ns = late
            if self.on_sent is not None:
                self.on_sent(message, deadline, sent_ns)
            sent += 1
        return sent

    def start(self, realtime_priority: bool = True) -> None:
        """Run the output thread (needs a real clock): it waits for each deadline precisely."""
        if self.clock is None:
            raise ValueError("a threaded scheduler needs a clock")
        self._running = True
        self._thread = threading.Thread(target=self._run, args=(realtime_priority,), name="realtime-output",
                                        daemon=True)
        self._thread.start()

    def _run(self, realtime_priority: bool) -> None:
        if realtime_priority:
            self.realtime_note = try_fifo("output thread", OUTPUT_PRIORITY)
        clock, wake = self.clock, self._wake
        while self._running:
            self._drain()
            now = clock.now_ns()
            self.dispatch_due(now)
            deadline = self._queue[0][0] if self._queue else None
            if deadline is None:
                wake.wait(0.05)
                wake.clear()
                continue
            coarse = deadline - clock.now_ns() - self.spin_ns
            if coarse > 0:
                if wake.wait(coarse / 1e9):
                    wake.clear()
                    continue  # something new arrived: it may be earlier
            while clock.now_ns() < deadline and not self._inbox:
                pass  # spin the last fraction of a millisecond: sleeping would overshoot it
        self._drain()

    def stop(self) -> None:
        """Stop the output thread after it has handled everything pushed so far (cancels included)."""
        if self._thread is not None:
            self._running = False
            self._wake.set()
            self._thread.join(timeout=2.0)
            self._thread = None
        self._drain()
