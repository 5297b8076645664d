"""Build a running engine from a patch: open ports, load the model, start the threads, report.

Start-up is all-or-nothing: if any port, model or synth fails to open, what was already open is
closed again and the error (one line, naming what failed) is raised. Stopping, for any reason
(Ctrl-C, SIGTERM, an error), always ends with every output silent.
"""

from __future__ import annotations

import gc
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace

import numpy as np

from . import priority
from .clock import SystemClock
from .engine.continuation import Continuation
from .engine.engine import Engine
from .errors import RealtimeError
from .io.ports import FanOut, Input, Output
from .listen import Listener
from .model.generator import Generator
from .model.runner import ModelRunner
from .model.sampling import Constraints, Sampler, key_pitch_classes
from .patch import Patch, compile_patch
from .priority import try_fifo
from .scheduler import Scheduler
from .settings import sampling

SWITCH_INTERVAL_S = 0.0005  # a busy Python thread otherwise holds the GIL for up to 5 ms


@dataclass
class Overrides:
    """Command-line flags that win over the patch."""

    midi_backend: str | None = None
    osc_port: int | None = None
    no_midi: bool = False
    no_osc: bool = False


def apply_overrides(patch: Patch, overrides: Overrides) -> Patch:
    midi, osc = patch.midi, patch.osc
    if overrides.midi_backend:
        midi = replace(midi, backend=overrides.midi_backend)
    if overrides.no_midi:
        midi = replace(midi, enabled=False)
    if overrides.osc_port is not None:
        osc = replace(osc, port=overrides.osc_port)
    if overrides.no_osc:
        osc = replace(osc, enabled=False)
    return replace(patch, midi=midi, osc=osc)


