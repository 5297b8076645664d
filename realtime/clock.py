"""Clocks: where the engine gets "now" from, so tests can drive time by hand."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int: ...

    def sleep_until(self, deadline_ns: int) -> None: ...


class SystemClock:
    """Monotonic wall clock; sleeps coarsely, then spins the last stretch for precision."""

    def __init__(self, spin_ns: int = 300_000) -> None:
        self.spin_ns = spin_ns  # time.sleep oversleeps ~0.1 ms here; spin the final 0.3 ms

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def sleep_until(self, deadline_ns: int) -> None:
        remaining = deadline_ns - time.monotonic_ns()
        if remaining > self.spin_ns:
            time.sleep((remaining - self.spin_ns) / 1e9)
        while time.monotonic_ns() < deadline_ns:
            pass


class FakeClock:
    """A clock that only moves when told to: sleeping jumps straight to the deadline."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now_ns = start_ns

    def now_ns(self) -> int:
        return self._now_ns

    def advance_ms(self, ms: float) -> None:
        self._now_ns += int(ms * 1_000_000)

    def sleep_until(self, deadline_ns: int) -> None:
        self._now_ns = max(self._now_ns, deadline_ns)


def ms_to_ns(ms: float) -> int:
    return int(ms * 1_000_000)
