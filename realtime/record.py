"""Recording a live session and replaying it exactly: `realtime run --record DIR`, `realtime replay DIR`.

What decides the engine's notes is the patch, the model, the seed, and what the engine thread saw
of the world: the messages each tick took from its inbox (with their arrival times), every reading
of its clock inside a tick (they decide when an answer starts, how far ahead it is computed, and
whether a model step would be late so the Markov fallback chooses), and how many notes the output
still held when the mode asked. The recorder logs exactly those, one JSON line per tick, and every
note the output thread sent. The replay builds the very same engine classes from the logged patch
on a FakeClock with no ports, hands each tick its logged inbox and readings, and calls the engine's
own `tick`: the model, the sampler and the fallback run again and take the same decisions.

session.events (JSON lines): a header ({"session": 1, patch text and hash, model and its hash,
seed, tempo, origin_ns}), then {"t": [clock readings], "in": [[kind, ..., arrival_ns]], "n": [held
counts]} per tick, {"sent": [deadline_ns, sent_ns, pitch, velocity, channel]} per note sent,
{"cancel": ns} when an input's thread cancelled the answer (the player cut in: Engine._hear), {"stop":
ns} when the engine stopped, and a footer {"end": ns, ...counts}. The replay applies each cancel when
its clock first passes that time, as the live output thread did between the engine's readings.
session.mid: a tempo track, the player's notes (track 1), one track per engine voice (channel).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import tomllib
from collections import deque
from dataclasses import replace
from pathlib import Path

import mido

from .errors import RealtimeError
from .events import ControlChange, LearnRequest, NamedControl, NoteMessage
from .taps import tap_inbox, tap_sent

FORMAT = 1
TICKS_PER_BEAT = 9600  # a tick is under 0.32 ms at 20 BPM: MIDI onsets keep sub-millisecond timing


class RecordError(RealtimeError, ValueError):
    """A session folder that cannot be recorded into or replayed."""


def _encode(message, at_ns: int) -> list:
    if isinstance(message, NoteMessage):
        return ["note", message.pitch, message.velocity, message.channel, at_ns]
    if isinstance(message, ControlChange):
        return ["cc", message.control, message.value, message.channel, at_ns]
    if isinstance(message, NamedControl):
        return ["named", message.name, message.value, at_ns]
    if isinstance(message, LearnRequest):
        return ["learn", message.target, at_ns]
    return ["unknown", repr(message), at_ns]


def _decode(item: list):
    kind = item[0]
    if kind == "note":
        return NoteMessage(item[1], item[2], item[3]), item[4]
    if kind == "cc":
        return ControlChange(item[1], item[2], item[3]), item[4]
    if kind == "named":
        return NamedControl(item[1], item[2]), item[3]
    if kind == "learn":
        return LearnRequest(item[1]), item[2]
    raise RecordError(f"session.events: an input of kind {kind!r} cannot be replayed")


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


class _ObservedScheduler:
    """The scheduler as the mode sees it; how many notes it still holds is logged when asked."""

    def __init__(self, scheduler, counts: list | deque, replayed: bool = False) -> None:
        self._scheduler, self._counts, self._replayed = scheduler, counts, replayed

    def push(self, message: NoteMessage, at_ns: int) -> None:
        self._scheduler.push(message, at_ns)

    def cancel_all(self) -> None:
        self._scheduler.cancel_all()

    def __len__(self) -> int:
        if self._replayed:
            if not self._counts:
                raise _Diverged("the mode asked the output more often than it did live")
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


def _model_hash(runner) -> str:
    return hashlib.sha256(Path(runner.path).read_bytes()).hexdigest()


class SessionRecorder:
    """Attach to a built (not yet started) LiveEngine; `flush()` now and then, `close()` at the end."""

    def __init__(self, directory: str | Path, live) -> None:
        if live.patch.engine.mode != "continuation":
            raise RecordError("--record: only the continuation mode can be recorded for replay so far")
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._file = open(self.directory / "session.events", "w")
        except OSError as err:
            raise RecordError(f"{directory}: cannot record here ({err.strerror or err})") from None
        self.live = live
        self.in_tick = False
        self.reads: list[int] = []
        self._taken: list[list] = []
        self._counts: list[int] = []
        self._lines: deque[dict] = deque()  # filled by the engine and output threads, written by flush()
        self.player: list[tuple[int, int, int, int]] = []
        self.engine_notes: list[tuple[int, int, int, int]] = []
        self.origin_ns = live.clock.now_ns()
        self._write({"session": FORMAT, **session_identity(live.patch, live.generator, live.patch.path),
                     "origin_ns": self.origin_ns, "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        self._attach()

    def _attach(self) -> None:
        live, engine = self.live, self.live.engine
        clock = _RecordingClock(engine.clock, self)
        engine.clock = clock
        live.mode.clock = clock
        tap_inbox(engine).listeners.append(self._took)
        live.mode.scheduler = _ObservedScheduler(live.scheduler, self._counts)
        cancels = engine.scheduler = _LoggedCancels(live.scheduler, clock.inner, self._lines)
        tap_sent(live.scheduler, self._sent)
        tick, stop = engine.tick, live.mode.stop

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
                live.mode.scheduler._counts = self._counts

        def recorded_stop(now_ns: int) -> None:
            self._lines.append({"stop": now_ns})
            stop(now_ns)

        engine.tick = recorded_tick
        live.mode.stop = recorded_stop

    def _took(self, message, at_ns: int) -> None:
        self._taken.append(_encode(message, at_ns))

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
            if "sent" in entry:
                deadline, sent, pitch, velocity, channel = entry["sent"]
                self.engine_notes.append((sent, pitch, velocity, channel))
            self._write(entry)
        self._file.flush()

    def close(self) -> str:
        """After the engine stopped: the footer and session.mid; returns a one-line summary."""
        if self._file.closed:
            return ""
        self.flush()
        end_ns = self.live.clock.now_ns()
        mode = self.live.mode
        self._write({"end": end_ns, "fallback_notes": mode.fallback_notes, "phrases": mode.phrases,
                     "engine_notes": sum(1 for n in self.engine_notes if n[2] > 0)})
        self._file.close()
        write_session_midi(self.directory / "session.mid", self.player, self.engine_notes, self.origin_ns,
                           self.live.patch.engine.tempo_bpm, end_ns)
        ons = sum(1 for n in self.engine_notes if n[2] > 0)
        return f"recorded {sum(1 for n in self.player if n[2] > 0)} player notes and {ons} engine notes in {self.directory}"


def session_identity(patch, generator, path: str) -> dict:
    """What the notes depend on besides the inputs: patch (text and hash), model (name and hash), seed."""
    try:
        text = Path(path).read_text()
    except OSError:
        text = ""
    return {"patch": str(path), "patch_text": text, "patch_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "model": patch.model.name, "model_sha256": _model_hash(generator.runner),
            "seed": patch.engine.seed, "tempo_bpm": patch.engine.tempo_bpm}


def write_session_midi(path: Path, player: list, engine: list, origin_ns: int, tempo_bpm: float,
                       end_ns: int) -> None:
    """Tempo track, the player's notes (track 1), one track per engine channel; (ns, pitch, vel, ch) each."""
    ns_per_tick = 60e9 / tempo_bpm / TICKS_PER_BEAT
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    conductor = mido.MidiTrack([mido.MetaMessage("track_name", name="tempo", time=0),
                                mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0),
                                mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0)])
    mid.tracks.append(conductor)
    voices = sorted({n[3] for n in engine})
    for name, notes in [("player", player)] + [(f"engine ch{c + 1}", [n for n in engine if n[3] == c]) for c in voices]:
        events, held = [], set()
        for at_ns, pitch, velocity, channel in sorted(notes, key=lambda n: n[0]):
            tick = max(0, round((at_ns - origin_ns) / ns_per_tick))
            kind = "note_on" if velocity > 0 else "note_off"
            if velocity > 0:
                held.add((channel, pitch))
            elif (channel, pitch) not in held:
                continue
            else:
                held.discard((channel, pitch))
            events.append((tick, kind, pitch, velocity, channel))
        last = max(0, round((end_ns - origin_ns) / ns_per_tick))
        events += [(max(last, events[-1][0]), "note_off", p, 0, c) for c, p in sorted(held)]
        track, now = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)]), 0
        for tick, kind, pitch, velocity, channel in events:
            track.append(mido.Message(kind, note=pitch, velocity=velocity, channel=channel, time=tick - now))
            now = tick
        mid.tracks.append(track)
    mid.save(path)