class LiveEngine:
    """Everything a patch describes, running: ports, model, engine thread, output thread."""

    def __init__(self, patch: Patch, clock: SystemClock | None = None) -> None:
        self.patch = patch
        self.settings = compile_patch(patch)  # what the engine runs with; ports come from the patch
        self.clock = clock or SystemClock()
        self.inputs: list[Input] = []
        self.outputs: list[Output] = []
        self.supervised: list = []  # ports with check(): polled for vanishing and returning
        self.warnings: list[str] = []
        self._stack = ExitStack()
        self._thread: threading.Thread | None = None
        self._old_switch = sys.getswitchinterval()
        self._build()

    # --- start-up --------------------------------------------------------------------------------
    def _build(self) -> None:
        s = self.settings
        self.clock_scheduler: Scheduler | None = None
        self.listener = Listener(s.listen, s.tempo_bpm)  # the player's chord, key, tempo: for every mode
        self.listen_sender = None
        try:
            if s.mode == "game":
                self._build_game()
                return
            m = s.model
            runner = ModelRunner(m.name)
            sampler = Sampler(s.seed, *sampling(runner.meta, m.temperature, m.top_p))
            constraints = Constraints(key_pitch_classes(m.key) if m.key else None, m.lowest, m.highest,
                                      m.max_polyphony)
            self.generator = Generator(runner, sampler, constraints)
            runner.warm_up()  # ONNX session and caches warm before any port opens (benchmarks/cold_start.py)
            self._open_outputs()
            self.output = FanOut(self.outputs)
            self.scheduler = Scheduler(self.output, self.clock, late_tolerance_ns=int(s.budget_ms * 1e6))
            self.mode = Continuation(self.generator, self.scheduler, s.continuation,
                                     model_velocity=runner.meta.get("velocity_level_mean", 80.0),
                                     fallback=m.fallback, clock=self.clock, listener=self.listener)
            self._open_inputs()
            self.engine = Engine(self.mode, self.clock, self.inputs, self.scheduler, controls=s.controls,
                                 listener=self.listener)
        except BaseException:
            self._stack.close()
            raise

    def _build_game(self) -> None:
        """mode = "game": every voice in one batched model, the game's OSC API, MIDI clock out."""
        from .engine.gameosc import register_game_api
        from .engine.gamesetup import build_game_mode, voice_osc_outputs

        s, osc = self.settings, self.patch.osc
        self._open_outputs()
        for port in voice_osc_outputs(s.game, osc.out_host, osc.out_port):
            self._add_output(port)
        self.output = FanOut(self.outputs)
        raw_send = next((port.send_raw for port in self.outputs if hasattr(port, "send_raw")), None)
        self.mode, self.scheduler, self.clock_scheduler = build_game_mode(s, self.clock, self.output, raw_send)
        self._open_inputs()
        if hasattr(self, "osc_input"):
            register_game_api(self.osc_input, s.game, self.mode.post)
        self.engine = Engine(self.mode, self.clock, self.inputs, self.scheduler, controls=s.controls,
                             listener=self.listener)

    def _open_outputs(self) -> None:
        p = self.patch
        if p.synth.kind == "fluidsynth":
            from .io.fluidsynth import FluidSynthProcess

            synth = self._stack.enter_context(FluidSynthProcess(soundfont=p.synth.soundfont, gain=p.synth.gain))
            self.synth_port = synth.midi_port
        if p.midi.enabled:
            from .io.midibackend import open_output

            output_port = p.midi.output
            if p.synth.kind == "fluidsynth" and output_port is None:
                output_port = self.synth_port
            self._add_output(open_output(self.clock, output_port, p.midi.backend, client_name=p.midi.client_name,
                                         latency_ms=p.midi.latency_ms))
        if p.osc.out_host:
            from .io.osc import OscOutput

            self._add_output(OscOutput(p.osc.out_host, p.osc.out_port))
        if p.synth.kind == "builtin":
            from .io.livesynth import LiveSynth

            synth = LiveSynth()
            synth.open()
            self._add_output(synth)

    def _add_output(self, port: Output) -> None:
        self.outputs.append(port)
        self._stack.callback(port.close)
        if hasattr(port, "check"):
            self.supervised.append(port)

    def _open_inputs(self) -> None:
        p = self.patch
        if p.midi.enabled:
            from .io.midibackend import open_input

            follow_clock = p.engine.mode == "game" and p.game.midi_clock_in
            listen_clock = p.listen.tempo_source == "midi_clock"
            port = open_input(self.clock, p.midi.input, p.midi.backend, client_name=p.midi.client_name,
                              accept_clock=follow_clock or listen_clock)
            raw = ([self.mode.on_raw_midi] if follow_clock else []) + ([self.listener.on_raw_midi] if listen_clock else [])
            if raw:
                port.set_raw_listener(lambda data, at_ns: [f(data, at_ns) for f in raw])
            self.inputs.append(port)
            self._stack.callback(port.close)
            self.supervised.append(port)
        if p.osc.enabled:
            from .io.intake import OscIntake  # receives and parses in its own process (see intake.py)

            osc = OscIntake(self.clock, p.osc.host, p.osc.port, allow=p.osc.allow)
            self.inputs.append(osc)
            self._stack.callback(osc.close)
            self.osc_input = osc

    # --- running ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the output thread and the engine thread; the caller may then watch `status()`."""
        if self.patch.engine.mode != "game":
            self.generator.runner.warm_up()
            self.generator.reset()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self._caller = threading.get_ident(), priority.current()  # the main thread, as a rule: realtime/priority.py
        main_note = priority.try_fifo("main thread", priority.MAIN_PRIORITY, inherit=False)
        gc.collect()
        gc.freeze()  # start-up objects are never scanned again; one gen-2 pass cost 25 ms here
        self.scheduler.start(realtime_priority=True)
        if self.clock_scheduler is not None:
            self.clock_scheduler.start(realtime_priority=True)
        if self.patch.osc.out_host:  # /listen/* from a thread of its own, outside the engine's path
            from .listen.osc import ListenSender

            self.listen_sender = ListenSender(self.listener, self.clock, self.patch.osc.out_host,
                                              self.patch.osc.out_port, self.settings.listen.osc_interval_ms)
        if self.patch.engine.mode == "game" and self.patch.game.autostart:
            self.mode.start(self.clock.now_ns())
        self._engine_fifo_note: str | None = None
        self._thread = threading.Thread(target=self._run_engine, name="realtime-engine", daemon=True)
        self._thread.start()
        time.sleep(0.05)
        notes = [self.scheduler.realtime_note, self._engine_fifo_note, main_note]
        notes += getattr(getattr(self, "osc_input", None), "realtime_notes", [])
        if any(notes):  # one line, however many threads were refused
            self.warnings.append("; ".join(note for note in notes if note))

    def _run_engine(self) -> None:
        self._engine_fifo_note = try_fifo("engine thread")
        self.engine.run()

    def supervise(self) -> list[str]:
        """Poll ports for vanishing/returning and collect warnings; call from outside the hot path."""
        messages = []
        for port in self.supervised:
            message = port.check()
            if message:
                messages.append(message)
        if hasattr(self, "osc_input"):
            messages += self.osc_input.take_warnings()
        if self.mode.last_error:
            messages.append(self.mode.last_error)
            self.mode.last_error = None
        messages += self.warnings
        self.warnings = []
        return messages

    def status(self) -> str:
        """One line: notes in and out, answer latency, output jitter, deadline misses, fallback notes."""
        s, m = self.scheduler, self.mode
        listening = self.listener.snapshot(self.clock.now_ns()).line()
        if hasattr(m, "status_line"):  # the game mode: section, bar, tempo, layers, parameters
            return f"out {s.sent_count} | {m.status_line()} | misses {self.misses()} | {listening}"
        n = min(s.sent_count, len(s.lateness_ns))
        jitter = np.abs(s.lateness_ns[:n]) / 1e6 if n else None
        answers = np.array(m.answer_latency_ns[-200:]) / 1e6
        parts = [f"in {self.engine.messages_in}", f"out {s.sent_count}", f"phrases {m.phrases}"]
        if len(answers):
            parts.append(f"answer latency p50 {np.percentile(answers, 50):.2f} ms p99 {np.percentile(answers, 99):.2f} ms")
        if jitter is not None:
            parts.append(f"jitter p99 {np.percentile(jitter, 99):.2f} ms")
        parts.append(f"misses {self.misses()}")
        if m.fallback_notes:
            parts.append(f"fallback notes {m.fallback_notes}")
        dropped = self.dropped()
        if dropped:
            parts.append(f"dropped {dropped}")
        parts.append(listening)
        return " | ".join(parts)

    def misses(self) -> int:
        """Notes handed over late, and notes a port that keeps time wrote after their frame."""
        return self.scheduler.late_count + sum(getattr(port, "late", 0) for port in self.outputs)

    def dropped(self) -> int:
        """Input messages refused so far: bad or foreign OSC, kernel overflow, a full engine inbox."""
        osc = sum(self.osc_input.drops.values()) if hasattr(self, "osc_input") else 0
        return osc + self.engine.inbox_drops

    def stop(self) -> None:
        """Idempotent: stop the threads, silence and close every port, restore the interpreter."""
        if self._thread is not None:
            self.engine.stop()
            self._thread.join(timeout=2.0)
            self._thread = None
        else:
            self.engine.close()
        if self.clock_scheduler is not None:
            self.clock_scheduler.stop()
        if self.listen_sender is not None:
            self.listen_sender.close()
            self.listen_sender = None
        self._stack.close()
        gc.unfreeze()
        sys.setswitchinterval(self._old_switch)
        caller = getattr(self, "_caller", None)
        if caller is not None and caller[0] == threading.get_ident():
            priority.restore(caller[1])

    def __enter__(self) -> LiveEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _reloaded(live: LiveEngine, reload: Callable[[], Patch]) -> LiveEngine:
    """SIGHUP: read the patch again; if it is good, stop (all notes off) and start it, else keep playing."""
    try:
        patch = reload()
    except RealtimeError as err:
        print(f"\nrealtime: reload refused, still running the previous patch: {err}", file=sys.stderr, flush=True)
        return live
    live.stop()
    try:
        fresh = LiveEngine(patch)
        fresh.start()
    except RealtimeError as err:
        print(f"\nrealtime: the reloaded patch did not start ({err}); back to the previous one", file=sys.stderr,
              flush=True)
        fresh = LiveEngine(live.patch)
        fresh.start()
    print(f"\nrealtime: reloaded {patch.path}; every note of the previous patch was ended", flush=True)
    return fresh


