"""The engine loop: inputs -> mode -> scheduler -> output, on an injectable clock.

Contract for the loop: input callbacks only append to a deque and set an event (no lock
shared with the model). Each tick sends what is due, lets the mode hear new messages and
compute ahead, and sends again. Nothing in a tick logs or blocks; counts are kept for a status
line outside. Between ticks the loop waits through its clock (`Clock.wait_until`) for the next
deadline or an input: on the SystemClock that is a show; on a FakeClock time jumps from one wake
to the next, so tests and offline renders (realtime/offline.py) run this very loop as fast as the
CPU allows. Tests may also call `tick()` after moving a FakeClock by hand.

Floods: the inbox is bounded (`inbox_limit`); past it new messages are dropped and counted
(`inbox_drops`), except note-offs, which have a reserve of their own so a flood can never leave a
player's note sounding in the engine's ears. A tick handles at most what was waiting when it began,
so a flood cannot keep the mode from computing, and only notes wake the loop early (a control waits
for the next tick, at most `poll_ms`). A player's note-on while the mode answers cancels the answer
from the input's own thread (appending to the scheduler's inbox is as lock-free as ours).
A listener (realtime/listen/), when given, hears each of the player's notes before the mode and
analyses them once per tick; modes read its `snapshot()`. The player's all-sound-off and all-notes-off
(CC120, CC123) reach a mode that has `silence(now_ns)` (accompany, a switch of modes): it ends its notes.
`/style NAME` and, in a session of one mode, a MIDI program change reach a mode's `request_style`.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Protocol

from ..clock import Clock
from ..events import (ControlChange, LeadSheetRequest, LearnRequest, MemoryRequest, ModeRequest, NamedControl,
                      NoteMessage, ShapeRequest)
from ..io.ports import Input
from ..listen import Listener
from ..scheduler import Scheduler
from ..settings import CONTROL_TARGETS, ControlMapping
from .status import Figures


INBOX_LIMIT = 4096  # messages waiting for the engine; a player never gets near this between two ticks
NOTE_OFF_RESERVE = 16 * 128  # room kept for note-offs past the limit: one per channel and pitch
SILENCING_CONTROLS = (120, 123)  # all sound off, all notes off: a mode with `silence` ends its notes on them


class Mode(Protocol):
    """What every mode implements: the engine calls the first five, the session (realtime/session.py) the rest.

    A mode that remembers the player between runs (the duet) has a `memory` (engine/playermemory.py):
    the engine asks it to save on `/memory/save`, the session writes it outside the loop.
    """

    last_error: str | None  # one line for the user, taken (and cleared) by the session outside the loop

    def on_message(self, message: NoteMessage, at_ns: int) -> None: ...

    def tick(self, now_ns: int) -> None: ...

    def next_deadline_ns(self) -> int | None: ...

    def stop(self, now_ns: int) -> None: ...

    def apply_control(self, target: str, value: float) -> None: ...

    def warm_up(self) -> None:
        """Just before the threads start: whatever makes the first real note cost what later ones do."""

    def begin(self, now_ns: int) -> None:
        """The threads have started: what the mode does at once (the game's autostart)."""

    def status_fields(self, figures: Figures, now_ns: int) -> list[str]:
        """The status line's fields (realtime/engine/status.py), from the session's figures and the mode's own."""

    def drops(self) -> int:
        """Messages the mode itself refused so far (a full inbox of its own)."""


class Engine:
    """Runs one mode against its inputs and scheduler until told to stop."""

    def __init__(self, mode: Mode, clock: Clock, inputs: list[Input], scheduler: Scheduler,
                 poll_ms: float = 20.0, controls: tuple[ControlMapping, ...] = (),
                 inbox_limit: int = INBOX_LIMIT, listener: Listener | None = None) -> None:
        self.mode, self.clock, self.inputs, self.scheduler = mode, clock, inputs, scheduler
        self.listener = listener  # hears the player's notes before the mode does; any mode may read it
        if listener is not None and getattr(mode, "listener", None) is None:
            mode.listener = listener  # what every mode reads: mode.listener.snapshot(now_ns)
        # "cc:1" / "osc:temperature" -> mappings; looked up per control event, never per note
        self.controls: dict[str, list[ControlMapping]] = {}
        for mapping in controls:
            self.controls.setdefault(mapping.source, []).append(mapping)
        self.controls_applied = 0
        self.mode_requests_ignored = 0  # /mode or a program change in a session of one mode
        self.memory_requests_ignored = 0  # /memory/save in a mode without a memory
        self.shape_requests_ignored = 0  # /rhythm or /mood in a mode without answers to shape
        self.leadsheet_requests_ignored = 0  # /leadsheet/... in a session without a lead sheet
        self.learning: str | None = None  # MIDI learn: a target waiting for the next moved controller
        self.learned: deque[ControlMapping] = deque()  # bindings made, for saving outside the loop
        self.poll_ns = int(poll_ms * 1e6)
        self._inbox: deque[tuple[NoteMessage, int]] = deque()
        self.inbox_limit = inbox_limit
        self.inbox_drops = 0
        self._wake = threading.Event()
        self.stopped = threading.Event()
        self.messages_in = 0
        for port in inputs:
            port.set_listener(self._hear)

    def _hear(self, message: NoteMessage, at_ns: int) -> None:
        waiting = len(self._inbox)
        if waiting >= self.inbox_limit:
            if not (isinstance(message, NoteMessage) and not message.is_on
                    and waiting < self.inbox_limit + NOTE_OFF_RESERVE):
                self.inbox_drops += 1  # a racy count across input threads is still a count
                return
        self._inbox.append((message, at_ns))
        if isinstance(message, NoteMessage):
            if message.is_on and getattr(self.mode, "answering", False):
                # The player cut in: silence the answer from this thread, at once. The engine thread
                # may be busy for milliseconds (a model step, a catch-up); the output thread is not.
                # The mode still rolls back, and cancels again, when it hears this note.
                self.scheduler.cancel_all()
            self._wake.set()

    def tick(self) -> None:
        """One pass: send what is due, hear what arrived, let the mode compute, send again."""
        now = self.clock.now_ns()
        self.scheduler.dispatch_due(now)
        inbox, listener = self._inbox, self.listener
        for _ in range(len(inbox)):  # only what was waiting: a flood must not starve the mode
            message, at_ns = inbox.popleft()
            self.messages_in += 1
            if isinstance(message, NoteMessage):
                if listener is not None:
                    listener.hear(message, at_ns)
                self.mode.on_message(message, at_ns)
            else:
                self._control(message)
        if listener is not None:
            listener.refresh(now)
        self.mode.tick(self.clock.now_ns())
        self.scheduler.dispatch_due(self.clock.now_ns())

    def _control(self, message: ControlChange | NamedControl | LearnRequest | ModeRequest | MemoryRequest
                 | LeadSheetRequest) -> None:
        if isinstance(message, LeadSheetRequest):  # a new progression or key: the lead sheet parses it, here
            request = getattr(self.mode, "request_leadsheet", None)
            if request is None:
                self.leadsheet_requests_ignored += 1
            else:
                request(message, self.clock.now_ns())
            return
        if isinstance(message, ModeRequest):  # only a session of several modes (realtime/engine/switch.py) switches
            request = getattr(self.mode, "request_mode", None)
            style = getattr(self.mode, "request_style", None)
            if request is not None:
                request(message, self.clock.now_ns())
            elif style is not None and message.program is not None:  # else a program change chooses a style
                style(None, self.clock.now_ns(), message.program)
            else:
                self.mode_requests_ignored += 1
            return
        if isinstance(message, LearnRequest):
            self.learning = message.target
            return
        if isinstance(message, ShapeRequest) and message.what == "style":  # each mode's next bar (stagecontrols.py)
            style = getattr(self.mode, "request_style", None)
            if style is None:
                self.shape_requests_ignored += 1
            else:
                style(message.text, self.clock.now_ns())
            return
        if isinstance(message, ShapeRequest):  # the duet's next answer takes it (engine/answershape.py)
            shape = getattr(self.mode, "request_shape", None)
            if shape is None:
                self.shape_requests_ignored += 1
            else:
                shape(message.what, message.text)
            return
        if isinstance(message, MemoryRequest):  # the counts are copied here, written by the session outside the loop
            memory = getattr(self.mode, "memory", None)
            if memory is None:
                self.memory_requests_ignored += 1
            else:
                memory.request_save()
            return
        if isinstance(message, ControlChange):
            if message.control in SILENCING_CONTROLS:  # the player's all-sound-off / all-notes-off
                silence = getattr(self.mode, "silence", None)
                if silence is not None:
                    silence(self.clock.now_ns())
            if self.learning is not None:
                self._learn(f"cc:{message.control}", self.learning)
            source, normalized = f"cc:{message.control}", message.value / 127
        else:
            source, normalized = f"osc:{message.name}", message.value
        for mapping in self.controls.get(source, ()):
            self.mode.apply_control(mapping.target, mapping.value(normalized))
            self.controls_applied += 1

    def _learn(self, source: str, target: str) -> None:
        """Bind `source` to `target` (keeping the range the patch gave the target), replacing other CCs on it."""
        self.learning = None
        if target not in CONTROL_TARGETS:
            return
        known = [m for ms in self.controls.values() for m in ms if m.target == target]
        whole = CONTROL_TARGETS[target]
        low, high = (known[0].min, known[0].max) if known else (whole.low, whole.high)
        curve = known[0].curve if known else "linear"
        for key in [k for k in self.controls if k.startswith("cc:")]:
            self.controls[key] = [m for m in self.controls[key] if m.target != target]
        mapping = ControlMapping(source, target, low, high, curve)
        self.controls[source] = [m for m in self.controls.get(source, []) if m.target != target] + [mapping]
        self.learned.append(mapping)

    def _next_wake_ns(self, now: int) -> int:
        wake = now + self.poll_ns
        for deadline in (self.scheduler.next_deadline_ns(), self.mode.next_deadline_ns()):
            if deadline is not None and deadline < wake:
                wake = deadline
        return wake

    def run(self, until_ns: int | None = None) -> None:
        """Loop in this thread until `stop()` (or `until_ns`); then silence everything."""
        try:
            self.loop(until_ns)
        finally:
            self.close()

    def loop(self, until_ns: int | None = None) -> None:
        """Tick, then wait through the clock for the next deadline or an input; until `stop()` or `until_ns`.

        Returns without closing, so a test on a FakeClock can loop to a moment, look, and loop on.
        """
        clock = self.clock
        while not self.stopped.is_set():
            self.tick()
            now = clock.now_ns()
            if until_ns is not None and now >= until_ns:
                return
            wake = self._next_wake_ns(now)
            if until_ns is not None and until_ns < wake:
                wake = until_ns
            clock.wait_until(wake, self._wake)

    def stop(self) -> None:
        self.stopped.set()
        self._wake.set()

    def close(self) -> None:
        """Idempotent: end the mode, drop pending notes, and leave every output silent."""
        self.mode.stop(self.clock.now_ns())
        self.scheduler.cancel_all()
        self.scheduler.stop()
        for port in self.inputs:
            port.set_listener(None)