class _Diverged(RecordError):
    """The replay asked for something the live engine did not: the log and the code disagree."""


class _ReplayClock:
    """Hands the engine thread its logged readings, in order, and moves the FakeClock along.

    A cancel an input's thread made live at time C is applied when a reading first reaches C: what
    was due by C is sent, then the rest is dropped, before the engine acts on that reading.
    """

    def __init__(self, fake, scheduler=None, cancels=()) -> None:
        self.fake, self.reads = fake, deque()
        self.scheduler, self.cancels = scheduler, deque(sorted(cancels))

    def now_ns(self) -> int:
        if not self.reads:
            raise _Diverged("the engine read its clock more often than it did live")
        now = self.reads.popleft()
        self.cancel_until(now)
        self.fake.sleep_until(now)
        return now

    def cancel_until(self, now_ns: int) -> None:
        cancels = self.cancels
        while cancels and cancels[0] <= now_ns:
            at_ns = cancels.popleft()
            self.fake.sleep_until(at_ns)
            self.scheduler.dispatch_due(at_ns)
            self.scheduler.cancel_all()

    def sleep_until(self, deadline_ns: int) -> None:
        self.fake.sleep_until(deadline_ns)


def read_session(directory: str | Path) -> list[dict]:
    path = Path(directory) / "session.events"
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise RecordError(f"{path}: cannot read ({err.strerror or err})") from None
    try:
        entries = [json.loads(line) for line in lines if line.strip()]
    except json.JSONDecodeError as err:
        raise RecordError(f"{path}: line {err.lineno if hasattr(err, 'lineno') else '?'} is not JSON ({err.msg})") from None
    if not entries or entries[0].get("session") != FORMAT:
        raise RecordError(f"{path}: not a session log of format {FORMAT} (no header line)")
    return entries


