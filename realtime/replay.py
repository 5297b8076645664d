"""Replaying a recorded session offline, note for note: `realtime replay DIR --out FILE.mid`.

The replay builds the logged patch's engine (continuation or game) on a FakeClock with no ports,
hands each tick its logged inputs, clock readings and held counts, and calls the engine's own
`tick` (record.py says what is logged and why). A cancel the mode made live is replayed with its
logged moment: what was due by then is sent first, as the live output thread had sent it.

What is compared: the live log's note-ons against the replay's, in the order they went out. A note a
port that keeps time (JACK) was handed ahead of its deadline, and that a cancel or the stop took
back before its deadline, is not compared (`taken_back` counts them): it never sounded.
"""

from __future__ import annotations

import tomllib
from collections import deque
from dataclasses import replace
from pathlib import Path

from .errors import RealtimeError
from .events import NoteMessage
from .record import ObservedScheduler, mode_runner, model_hash
from .sessionlog import Diverged, GameMessage, RecordError, decode_input, marker, panic_times, read_session, sounded
from .sessionmidi import write_session_midi
from .taps import tap_sent, tap_tempo


class ReplayClock:
    """Hands the engine thread its logged readings, in order, and moves the FakeClock along.

    A cancel an input's thread made live at time C is applied when a reading first reaches C: what
    was due by C is sent, then the rest is dropped, before the engine acts on that reading.
    """

    def __init__(self, fake, scheduler=None, cancels=()) -> None:
        self.fake, self.reads = fake, deque()
        self.scheduler, self.cancels = scheduler, deque(sorted(cancels))

    def now_ns(self) -> int:
        if not self.reads:
            raise Diverged("the engine read its clock more often than it did live")
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

    def cut(self, at_ns: int) -> None:
        """The mode is about to cancel, as it did live at `at_ns`: first send what was due by then."""
        self.cancel_until(at_ns)
        self.fake.sleep_until(at_ns)
        self.scheduler.dispatch_due(at_ns)

    def sleep_until(self, deadline_ns: int) -> None:
        self.fake.sleep_until(deadline_ns)


def _logged_patch(header: dict, path: Path):
    """The patch the session ran, with every port off: the replay hears and plays nothing live."""
    from .patch import parse_patch

    try:
        patch = parse_patch(tomllib.loads(header["patch_text"]), header["patch"])
    except (tomllib.TOMLDecodeError, RealtimeError) as err:
        raise RecordError(f"{path}: the logged patch does not load ({err})") from None
    if patch.engine.mode != header.get("mode", patch.engine.mode):
        raise RecordError(f"{path}: the logged patch is in {patch.engine.mode} mode, the session in {header['mode']}")
    return replace(patch, midi=replace(patch.midi, enabled=False), synth=replace(patch.synth, kind="none"),
                   osc=replace(patch.osc, enabled=False, out_host=None))


def _inputs(entry: dict, patch, where: str) -> list:
    """A tick's inputs, decoded against the patch, or a one-line RecordError naming the line."""
    try:
        return [decode_input(item, patch) for item in entry.get("in", ())]
    except ValueError as err:
        raise RecordError(f"{where}: {err}") from None


