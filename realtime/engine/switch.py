"""Several stage modes in one session, one playing at a time, switched live at the next bar.

The modes share one scheduler (one output), made by their makers in realtime/modes.py. A request
(OSC `/mode NAME`, or a MIDI program change: the number of the mode in the patch's `[engine] modes`)
is taken at once and carried out on the next bar line of the player's beat grid: the active mode's
own when it keeps one (`next_bar_ns`: accompany's bars follow the chords struck), else the listener's
tempo (bars of `beats_per_bar` counted from the beat it last heard fall); while no tempo has been
heard there are no bars, and the switch is at once. At the switch the old mode stops and every note
it sounds or planned ends (the scheduler's cancel: explicit note-offs, then the panic controllers);
then the new mode begins. Only the active mode hears the player's notes and ticks; the listener
(which every mode reads) hears them all, so the new mode knows the chord, key and tempo at once.
"""

from __future__ import annotations

from ..events import LeadSheetRequest, ModeRequest, NoteMessage
from ..scheduler import Scheduler
from .engine import Mode
from .stagecontrols import listener_bar_ns
from .status import Figures


class ModeSwitch:
    """A Mode made of modes: forwards to the active one and switches between them on the bar."""

    def __init__(self, modes: dict[str, Mode], first: str, scheduler: Scheduler, beats_per_bar: int = 4) -> None:
        if first not in modes:
            raise ValueError(f"first mode {first!r} is not among {list(modes)}")
        self.modes, self.names = modes, list(modes)
        self.active_name, self.active = first, modes[first]
        self.scheduler, self.beats_per_bar = scheduler, beats_per_bar
        self.pending: str | None = None
        self.switch_at_ns: int | None = None
        self.switches = self.refused = 0
        self.last_error: str | None = None
        self.listener = None  # set by the Engine; the modes were given it by their makers

    @property
    def answering(self) -> bool:  # the engine's cut-in reads it (realtime/engine/engine.py)
        return getattr(self.active, "answering", False)

    @property
    def memory(self):
        """The duet's memory of the player, whether or not the duet is playing now (None without a duet)."""
        return next((m.memory for m in self.modes.values() if getattr(m, "memory", None) is not None), None)

    # --- requests ----------------------------------------------------------------------------------
    def request_mode(self, request: ModeRequest, now_ns: int) -> None:
        name = request.name
        if request.program is not None:
            if request.program >= len(self.names):
                self._refuse(f"program change {request.program}: [engine] modes has {len(self.names)} "
                             f"(0-{len(self.names) - 1}: {', '.join(self.names)})")
                return
            name = self.names[request.program]
        if name not in self.modes:
            self._refuse(f"/mode {name!r}: not one of this patch's [engine] modes ({', '.join(self.names)})")
            return
        if name == self.active_name:
            self.pending = self.switch_at_ns = None  # asked back before the bar came: stay
            self._play_until(None)
            return
        self.pending, self.switch_at_ns = name, self._next_bar_ns(now_ns)
        self._play_until(self.switch_at_ns)

    def _play_until(self, at_ns: int | None) -> None:
        """A mode that hands notes over ahead of time (the lead sheet) hands over none at or after the switch."""
        until = getattr(self.active, "play_until", None)
        if until is not None:
            until(at_ns)

    def request_leadsheet(self, request: LeadSheetRequest, now_ns: int) -> None:
        """A new progression or key goes to the lead sheet, playing or not (it plays it when switched to)."""
        mode = next((m for m in self.modes.values() if hasattr(m, "request_leadsheet")), None)
        if mode is None:
            self._refuse(f"/leadsheet/{request.what}: no lead sheet among this patch's [engine] modes "
                         f"({', '.join(self.names)})")
            return
        mode.request_leadsheet(request, now_ns)
        if mode is not self.active and mode.last_error is not None and self.last_error is None:
            self.last_error, mode.last_error = mode.last_error, None

    def _refuse(self, line: str) -> None:
        self.refused += 1
        self.last_error = line

    def _next_bar_ns(self, now_ns: int) -> int:
        own = getattr(self.active, "next_bar_ns", None)  # a mode that keeps a bar of its own (accompany)
        bar_ns = own(now_ns) if own is not None else None
        if bar_ns is not None:
            return max(now_ns, bar_ns)
        return listener_bar_ns(self.listener, now_ns, self.beats_per_bar)

    def _switch(self, now_ns: int) -> None:
        old, name = self.active, self.pending
        self.pending = self.switch_at_ns = None
        old.stop(now_ns)
        self.scheduler.cancel_all()  # every note the old mode sounds or planned ends, before the new one's
        self.active_name, self.active = name, self.modes[name]
        self.active.begin(now_ns)
        self.switches += 1

    # --- the engine's side -------------------------------------------------------------------------
    def on_message(self, message: NoteMessage, at_ns: int) -> None:
        self.active.on_message(message, at_ns)

    def tick(self, now_ns: int) -> None:
        if self.switch_at_ns is not None and now_ns >= self.switch_at_ns:
            self._switch(now_ns)
        self.active.tick(now_ns)
        error = self.active.last_error
        if error is not None and self.last_error is None:
            self.last_error, self.active.last_error = error, None

    def next_deadline_ns(self) -> int | None:
        deadline = self.active.next_deadline_ns()
        if self.switch_at_ns is not None and (deadline is None or self.switch_at_ns < deadline):
            return self.switch_at_ns
        return deadline

    def stop(self, now_ns: int) -> None:
        self.pending = self.switch_at_ns = None
        self.active.stop(now_ns)

    def apply_control(self, target: str, value: float) -> None:
        self.active.apply_control(target, value)

    def request_shape(self, what: str, text: str) -> None:
        """`/rhythm`, `/mood`: for the duet among the modes, whichever plays now (its next answer takes it)."""
        for mode in self.modes.values():
            if (shape := getattr(mode, "request_shape", None)) is not None:
                shape(what, text)

    def request_style(self, name: str | None, now_ns: int, program: int | None = None) -> None:
        """`/style NAME` (or a program change, in a patch whose program changes choose styles): every mode with
        a model takes it at its own next bar line; the first refusal is the one line."""
        for mode in self.modes.values():
            if (request := getattr(mode, "request_style", None)) is not None:
                request(name, now_ns, program)
                if mode is not self.active and mode.last_error is not None and self.last_error is None:
                    self.last_error, mode.last_error = mode.last_error, None

    def silence(self, now_ns: int) -> None:
        """The player's all-notes-off: the active mode ends its notes, if it knows how."""
        silence = getattr(self.active, "silence", None)
        if silence is not None:
            silence(now_ns)

    # --- the session's side ------------------------------------------------------------------------
    def warm_up(self) -> None:
        for mode in self.modes.values():
            mode.warm_up()

    def begin(self, now_ns: int) -> None:
        self.active.begin(now_ns)

    def status_fields(self, figures: Figures, now_ns: int) -> list[str]:
        head = f"mode {self.active_name}" + (f" -> {self.pending} at the bar" if self.pending else "")
        return [head, *self.active.status_fields(figures, now_ns)]

    def drops(self) -> int:
        return sum(mode.drops() for mode in self.modes.values())