def run_patch(patch: Patch, status_every_s: float = 0.5, duration_s: float | None = None,
              reload: Callable[[], Patch] | None = None, record: str | None = None, view: bool = False) -> None:
    """`realtime run`: start, print a one-line status until Ctrl-C or SIGTERM, stop with all notes off.

    With `reload` (a function that reads the patch again), SIGHUP swaps in the re-read patch.
    `record` (a folder) logs the session for `realtime replay`; `view` shows the cockpit (realtime/view.py).
    """
    live = LiveEngine(patch)
    recorder = None
    if record:
        from .record import SessionRecorder

        recorder = SessionRecorder(record, live)
        reload = None  # a reloaded patch would be a different session
    link = None
    if patch.link.enabled:
        from .link import LinkSync, follow_link

        link = LinkSync(patch.engine.tempo_bpm, patch.link.quantum, patch.link.start_stop)
        follow_link(live, link)
    taps = None
    if view:
        from .taps import Taps

        taps = Taps(live)  # before start: the taps replace the engine's inbox
    stop, hangup = threading.Event(), threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    previous_hup = signal.signal(signal.SIGHUP, lambda *_: (hangup.set(), stop.set())) if reload else None
    try:
        live.start()
        ports = ", ".join(p.name for p in live.inputs) + " -> " + live.output.name
        print(f"realtime: running {patch.path} ({ports}); Ctrl-C stops", flush=True)
        started = time.monotonic()
        if view:
            from .view import run_view

            run_view(live, stop, taps, recorder, duration_s)
        while not view:
            if stop.wait(status_every_s):
                if not hangup.is_set():
                    break
                hangup.clear()
                stop.clear()
                live = _reloaded(live, reload)
            for message in live.supervise():
                print(f"\nrealtime: {message}", file=sys.stderr, flush=True)
            print("\r" + live.status() + " " * 4, end="", flush=True)
            if recorder is not None:
                recorder.flush()
            from .learn import save_learned

            for message in save_learned(live):
                print(f"\nrealtime: {message}", flush=True)
            if duration_s is not None and time.monotonic() - started >= duration_s:
                break
    except KeyboardInterrupt:
        pass
    finally:
        live.stop()
        if recorder is not None:
            print(f"\nrealtime: {recorder.close()}", flush=True)
        if link is not None:
            link.close()
        signal.signal(signal.SIGTERM, previous)
        if previous_hup is not None:
            signal.signal(signal.SIGHUP, previous_hup)
        print(f"\nrealtime: stopped; all notes off. {live.status()}", flush=True)