def replay_session(directory: str | Path, out: str | Path) -> dict:
    """Render the engine's notes again from a recorded session; writes `out` (.mid) and returns figures."""
    from .app import LiveEngine
    from .clock import FakeClock

    path = Path(directory) / "session.events"
    entries = read_session(directory)
    header = entries[0][1]
    patch = _logged_patch(header, path)
    if header.get("memory"):  # the memory the session started from, kept beside its log (the patch's file moved on)
        memory = (Path(directory) / Path(str(header["memory"])).name).resolve()
        patch = replace(patch, continuation=replace(patch.continuation, memory=str(memory)))
    game = patch.engine.mode == "game"
    fake = FakeClock(header["origin_ns"])
    live = LiveEngine(patch, clock=fake)
    if model_hash(mode_runner(live)) != header["model_sha256"]:
        raise RecordError(f"{directory}: recorded with another {header['model']} model file (its hash differs); "
                          "replay needs the very same model")
    tempo_changes: list[tuple[int, float]] = []
    if game:
        anchor_ns, anchor_beat, bpm = header.get("tempo_anchor") or (header["origin_ns"], 0.0, header["tempo_bpm"])
        live.mode.tempo.set_anchor(int(anchor_ns), float(anchor_beat), float(bpm))
        tap_tempo(live.mode.tempo, lambda at_ns, bpm: tempo_changes.append((at_ns, bpm)))
    else:
        live.generator.warm_up()  # as LiveEngine.start does
    clock = ReplayClock(fake, live.scheduler, [e["cancel"] for _, e in entries if "cancel" in e])
    counts, cuts = deque(), deque()
    live.engine.clock = clock
    if not game:
        live.mode.clock = clock

    def cut() -> None:  # a session logged before cuts were logged cancels without sending first
        if cuts:
            clock.cut(cuts.popleft())

    live.mode.scheduler = ObservedScheduler(live.scheduler, counts, cut, replayed=True)
    replayed: list[tuple[int, NoteMessage]] = []
    tap_sent(live.scheduler, lambda message, deadline, sent: replayed.append((deadline, message)))
    player, markers, stop_ns, ticks = [], [], None, 0
    for number, entry in entries[1:]:
        where = f"{path}: line {number}"
        if stop_ns is not None:
            if "cut" in entry:  # the mode's own stop cancelled here: the output had sent what was due
                stop_ns = max(stop_ns, entry["cut"])
        elif "t" in entry:
            clock.reads.extend(entry["t"])
            counts.extend(entry.get("n", ()))
            for message, at_ns, to_mode in _inputs(entry, patch, where):
                (live.mode.inbox if to_mode else live.engine._inbox).append((message, at_ns))
                if isinstance(message, NoteMessage):
                    player.append((at_ns, message.pitch, message.velocity, message.channel))
                elif isinstance(message, GameMessage):
                    markers.append((at_ns, marker(message)))
            try:
                live.engine.tick()
            except Diverged as err:
                raise Diverged(f"{where}: {err}") from None
            ticks += 1
            if clock.reads or counts or cuts:
                raise Diverged(f"{where}: the tick read its clock, asked or cancelled the output fewer times than live")
        elif "cut" in entry:
            cuts.append(entry["cut"])
        elif "start" in entry and game:
            fake.sleep_until(entry["start"])
            live.mode.start(entry["start"])
        elif "stop" in entry:
            stop_ns = entry["stop"]
    if stop_ns is not None:  # what the output thread sent between the last tick and the stop
        clock.cut(stop_ns)
    end_ns = next((e["end"] for _, e in entries if "end" in e), stop_ns or fake.now_ns())
    notes = [(d, m.pitch, m.velocity, m.channel) for d, m in replayed]
    logged = [entry for _, entry in entries]
    write_session_midi(Path(out), patch, notes, header["origin_ns"], end_ns, player, tempo_changes, markers,
                       panic_times(logged))
    live_sent, taken_back = sounded(logged)
    return compare(notes, live_sent) | {"ticks": ticks, "out": str(out), "taken_back": taken_back}


def compare(replayed: list[tuple[int, int, int, int]], live_sent: list[list[int]]) -> dict:
    """Note-ons of the replay against the live log: same pitches in order, onset differences in ms."""
    ours = [(d, p) for d, p, v, _ in replayed if v > 0]
    theirs = [(d, s, p) for d, s, p, v, _ in live_sent if v > 0]
    same = len(ours) == len(theirs) and all(a[1] == b[2] for a, b in zip(ours, theirs))
    planned = max((abs(a[0] - b[0]) / 1e6 for a, b in zip(ours, theirs)), default=0.0)
    played = max((abs(a[0] - b[1]) / 1e6 for a, b in zip(ours, theirs)), default=0.0)
    return {"replayed_notes": len(ours), "live_notes": len(theirs), "same_pitches": same,
            "max_onset_diff_planned_ms": planned, "max_onset_diff_played_ms": played}
