"""Absolute-deadline output: notes are pushed ahead of time and sent when their moment comes.

Contract for `dispatch_due` (the output path): it only pops what is due and sends it. It never
computes music, never waits on a lock held by the model, and never logs; lateness is counted
(`late_count`, `worst_late_ns`) for the status line to report outside the loop.
"""

from __future__ import annotations

import heapq
import itertools

from .events import NoteMessage
from .io.ports import Output


class Scheduler:
    """A time-ordered queue of (deadline, message) for one output."""

    def __init__(self, output: Output, late_tolerance_ns: int = 1_000_000) -> None:
        self.output = output
        self.late_tolerance_ns = late_tolerance_ns
        self._queue: list[tuple[int, int, NoteMessage]] = []
        self._order = itertools.count()  # keeps equal deadlines in push order (note-off before note-on)
        self.sent_count = 0
        self.late_count = 0
        self.worst_late_ns = 0
        self.on_sent = None  # optional callback(message, deadline_ns, sent_ns) for measurements

    def push(self, message: NoteMessage, at_ns: int) -> None:
        heapq.heappush(self._queue, (at_ns, next(self._order), message))

    def next_deadline_ns(self) -> int | None:
        return self._queue[0][0] if self._queue else None

    def __len__(self) -> int:
        return len(self._queue)

    def dispatch_due(self, now_ns: int) -> int:
        """Send everything whose deadline has come; returns how many were sent."""
        sent = 0
        while self._queue and self._queue[0][0] <= now_ns:
            deadline, _, message = heapq.heappop(self._queue)
            self.output.send(message)
            late = now_ns - deadline
            if late > self.late_tolerance_ns:
                self.late_count += 1
            if late > self.worst_late_ns:
                self.worst_late_ns = late
            if self.on_sent is not None:
                self.on_sent(message, deadline, now_ns)
            sent += 1
        self.sent_count += sent
        return sent

    def cancel_all(self) -> None:
        """Drop every pending message and silence what the output holds (the player cut in)."""
        self._queue.clear()
        self.output.all_notes_off()
