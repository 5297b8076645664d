"""Recording a live session for exact replay: `realtime run --record DIR` (the replay is replay.py).

What decides the engine's notes is the patch, the model, the seed, and what the engine thread saw
of the world: the messages each tick took from its inboxes (with their arrival times), every reading
of its clock inside a tick (they decide when an answer starts, how far ahead it is computed, and
whether a model step would be late so the Markov fallback chooses), and how many notes the output
still held when the mode asked. The recorder logs exactly those, one JSON line per tick, and every
note the output thread sent. The replay builds the very same engine classes from the logged patch
on a FakeClock with no ports, hands each tick its logged inputs and readings, and calls the engine's
own `tick`: the model, the sampler and the fallback run again and take the same decisions.

Both modes. The game mode's inputs are its own inbox (the game's OSC messages as GameMessages, and
the raw MIDI clock bytes it follows, both fed on the engine thread), the transport's autostart (with
the clock reading it started from) and the TempoClock's anchor when recording began; its batched
voices, seed and tempo moves then follow from the code. A session following Ableton Link is refused:
the peers' snapshots are not logged.

session.events (JSON lines): a header ({"session": 1, mode, patch text and hash, model and its hash,
seed, tempo, origin_ns, and for a game its tempo anchor}), {"start": ns} for a game's autostart, then
{"t": [clock readings], "in": [[kind, ..., arrival_ns]], "n": [held counts]} per tick, {"sent":
[deadline_ns, sent_ns, pitch, velocity, channel]} per note sent, {"cut": ns} when the mode cancelled
what the output held (logged the moment it did, before its tick's line), {"cancel": ns} when an
input's thread cancelled the answer (the player cut in: Engine._hear), {"tempo": [ns, bpm]} when the
tempo changed, {"stop": ns} when the engine stopped, and a footer {"end": ns, ...counts}.
session.mid (sessionmidi.py): the tempo map with the game's messages as markers, the player's notes
(continuation), one track per engine voice (channel), named after the game's voices. memory.markov
(the duet's): its memory of the player as the session began, which the replay starts from.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from pathlib import Path

from .engine.gameparts import GameMessage
from .events import NoteMessage
from .model.markovfile import save_counts
from .sessionlog import CUTS, FORMAT, Diverged, RecordError, encode_input, marker, panic_times, sounded
from .sessionmidi import write_session_midi
from .taps import tap_inbox, tap_sent, tap_tempo

MEMORY_FILE = "memory.markov"


class _RecordingClock:
    """The engine thread's clock: readings taken inside a tick are logged."""

    def __init__(self, inner, recorder: SessionRecorder) -> None:
        self.inner, self.recorder = inner, recorder

    def now_ns(self) -> int:
        now = self.inner.now_ns()
        if self.recorder.in_tick:
            self.recorder.reads.append(now)
        return now

    def sleep_until(self, deadline_ns: int) -> None:
        self.inner.sleep_until(deadline_ns)

    def wait_until(self, deadline_ns: int, wake) -> bool:
        return self.inner.wait_until(deadline_ns, wake)


class ObservedScheduler:
    """The scheduler as the mode sees it: how many notes it still holds, and when it cancels them.

    Live, `len()` is logged and `on_cut()` runs after each cancel; replayed, `len()` hands back the
    logged counts and `on_cut()` runs first (the replay sends what was due by the logged moment).
    """

    def __init__(self, scheduler, counts: list | deque, on_cut, replayed: bool = False) -> None:
        self._scheduler, self._counts, self._on_cut, self._replayed = scheduler, counts, on_cut, replayed

    def push(self, message: NoteMessage, at_ns: int) -> None:
        self._scheduler.push(message, at_ns)

    def cancel_all(self) -> None:
        if self._replayed:
            self._on_cut()
        self._scheduler.cancel_all()
        if not self._replayed:
            self._on_cut()

    def __len__(self) -> int:
        if self._replayed:
            if not self._counts:
                raise Diverged("the mode asked the output more often than it did live")
            return self._counts.popleft()
        n = len(self._scheduler)
        self._counts.append(n)
        return n

    def __getattr__(self, name: str):
        return getattr(self._scheduler, name)


class _LoggedCancels:
    """The scheduler as the engine sees it: a cancel from another thread than the engine's is logged."""

    def __init__(self, scheduler, clock, log) -> None:
        self._scheduler, self._clock, self._log = scheduler, clock, log
        self.engine_thread: int | None = None  # set by the first recorded tick

    def cancel_all(self) -> None:
        self._scheduler.cancel_all()
        if threading.get_ident() != self.engine_thread:
            self._log.append({"cancel": self._clock.now_ns()})

    def __getattr__(self, name: str):
        return getattr(self._scheduler, name)


def mode_runner(live):
    """The model runner whose file the notes depend on (the game mode's is its voice bank's)."""
    return live.mode.bank.runner if live.patch.engine.mode == "game" else live.generator.runner


def model_hash(runner) -> str:
    return hashlib.sha256(Path(runner.path).read_bytes()).hexdigest()


