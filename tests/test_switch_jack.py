"""Switching modes live as a user does: `realtime run` on JACK MIDI with `[engine] modes`, a JACK client playing
and hearing by frame, a MIDI program change from that client and liblo's `oscsend` (`/mode NAME`) asking.
At each switch every note of the old mode ends with its note-off, even a harmony voice whose player note is
still held, and the new mode plays: the duet answers a phrase, the harmonizer voices the next note."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jackclients import wait_for
from test_run_osc import _free_port

from realtime.bench.receiver import PlayerListener, _stop, _wait_for_ports
from realtime.childproc import engine_child

ROOT = Path(__file__).resolve().parents[1]
HARMONY, DUET = 1, 0  # 0-based channels: [harmonize] channel 2, [continuation] channel 1
BEAT_S = 0.3  # 200 BPM: a bar of four beats is 1.2 s


def _held(heard, channel: int) -> set[int]:
    """Pitches the engine holds on `channel` at the receiver, by note-ons and note-offs alone."""
    held: set[int] = set()
    for _, data in heard:
        if len(data) == 3 and data[0] & 0x0F == channel:
            if data[0] & 0xF0 == 0x90 and data[2]:
                held.add(data[1])
            elif data[0] & 0xF0 in (0x80, 0x90):
                held.discard(data[1])
    return held


def _notes_on(heard, channel: int, after: int) -> list[int]:
    return [data[1] for frame, data in heard
            if frame >= after and len(data) == 3 and data[0] == 0x90 | channel and data[2]]


def _phrase(start_s: float, pitches) -> list[tuple[float, bytes]]:
    events = []
    for i, pitch in enumerate(pitches):
        at = start_s + i * BEAT_S
        events += [(at, bytes((0x90, pitch, 90))), (at + BEAT_S * 0.8, bytes((0x80, pitch, 0)))]
    return events


def test_program_change_and_osc_switch_modes_on_the_bar_and_end_every_note(jack256) -> None:
    port = _free_port()
    text = (ROOT / "patches" / "harmonize.toml").read_text()
    text = text.replace('mode = "harmonize"\n', 'mode = "harmonize"\nmodes = ["harmonize", "continuation"]\n', 1)
    text = text.replace("[midi]\n", '[midi]\nbackend = "jack"\n', 1).replace("port = 9000", f"port = {port}", 1)
    with tempfile.TemporaryDirectory() as tmp:
        patch = Path(tmp) / "stage.toml"
        patch.write_text(text)
        engine = subprocess.Popen([sys.executable, "-m", "realtime.cli", "run", str(patch)], env=dict(os.environ),
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  preexec_fn=engine_child)
        player = PlayerListener("stage-player")
        try:
            _wait_for_ports(player, engine)
            time.sleep(0.5)
            # harmonize: a phrase in D at 200 BPM (the listener locks on it), then D5 held
            player.play(_phrase(0.0, (62, 66, 69, 74, 69, 66, 64, 62)) + [(8 * BEAT_S, bytes((0x90, 74, 90)))])
            time.sleep(8 * BEAT_S + 0.3)  # the phrase, then D5 struck
            assert wait_for(lambda: len(_held(player.heard, HARMONY)) == 2, 3.0), \
                f"the held D5 should sound its two harmony voices: {_held(player.heard, HARMONY)}"
            assert len(_notes_on(player.heard, HARMONY, 0)) >= 9, "every note of the phrase gets harmony"
            asked = player.client.frame_time
            player.play([(0.0, bytes((0xC0, 1)))])  # program change 1: the second of [engine] modes
            assert wait_for(lambda: not _held(player.heard, HARMONY), 3.0), \
                f"harmony voices still held after the switch: {_held(player.heard, HARMONY)}"
            ended = next(frame for frame, data in reversed(player.heard) if data[0] & 0x0F == HARMONY)
            assert (ended - asked) / player.rate <= 4 * BEAT_S + 0.3, "the switch waits at most for the next bar"

            # the duet: the held note ends, a phrase, and its answer on the duet's channel
            player.play([(0.0, bytes((0x80, 74, 0)))] + _phrase(0.2, (62, 64, 66, 67, 69, 71, 73, 74)))
            phrase_end = player.client.frame_time + int((0.2 + 8 * BEAT_S) * player.rate)
            assert wait_for(lambda: len(_notes_on(player.heard, DUET, phrase_end)) >= 3, 10.0), \
                "the duet never answered after the switch"
            assert not _notes_on(player.heard, HARMONY, asked + int(0.5 * player.rate)), "the harmonizer played on"

            # /mode harmonize from liblo's oscsend while the duet answers: the answer ends at the bar
            subprocess.run(["oscsend", "127.0.0.1", str(port), "/mode", "s", "harmonize"], check=True)
            assert wait_for(lambda: not _held(player.heard, DUET), 3.0), "the duet's answer still sounding"
            time.sleep(4 * BEAT_S + 0.3)
            back = player.client.frame_time
            player.play([(0.0, bytes((0x90, 69, 90))), (0.4, bytes((0x80, 69, 0)))])
            assert wait_for(lambda: len(_notes_on(player.heard, HARMONY, back)) >= 2, 3.0), "no harmony after /mode"
            time.sleep(0.5)
        finally:
            out = _stop(engine) if engine.poll() is None else engine.communicate()[0]
            time.sleep(4 * player.client.blocksize / player.rate + 0.02)
            player.close()
        heard = list(player.heard)
    assert engine.returncode == 0, out[-400:]
    assert _held(heard, HARMONY) == set() and _held(heard, DUET) == set(), "a note left sounding at the end"
    assert "mode harmonize" in out, out[-300:]
