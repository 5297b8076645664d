"""Ableton Link (PyPI `aalink`): share tempo, beat phase and start/stop with other Link peers.

`LinkSync` keeps an aalink.Link on a thread with its own asyncio loop and publishes a snapshot
(monotonic ns, beat, tempo, playing, peers) every few milliseconds as one tuple (a single reference
swap: no lock). The engine side reads the snapshot on its own thread and re-anchors the game
mode's TempoClock, so beats and bars land on the shared grid; a tempo change by any peer reaches
the engine at its next tick. Patch: `[link] enabled = true` (quantum = beats per bar by default).
`python -m realtime.link --tempo 120 --seconds 5` is a bare peer printing its snapshots (tests).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time

from .errors import RealtimeError
from .priority import MAIN_PRIORITY, try_fifo

POLL_S = 0.005


class LinkSync:
    """One Link session member; `snapshot` is (ns, beat, tempo_bpm, playing, peers) or None before the first."""

    def __init__(self, tempo_bpm: float = 120.0, quantum: float = 4.0, start_stop: bool = True) -> None:
        try:
            import aalink  # noqa: F401
        except ImportError as err:
            raise RealtimeError(f"[link] needs the aalink package ({err}): pip install aalink") from None
        self.tempo_bpm, self.quantum, self.start_stop = tempo_bpm, quantum, start_stop
        self.snapshot: tuple[int, float, float, bool, int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._link = None
        self._running = True
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="realtime-link", daemon=True)
        self._thread.start()
        self._ready.wait(5.0)

    def _run(self) -> None:
        try_fifo("the Link thread", MAIN_PRIORITY)  # never preempted while it holds the GIL
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        from aalink import Link

        self._loop = asyncio.get_running_loop()
        link = self._link = Link(self.tempo_bpm)
        link.quantum = self.quantum
        link.start_stop_sync_enabled = self.start_stop
        link.enabled = True
        self._ready.set()
        while self._running:
            before = time.monotonic_ns()
            beat = link.beat
            after = time.monotonic_ns()
            self.snapshot = ((before + after) // 2, beat, link.tempo, link.playing, link.num_peers)
            await asyncio.sleep(POLL_S)
        link.enabled = False

    def beat_at(self, ns: int) -> float | None:
        """The shared beat at a monotonic moment, from the latest snapshot."""
        snap = self.snapshot
        return None if snap is None else snap[1] + (ns - snap[0]) * snap[2] / 60e9

    def set_tempo(self, tempo_bpm: float) -> None:
        """Propose a tempo to the session (every peer follows)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(setattr, self._link, "tempo", float(tempo_bpm))

    def set_playing(self, playing: bool) -> None:
        """Start or stop the session's transport (peers with start/stop sync follow)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(setattr, self._link, "playing", bool(playing))

    def follow(self, tempo_clock, now_ns: int, tolerance_beats: float = 0.002) -> bool:
        """On the engine thread: re-anchor a TempoClock to the shared grid if it drifted or the tempo moved."""
        snap = self.snapshot
        if snap is None:
            return False
        beat = snap[1] + (now_ns - snap[0]) * snap[2] / 60e9
        if abs(tempo_clock.tempo_bpm - snap[2]) > 1e-6 or abs(tempo_clock.beat_at(now_ns) - beat) > tolerance_beats:
            tempo_clock.set_anchor(now_ns, beat, snap[2])
            return True
        return False

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2.0)


def follow_link(live, link: LinkSync) -> None:
    """Wrap the engine's tick so a game mode's TempoClock follows the Link session (engine thread only)."""
    tempo = getattr(live.mode, "tempo", None)
    if tempo is None or not hasattr(tempo, "set_anchor"):
        raise RealtimeError("[link] needs a mode with a tempo grid (engine.mode = \"game\")")
    tick, mode = live.engine.tick, live.mode
    seen = {"playing": None, "tempo": tempo.tempo_bpm}

    def linked_tick() -> None:
        now = live.engine.clock.now_ns()
        snap = link.snapshot
        if snap is not None:
            if tempo.tempo_bpm != seen["tempo"] and abs(snap[2] - seen["tempo"]) < 1e-6:
                link.set_tempo(tempo.tempo_bpm)  # the game moved the tempo (/transport/tempo): tell the peers
                tick()  # and keep its tempo until the session has taken it
                return
            if link.start_stop and snap[3] != seen["playing"] and seen["playing"] is not None:
                (mode._start_transport if snap[3] else mode._stop_transport)(now)  # a peer started or stopped
            seen["playing"] = snap[3]
            if link.follow(tempo, now):
                seen["tempo"] = tempo.tempo_bpm
        tick()

    live.engine.tick = linked_tick


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="a bare Link peer printing its snapshots as JSON lines")
    parser.add_argument("--tempo", type=float, default=120.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--set-tempo-after", type=float, default=None, help="propose --new-tempo after this long")
    parser.add_argument("--new-tempo", type=float, default=None)
    parser.add_argument("--play-after", type=float, default=None, help="start playing (start/stop sync) after this long")
    args = parser.parse_args(argv)
    link = LinkSync(args.tempo)
    started = time.monotonic()
    changed = False
    while time.monotonic() - started < args.seconds:
        time.sleep(0.05)
        if args.set_tempo_after is not None and not changed and time.monotonic() - started >= args.set_tempo_after:
            link.set_tempo(args.new_tempo)
            changed = True
            print(json.dumps({"proposed_ns": time.monotonic_ns(), "tempo": args.new_tempo}), flush=True)
        if args.play_after is not None and time.monotonic() - started >= args.play_after:
            link.set_playing(True)
            args.play_after = None
            print(json.dumps({"played_ns": time.monotonic_ns()}), flush=True)
        snap = link.snapshot
        if snap is not None:
            print(json.dumps({"ns": snap[0], "beat": snap[1], "tempo": snap[2], "peers": snap[4]}), flush=True)
    link.close()


if __name__ == "__main__":
    main()
