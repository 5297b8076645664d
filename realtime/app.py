"""`realtime run`: a session from a patch (realtime/session.py), its status line, signals and the cockpit.

Command-line flags win over the patch (`Overrides`). `run_patch` builds the session on the patch's
own ports, starts it, prints a one-line status until Ctrl-C or SIGTERM, swaps in a re-read patch
on SIGHUP, and stops with every output silent.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from .learn import save_learned  # here, not in the status loop: its ~10 ms import ran under the first notes
from .patch import Patch
from .session import Session


@dataclass
class Overrides:
    """Command-line flags that win over the patch."""

    midi_backend: str | None = None
    osc_port: int | None = None
    no_midi: bool = False
    no_osc: bool = False
    mood: str | None = None  # `--mood NAME`: the duet's mood, over the patch's [engine] mood


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
    patch = replace(patch, midi=midi, osc=osc)
    if overrides.mood is not None:  # named in the patch's table, else one line naming the flag and the known moods
        from pathlib import Path

        from .moods import choose, load_moods

        e = patch.engine
        choose(load_moods(Path(patch.path).parent / Path(e.moods).expanduser() if e.moods else None), overrides.mood,
               "--mood")
        patch = replace(patch, engine=replace(e, mood=overrides.mood))
    return patch


LiveEngine = Session  # the name `realtime run`'s callers, tests and benchmarks have always used


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
        from .view import run_view  # ~0.3 s of imports: before start, not under the first notes

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
            run_view(live, stop, taps, recorder, duration_s)
        while not view:
            if stop.wait(status_every_s):
                if not hangup.is_set():
                    break
                hangup.clear()
                stop.clear()
                live = live.reloaded(reload)
            for message in live.supervise():
                print(f"\nrealtime: {message}", file=sys.stderr, flush=True)
            print("\r" + live.status() + " " * 4, end="", flush=True)
            if recorder is not None:
                recorder.flush()
            for message in save_learned(live):
                print(f"\nrealtime: {message}", flush=True)
            if duration_s is not None and time.monotonic() - started >= duration_s:
                break
    except KeyboardInterrupt:
        pass
    finally:
        live.stop()
        for message in live.warnings:  # the duet's memory, saved as the run ends
            print(f"\nrealtime: {message}", file=sys.stderr, flush=True)
        if recorder is not None:
            print(f"\nrealtime: {recorder.close()}", flush=True)
        if link is not None:
            link.close()
        signal.signal(signal.SIGTERM, previous)
        if previous_hup is not None:
            signal.signal(signal.SIGHUP, previous_hup)
        print(f"\nrealtime: stopped; all notes off. {live.status()}", flush=True)
