"""mode = "harmonize" as a user runs it: `realtime run patches/harmonize.toml` on JACK MIDI, a foreign JACK
client playing a D major line into it at exact frames and hearing the harmony by frame
(realtime/bench/harmony.py; a run in which that client's own callback missed a period is played again).
Every note gets its voices within the patch's budget (at the median and for most notes: this VM stalls now
and then; benchmarks/harmonize.py reports p99), all in key, each ended within a period or two of its note;
and a stop with notes held ends every voice with its note-off."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
from jackclients import HARNESS_MISSED

from realtime.bench.harmony import MELODY, MELODY_KEY, judge, patch_text, play

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = (ROOT / "patches" / "harmonize.toml").read_text()
RAW = tomllib.loads(SHIPPED)
CHANNEL = RAW["harmonize"]["channel"] - 1
BUDGET_MS = RAW["engine"]["budget_ms"]
ATTEMPTS = 4


def play_clean(text: str, **kwargs) -> dict:
    """harmony.play, again when the player's own callback missed a period (it proves it did: its frame count
    jumped), up to ATTEMPTS runs. A period it missed loses what it would have heard and sends its notes late:
    beside two CPU burners in CI one harmony note went unheard that way. A run with no missed period is
    judged in full; after ATTEMPTS that all missed one, the last is judged as it is."""
    for _ in range(ATTEMPTS):
        run = play(text, **kwargs)
        if not run["missed"]:
            break
        print(f"the player missed a period at frames {run['missed'][:4]}: played again")
    HARNESS_MISSED.extend(f"PlayerListener: a period at frame {frame}" for frame in run["missed"])
    return run


def test_every_note_gets_its_harmony_within_the_budget_in_key_and_ends_with_it(jack256) -> None:
    assert "key" not in RAW["model"]  # the key is the one the engine hears (D major), not the patch's
    run = play_clean(patch_text(SHIPPED))
    assert run["returncode"] == 0, run["output"][-400:]
    result = judge(run, CHANNEL, MELODY_KEY)
    voices = RAW["harmonize"]["voices"]
    assert result["voices_per_note"] == [voices] * len(MELODY), \
        (result["voices_per_note"], f"periods the player missed in its last of {ATTEMPTS} runs: {run['missed']}")
    assert result["out_of_key"] == 0
    delays = np.asarray(result["raw_delay_ms"])
    assert delays.min() >= 0, "no harmony before its note"
    assert np.median(delays) <= BUDGET_MS and np.mean(delays <= BUDGET_MS) >= 0.8, \
        f"player's note -> harmony at the receiver: p50 {np.median(delays):.2f} ms, " \
        f"within {BUDGET_MS} ms: {np.mean(delays <= BUDGET_MS):.0%}, worst {delays.max():.2f} ms"
    ends = np.asarray(result["raw_end_ms"])  # each voice's note-off after its player note's note-off
    two_periods = 2 * result["period_ms"]
    assert len(ends) == voices * len(MELODY) and np.isfinite(ends).all() and ends.min() >= 0
    assert np.median(ends) <= two_periods and np.mean(ends <= two_periods) >= 0.8, result["end_after_player_ms"]
    assert result["held_at_end"] == []


def test_stopping_with_notes_held_ends_every_voice(jack256) -> None:
    run = play_clean(patch_text(SHIPPED), melody=MELODY[:4], hold_at_stop=3)
    assert run["returncode"] == 0, run["output"][-400:]
    result = judge(run, CHANNEL, MELODY_KEY)
    # the held notes sounded voices (one they share with a note still held sounds once)
    assert all(count >= 1 for count in result["voices_per_note"][-3:]), result["voices_per_note"]
    assert result["held_at_end"] == [], "every voice got its note-off on stop"
    assert "all notes off" in run["output"]
