"""mode = "accompany" as a user runs it: `realtime run patches/accompany.toml --midi-backend jack` in its own process,
a foreign JACK client striking left-hand chords, one a bar, at 84 BPM (the patch says 100), and hearing the engine
by frame (realtime/bench/accompaniment.py). From the second bar on: a note on every beat of the player's grid, the
bass on that grid, >= 85% of the notes tones of the chord sounding as they begin, the lowest note of >= 75% of the
bars the chord's root; nothing on the player's channel; every note-on followed by its note-off, also when the
engine is stopped with notes sounding. Judged by the notes heard, with margins: this VM is shared and loaded."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from realtime.bench.accompaniment import PROGRESSION, judge, play, strikes
from realtime.bench.harmony import patch_text

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = (ROOT / "patches" / "accompany.toml").read_text()
RAW = tomllib.loads(SHIPPED)
BASS, CHORDS = RAW["accompany"]["bass_channel"] - 1, RAW["accompany"]["chord_channel"] - 1
BPM = 84.0


def test_the_band_follows_left_hand_chords_at_the_players_tempo_on_their_own_channels(jack256) -> None:
    assert RAW["engine"]["tempo_bpm"] == 100 and RAW["listen"]["zone"] == "left"
    played = strikes(PROGRESSION, BPM)
    run = play(patch_text(SHIPPED), played)
    assert run["returncode"] == 0, run["output"][-400:]
    result = judge(run["heard"], played, BPM, bass_channel=BASS)
    summary = {k: v for k, v in result.items() if k != "notes_per_beat"}
    assert result["channels"] == [BASS, CHORDS], summary  # never channel 1 (0): the player's chords are not echoed
    assert result["beats_without_a_note"] == 0 and len(result["notes_per_beat"]) == 4 * (len(played) - 1), summary
    assert result["chord_tone_share"] >= 0.85, summary
    assert result["root_in_bass_share"] >= 0.75, summary
    assert result["bass_on_the_beat_share"] >= 0.8, summary  # at 84 BPM, not the patch's 100
    assert result["held_at_end"] == [], "every note-on got its note-off"
    bpm, source = re.findall(r"\| ([\d.]+) BPM from (\w+) \|", run["output"])[-1]
    assert abs(float(bpm) - BPM) < 1 and source == "chords", run["output"][-300:]


def test_stopping_with_notes_sounding_ends_every_note(jack256) -> None:
    played = strikes(PROGRESSION[:3], BPM, held_at_stop=True)
    run = play(patch_text(SHIPPED), played, tail_s=1.0)  # stopped a second into the held F
    assert run["returncode"] == 0, run["output"][-400:]
    result = judge(run["heard"], played, BPM, bass_channel=BASS)
    last = played[-1].at_s
    assert [n for n in run["heard"] if n[0] > last and n[1][0] & 0xF0 == 0x90 and n[1][2]], "F was accompanied"
    assert result["held_at_end"] == [], "every note got its note-off on stop"
    assert "all notes off" in run["output"]