class SessionRecorder:
    """Attach to a built (not yet started) LiveEngine; `flush()` now and then, `close()` at the end."""

    def __init__(self, directory: str | Path, live) -> None:
        if live.patch.link.enabled:
            raise RecordError("--record: a session following Ableton Link cannot be replayed (its peers are not "
                              "logged); set [link] enabled = false to record")
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._file = open(self.directory / "session.events", "w")
        except OSError as err:
            raise RecordError(f"{directory}: cannot record here ({err.strerror or err})") from None
        self.live, self.game = live, live.patch.engine.mode == "game"
        self.in_tick = False
        self.reads: list[int] = []
        self._taken: list[list] = []
        self._counts: list[int] = []
        self._lines: deque[dict] = deque()  # filled by the engine and output threads, written by flush()
        self.player: list[tuple[int, int, int, int]] = []
        self._timeline: list[dict] = []  # the sends and cancels, in log order
        self.tempo_changes: list[tuple[int, float]] = []
        self.markers: list[tuple[int, str]] = []
        self.origin_ns = live.clock.now_ns()
        header = {"session": FORMAT, "mode": live.patch.engine.mode,
                  **session_identity(live.patch, mode_runner(live), live.patch.path), "origin_ns": self.origin_ns,
                  "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if self.game:
            header["tempo_anchor"] = [*live.mode.tempo.anchor, live.mode.tempo.tempo_bpm]
        memory = getattr(live.mode, "memory", None)
        if memory is not None:  # the replay starts from the memory this run started from, not the one it leaves
            save_counts(self.directory / MEMORY_FILE, memory.model.counts(), memory.model.max_order)
            header["memory"] = MEMORY_FILE
        self._write(header)
        self._attach()

    def _attach(self) -> None:
        live, engine, mode = self.live, self.live.engine, self.live.mode
        clock = _RecordingClock(engine.clock, self)
        engine.clock = clock
        if not self.game:
            mode.clock = clock  # the continuation reads its clock inside the tick; the game mode is handed now
        tap_inbox(engine).listeners.append(self._took)
        mode.scheduler = ObservedScheduler(live.scheduler, self._counts,
                                           lambda: self._lines.append({"cut": clock.inner.now_ns()}))
        cancels = engine.scheduler = _LoggedCancels(live.scheduler, clock.inner, self._lines)
        tap_sent(live.scheduler, self._sent)
        tick, stop = engine.tick, mode.stop
        if self.game:
            tap_inbox(mode, "inbox").listeners.append(self._took)
            tap_tempo(mode.tempo, lambda at_ns, bpm: self._lines.append({"tempo": [at_ns, bpm]}))
            start = mode.start

            def recorded_start(now_ns: int) -> None:  # the patch's autostart, before the engine thread runs
                self._lines.append({"start": now_ns})
                start(now_ns)

            mode.start = recorded_start

        def recorded_tick() -> None:
            cancels.engine_thread = threading.get_ident()
            self.in_tick = True
            try:
                tick()
            finally:
                self.in_tick = False
                entry = {"t": self.reads}
                if self._taken:
                    entry["in"] = self._taken
                if self._counts:
                    entry["n"] = self._counts
                self._lines.append(entry)
                self.reads, self._taken, self._counts = [], [], []
                mode.scheduler._counts = self._counts

        def recorded_stop(now_ns: int) -> None:
            self._lines.append({"stop": now_ns})
            stop(now_ns)

        engine.tick = recorded_tick
        mode.stop = recorded_stop

    def _took(self, message, at_ns: int) -> None:
        self._taken.append(encode_input(message, at_ns))

    def _sent(self, message: NoteMessage, deadline_ns: int, sent_ns: int) -> None:
        self._lines.append({"sent": [deadline_ns, sent_ns, message.pitch, message.velocity, message.channel]})

    def _write(self, entry: dict) -> None:
        self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")

    def flush(self) -> None:
        """Write what the threads logged since the last flush (call outside the hot path)."""
        lines = self._lines
        for _ in range(len(lines)):
            entry = lines.popleft()
            for item in entry.get("in", ()):
                if item[0] == "note":
                    self.player.append((item[4], item[1], item[2], item[3]))
                elif item[0] == "game":
                    self.markers.append((item[4], marker(GameMessage(item[1], item[2], item[3]))))
            if "sent" in entry or any(key in entry for key in CUTS):
                self._timeline.append(entry)
            if "tempo" in entry:
                self.tempo_changes.append(tuple(entry["tempo"]))
            self._write(entry)
        self._file.flush()

    def close(self) -> str:
        """After the engine stopped: the footer and session.mid; returns a one-line summary."""
        if self._file.closed:
            return ""
        self.flush()
        end_ns = self.live.clock.now_ns()
        mode = self.live.mode
        sends, taken_back = sounded(self._timeline)  # what a port took back at a cancel never sounded
        notes = [(sent, pitch, velocity, channel) for _, sent, pitch, velocity, channel in sends]
        ons = sum(1 for n in notes if n[2] > 0)
        counts = {"engine_notes": ons, "taken_back": taken_back}
        for name in ("fallback_notes", "phrases", "notes_out", "inbox_drops"):
            if hasattr(mode, name):
                counts[name] = getattr(mode, name)
        self._write({"end": end_ns, **counts})
        self._file.close()
        write_session_midi(self.directory / "session.mid", self.live.patch, notes, self.origin_ns, end_ns,
                           self.player, self.tempo_changes, self.markers, panic_times(self._timeline))
        heard = f"{len(self.markers)} game messages" if self.game else \
            f"{sum(1 for n in self.player if n[2] > 0)} player notes"
        return f"recorded {heard} and {ons} engine notes in {self.directory}"


def session_identity(patch, runner, path: str) -> dict:
    """What the notes depend on besides the inputs: patch (text and hash), model (name and hash), seed."""
    try:
        text = Path(path).read_text()
    except OSError:
        text = ""
    return {"patch": str(path), "patch_text": text, "patch_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "model": patch.model.name, "model_sha256": model_hash(runner),
            "seed": patch.engine.seed, "tempo_bpm": patch.engine.tempo_bpm}
