"""A running session: built by one function from settings and ports, run by one small lifecycle object.

`build_session(settings, ports, clock)` makes what the settings describe: the mode named by
settings.mode (its builder in realtime/modes.py loads the model, then opens the ports through
`ports`), its schedulers and the engine over them. Start-up is all-or-nothing: if any port, model
or synth fails to open, what was already open is closed again and the error (one line, naming
what failed) is raised.

`Session` (`LiveEngine` in realtime/app.py) starts the threads, reports (`supervise`, `status`,
outside the loop), reloads (SIGHUP) and stops. Stopping, for any reason (Ctrl-C, SIGTERM, an
error), always ends with every output silent. It knows modes only through `Mode`
(realtime/engine/engine.py) and ports only through `Ports` (realtime/patchports.py): tests and
benchmarks build it the same way with `MemoryPorts`.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections.abc import Callable

from . import priority
from .clock import Clock, SystemClock
from .engine.engine import Engine, Mode
from .engine.status import measure
from .errors import RealtimeError
from .listen import Listener
from .modes import builder
from .patch import Patch, compile_patch
from .patchports import PatchPorts, Ports
from .priority import try_fifo
from .scheduler import Scheduler
from .settings import EngineSettings

SWITCH_INTERVAL_S = 0.0005  # a busy Python thread otherwise holds the GIL for up to 5 ms


def build_session(settings: EngineSettings, ports: Ports, clock: Clock
                  ) -> tuple[Mode, tuple[Scheduler, ...], Engine]:
    """The mode, its output threads (the notes' first) and the engine; ports open, nothing started.

    On any failure every port already open is closed again before the error goes on.
    """
    try:
        listener = Listener(settings.listen, settings.tempo_bpm)  # the player's chord, key, tempo: every mode's
        mode, schedulers = builder(settings)(settings, clock, ports, listener)
        engine = Engine(mode, clock, ports.inputs, schedulers[0], controls=settings.controls, listener=listener)
    except BaseException:
        ports.close()
        raise
    return mode, schedulers, engine


class Session:
    """Everything a patch describes, running: ports, model, engine thread, output threads."""

    def __init__(self, patch: Patch, clock: Clock | None = None, ports: Ports | None = None) -> None:
        self.patch = patch
        self.settings = compile_patch(patch)  # what the engine runs with; ports come from the patch
        self.clock = clock or SystemClock()
        self.ports = ports if ports is not None else PatchPorts(patch)
        self.warnings: list[str] = []
        self._thread: threading.Thread | None = None
        self._engine_fifo_note: str | None = None
        self._caller: tuple[int, object] | None = None  # the starting thread and its priority, restored on stop
        self._old_switch = sys.getswitchinterval()
        self.mode, self.schedulers, self.engine = build_session(self.settings, self.ports, self.clock)
        self.scheduler = self.schedulers[0]  # the notes' (the others keep the MIDI clock)
        self.inputs, self.outputs = self.ports.inputs, self.ports.outputs
        self.output = self.scheduler.output  # one output that sends to all (FanOut)
        self.listener = self.engine.listener
        self.listen_sender = None
        if patch.osc.out_host:  # /listen/* from a thread of its own, outside the engine's path
            from .listen.osc import ListenSender

            try:
                self.listen_sender = ListenSender(self.listener, self.clock, patch.osc.out_host, patch.osc.out_port,
                                                  self.settings.listen.osc_interval_ms)
            except BaseException:
                self.ports.close()
                raise

    @property
    def generator(self):
        """The continuation's model stream (recording, the view and benchmarks read it)."""
        return self.mode.generator

    @property
    def osc_input(self):
        return self.ports.osc

    # --- running ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the output threads and the engine thread; the caller may then watch `status()`."""
        self.mode.warm_up()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self._caller = threading.get_ident(), priority.current()  # the main thread, as a rule: realtime/priority.py
        main_note = priority.try_fifo("main thread", priority.MAIN_PRIORITY, inherit=False)
        gc.collect()
        gc.freeze()  # start-up objects are never scanned again; one gen-2 pass cost 25 ms here
        for scheduler in self.schedulers:
            scheduler.start(realtime_priority=True)
        self.mode.begin(self.clock.now_ns())
        self._thread = threading.Thread(target=self._run_engine, name="realtime-engine", daemon=True)
        self._thread.start()
        time.sleep(0.05)
        notes = [self.scheduler.realtime_note, self._engine_fifo_note, main_note, *self.ports.thread_notes()]
        if any(notes):  # one line, however many threads were refused
            self.warnings.append("; ".join(note for note in notes if note))

    def _run_engine(self) -> None:
        self._engine_fifo_note = try_fifo("engine thread")
        self.engine.run()

    def supervise(self) -> list[str]:
        """Poll ports for vanishing/returning and collect warnings; call from outside the hot path."""
        messages = self.ports.check()
        memory = getattr(self.mode, "memory", None)
        if memory is not None:  # what it read at start, and a /memory/save asked for since
            messages += memory.persist()
        if self.mode.last_error:
            messages.append(self.mode.last_error)
            self.mode.last_error = None
        messages += self.warnings
        self.warnings = []
        return messages

    def status(self) -> str:
        """One line: the session's counts (in, out, jitter, misses, drops) and the mode's own fields."""
        figures = measure(self.scheduler, self.engine.messages_in, self.misses(), self.dropped())
        now_ns = self.clock.now_ns()
        return " | ".join([*self.mode.status_fields(figures, now_ns), self.listener.snapshot(now_ns).line()])

    def misses(self) -> int:
        """Notes handed over late, and notes a port that keeps time wrote after their frame."""
        return self.scheduler.late_count + self.ports.late()

    def dropped(self) -> int:
        """Input messages refused so far: bad or foreign OSC, kernel overflow, a full engine or mode inbox."""
        return self.ports.drops() + self.engine.inbox_drops + self.mode.drops()

    def stop(self) -> None:
        """Idempotent: stop the threads, silence and close every port, restore the interpreter."""
        stopped = True
        if self._thread is not None:
            self.engine.stop()
            self._thread.join(timeout=2.0)
            stopped = not self._thread.is_alive()
            self._thread = None
        else:
            self.engine.close()
        memory = getattr(self.mode, "memory", None)
        if memory is not None:  # the run's end: what was learned is written, once the engine thread no longer learns
            self.warnings += memory.persist(final=True) if stopped else ["memory: not saved (the engine thread "
                                                                         "did not stop)"]
        for scheduler in self.schedulers[1:]:  # the engine stopped the notes' own
            scheduler.stop()
        if self.listen_sender is not None:
            self.listen_sender.close()
            self.listen_sender = None
        self.ports.close()
        gc.unfreeze()
        sys.setswitchinterval(self._old_switch)
        if self._caller is not None and self._caller[0] == threading.get_ident():
            priority.restore(self._caller[1])

    def reloaded(self, reload: Callable[[], Patch]) -> Session:
        """SIGHUP: read the patch again; if it is good, stop (all notes off) and start it, else keep playing."""
        try:
            patch = reload()
        except RealtimeError as err:
            print(f"\nrealtime: reload refused, still running the previous patch: {err}", file=sys.stderr,
                  flush=True)
            return self
        self.stop()
        for line in self.warnings:  # the memory saved at the stop, before the new patch reads it
            print(f"\nrealtime: {line}", file=sys.stderr, flush=True)
        try:
            fresh = Session(patch)
            fresh.start()
        except RealtimeError as err:
            print(f"\nrealtime: the reloaded patch did not start ({err}); back to the previous one",
                  file=sys.stderr, flush=True)
            fresh = Session(self.patch)
            fresh.start()
        print(f"\nrealtime: reloaded {patch.path}; every note of the previous patch was ended", flush=True)
        return fresh

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