def replay_session(directory: str | Path, out: str | Path) -> dict:
    """Render the engine's notes again from a recorded session; writes `out` (.mid) and returns figures."""
    from .app import LiveEngine
    from .clock import FakeClock
    from .patch import parse_patch

    entries = read_session(directory)
    header = entries[0]
    try:
        raw = tomllib.loads(header["patch_text"])
    except tomllib.TOMLDecodeError as err:
        raise RecordError(f"{directory}: the logged patch does not parse ({err})") from None
    patch = parse_patch(raw, header["patch"])
    patch = replace(patch, midi=replace(patch.midi, enabled=False), synth=replace(patch.synth, kind="none"),
                    osc=replace(patch.osc, enabled=False, out_host=None))
    fake = FakeClock(header["origin_ns"])
    live = LiveEngine(patch, clock=fake)
    if _model_hash(live.generator.runner) != header["model_sha256"]:
        raise RecordError(f"{directory}: recorded with another {header['model']} model file (its hash differs); "
                          "replay needs the very same model")
    live.generator.warm_up()  # as LiveEngine.start does
    clock = _ReplayClock(fake, live.scheduler, [e["cancel"] for e in entries if "cancel" in e])
    counts: deque = deque()
    live.engine.clock = live.mode.clock = clock
    live.mode.scheduler = _ObservedScheduler(live.scheduler, counts, replayed=True)
    replayed: list[tuple[int, NoteMessage]] = []
    tap_sent(live.scheduler, lambda message, deadline, sent: replayed.append((deadline, message)))
    player, live_sent, stop_ns, ticks = [], [], None, 0
    for entry in entries[1:]:
        if "t" in entry:
            clock.reads.extend(entry["t"])
            counts.extend(entry.get("n", ()))
            for item in entry.get("in", ()):
                message, at_ns = _decode(item)
                live.engine._inbox.append((message, at_ns))
                if isinstance(message, NoteMessage):
                    player.append((at_ns, message.pitch, message.velocity, message.channel))
            live.engine.tick()
            ticks += 1
            if clock.reads or counts:
                raise _Diverged(f"{directory}: tick {ticks} read its clock or output fewer times than live")
        elif "sent" in entry:
            live_sent.append(entry["sent"])
        elif "stop" in entry:
            stop_ns = entry["stop"]
    if stop_ns is not None:  # what the output thread sent between the last tick and the stop
        clock.cancel_until(stop_ns)
        fake.sleep_until(stop_ns)
        live.scheduler.dispatch_due(stop_ns)
    end_ns = next((e["end"] for e in entries if "end" in e), stop_ns or fake.now_ns())
    notes = [(d, m.pitch, m.velocity, m.channel) for d, m in replayed]
    write_session_midi(Path(out), player, notes, header["origin_ns"], header["tempo_bpm"], end_ns)
    return compare(notes, live_sent) | {"ticks": ticks, "out": str(out)}


def compare(replayed: list[tuple[int, int, int, int]], live_sent: list[list[int]]) -> dict:
    """Note-ons of the replay against the live log: same pitches in order, onset differences in ms."""
    ours = [(d, p) for d, p, v, _ in replayed if v > 0]
    theirs = [(d, s, p) for d, s, p, v, _ in live_sent if v > 0]
    same = len(ours) == len(theirs) and all(a[1] == b[2] for a, b in zip(ours, theirs))
    planned = max((abs(a[0] - b[0]) / 1e6 for a, b in zip(ours, theirs)), default=0.0)
    played = max((abs(a[0] - b[1]) / 1e6 for a, b in zip(ours, theirs)), default=0.0)
    return {"replayed_notes": len(ours), "live_notes": len(theirs), "same_pitches": same,
            "max_onset_diff_planned_ms": planned, "max_onset_diff_played_ms": played}
