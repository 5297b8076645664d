"""Clocks: where the engine gets "now" from, and how it waits, so one loop runs under any of them.

The engine waits through its clock (`wait_until(deadline, wake)`): the SystemClock sleeps on the
wake event and spins the last stretch, so a show wakes at once for an input; a FakeClock jumps
straight to the deadline, so tests and offline renders run that very loop as fast as the CPU allows.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Callable
from typing import Protocol


class Wake(Protocol):
    """What the engine's inputs set to cut a wait short: a `threading.Event`."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...

    def clear(self) -> None: ...


class Clock(Protocol):
    def now_ns(self) -> int: ...

    def sleep_until(self, deadline_ns: int) -> None: ...

    def wait_until(self, deadline_ns: int, wake: Wake) -> bool: ...


class SystemClock:
    """Monotonic wall clock; sleeps coarsely, then spins the last stretch for precision."""

    def __init__(self, spin_ns: int = 300_000, event_margin_ns: int = 1_000_000) -> None:
        self.spin_ns = spin_ns  # time.sleep oversleeps ~0.1 ms here; spin the final 0.3 ms
        self.event_margin_ns = event_margin_ns  # an event wait oversleeps more: leave it 1 ms early

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def sleep_until(self, deadline_ns: int) -> None:
        remaining = deadline_ns - time.monotonic_ns()
        if remaining > self.spin_ns:
            time.sleep((remaining - self.spin_ns) / 1e9)
        while time.monotonic_ns() < deadline_ns:
            pass

    def wait_until(self, deadline_ns: int, wake: Wake) -> bool:
        """Wait for the deadline or for `wake`, whichever comes first; True (and `wake` cleared) if woken."""
        coarse_ns = deadline_ns - time.monotonic_ns() - self.event_margin_ns
        if coarse_ns > 0 and wake.wait(coarse_ns / 1e9):
            wake.clear()
            return True
        remaining = deadline_ns - time.monotonic_ns()
        if remaining > self.spin_ns and not wake.is_set():
            time.sleep((remaining - self.spin_ns) / 1e9)
        while time.monotonic_ns() < deadline_ns and not wake.is_set():
            pass  # the last fraction of a millisecond: an input still cuts it short
        if wake.is_set():
            wake.clear()
            return True
        return False


class FakeClock:
    """A clock that only moves when told to: sleeping or waiting jumps straight to the deadline.

    `call_at` plans an action at a moment (a player's note in an offline render); it runs when a
    sleep or a wait passes that moment, with the clock reading that moment, and a wait ends there
    if the action set the wake event (as an input does).
    """

    def __init__(self, start_ns: int = 0) -> None:
        self._now_ns = start_ns
        self._planned: list[tuple[int, int, Callable[[], object]]] = []
        self._order = itertools.count()  # actions planned for one moment run in the order planned

    def now_ns(self) -> int:
        return self._now_ns

    def advance_ms(self, ms: float) -> None:
        self._now_ns += int(ms * 1_000_000)

    def call_at(self, at_ns: int, action: Callable[[], object]) -> None:
        heapq.heappush(self._planned, (at_ns, next(self._order), action))

    def sleep_until(self, deadline_ns: int) -> None:
        self._move_to(deadline_ns, None)

    def wait_until(self, deadline_ns: int, wake: Wake) -> bool:
        return self._move_to(deadline_ns, wake)

    def _move_to(self, deadline_ns: int, wake: Wake | None) -> bool:
        if wake is not None and wake.is_set():
            wake.clear()
            return True
        planned = self._planned
        while planned and planned[0][0] <= deadline_ns:
            at_ns, _, action = heapq.heappop(planned)
            self._now_ns = max(self._now_ns, at_ns)
            action()
            if wake is not None and wake.is_set():
                wake.clear()
                return True
        self._now_ns = max(self._now_ns, deadline_ns)
        return False


def ms_to_ns(ms: float) -> int:
    return int(ms * 1_000_000)


class TempoClock:
    """Musical time on top of a clock's nanoseconds: beats and bars <-> ns, tempo changes without jumps.

    The clock keeps an anchor (a moment and the beat it falls on) and a tempo; a tempo change
    re-anchors at the moment of the change, so beats already passed never move. Boundaries are
    "strictly after": a transition asked for exactly on a bar line goes to the next bar line, since
    notes at that bar line may already be scheduled.
    """

    def __init__(self, tempo_bpm: float = 120.0, beats_per_bar: int = 4, origin_ns: int = 0) -> None:
        if not 1.0 <= tempo_bpm <= 1000.0:
            raise ValueError(f"tempo must be 1-1000 BPM, got {tempo_bpm}")
        if beats_per_bar < 1:
            raise ValueError(f"a bar needs at least one beat, got {beats_per_bar}")
        self.tempo_bpm, self.beats_per_bar = float(tempo_bpm), beats_per_bar
        self._anchor_ns, self._anchor_beat = origin_ns, 0.0

    @property
    def ns_per_beat(self) -> float:
        return 60e9 / self.tempo_bpm

    def beat_at(self, ns: int) -> float:
        """The beat (0 = the origin, fractional) at a moment."""
        return self._anchor_beat + (ns - self._anchor_ns) / self.ns_per_beat

    def ns_at(self, beat: float) -> int:
        """The moment a beat falls on at the current tempo."""
        return self._anchor_ns + round((beat - self._anchor_beat) * self.ns_per_beat)

    @property
    def anchor(self) -> tuple[int, float]:
        """(moment ns, the beat falling on it): with the tempo, everything the grid depends on."""
        return self._anchor_ns, self._anchor_beat

    def set_anchor(self, at_ns: int, beat: float, tempo_bpm: float | None = None) -> None:
        """Say which beat falls at a moment (and optionally the tempo from then on): MIDI clock in, restarts."""
        if tempo_bpm is not None:
            if not 1.0 <= tempo_bpm <= 1000.0:
                raise ValueError(f"tempo must be 1-1000 BPM, got {tempo_bpm}")
            self.tempo_bpm = float(tempo_bpm)
        self._anchor_ns, self._anchor_beat = at_ns, float(beat)

    def set_tempo(self, tempo_bpm: float, at_ns: int) -> None:
        """Change tempo from a moment on; the beat at that moment stays where it is."""
        self.set_anchor(at_ns, self.beat_at(at_ns), tempo_bpm)

    def restart(self, at_ns: int) -> None:
        """Beat 0 (the first beat of bar 0) falls at this moment."""
        self.set_anchor(at_ns, 0.0)

    def next_boundary_beat(self, after_ns: int, every_beats: float) -> float:
        """The first multiple of `every_beats` strictly after a moment, in beats."""
        position = self.beat_at(after_ns) / every_beats
        k = math.floor(position + 1e-9) + 1  # a moment a hair past a boundary due to rounding is on it
        return k * every_beats

    def next_beat_ns(self, after_ns: int) -> int:
        return self.ns_at(self.next_boundary_beat(after_ns, 1.0))

    def next_bar_ns(self, after_ns: int) -> int:
        return self.ns_at(self.next_boundary_beat(after_ns, self.beats_per_bar))
