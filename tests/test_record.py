"""Recording a live session over JACK and replaying it offline: the same engine notes, note for note."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mido
import pytest
from conftest import private_jack
from jackclients import ROOT, RUN_PATCH, Keyboard, Running, wait_for

from realtime.io import midi
from realtime.patch import ModelSection
from realtime.record import RecordError
from realtime.replay import replay_session


def note_ons(path: Path) -> dict[str, list[tuple[float, int]]]:
    """Per track name: (onset seconds, pitch) of every note-on, from a MIDI file as any reader sees it."""
    mid = mido.MidiFile(path)
    tempo = next(m.tempo for m in mid.tracks[0] if m.type == "set_tempo")
    tracks = {}
    for track in mid.tracks[1:]:
        name, ticks, ons = track[0].name, 0, []
        for message in track:
            ticks += message.time
            if message.type == "note_on" and message.velocity > 0:
                ons.append((mido.tick2second(ticks, mid.ticks_per_beat, tempo), message.note))
        tracks[name] = ons
    return tracks


def engine_notes(path: Path) -> list[tuple[float, int]]:
    return sorted(n for name, ons in note_ons(path).items() if name.startswith("engine") for n in ons)


def live_sends(folder: Path) -> list[list[int]]:
    lines = (folder / "session.events").read_text().splitlines()
    return [entry["sent"] for entry in map(json.loads, lines) if "sent" in entry]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """`realtime run --record` on JACK, a keyboard client playing two phrases, the second cutting in: one live
    session for the module (JACK runs only while it records; the checks replay it offline)."""
    tmp_path = tmp_path_factory.mktemp("record")
    folder = tmp_path / "show"
    tmp_path.joinpath("jack.toml").write_text(RUN_PATCH.format(output=""))
    with private_jack():
        return _record(tmp_path, folder)


@pytest.fixture
def session(recorded: Path, tmp_path: Path) -> Path:
    """A copy of the module's live session, for one test to read or change."""
    return Path(shutil.copytree(recorded, tmp_path / "show"))


def _record(tmp_path: Path, folder: Path) -> Path:
    keys = Keyboard()
    try:
        with Running(tmp_path / "jack.toml", "--record", str(folder)) as run:
            keys.play_into(midi.resolve_port(midi.list_ports("jack")["outputs"], "realtime-in", "output", "jack"))
            keys.phrase(gap_s=0.1)
            time.sleep(0.9)  # the answer starts 300 ms after the phrase and plays on
            keys.phrase((60, 64, 67, 72), gap_s=0.12)  # cuts into the answer: it yields and is taken back
            time.sleep(1.5)
    finally:
        keys.close()
    assert run.returncode == 0, run.err
    assert "recorded " in run.out and " player notes and " in run.out, run.out
    return folder


def test_a_live_session_replays_note_for_note(session: Path, tmp_path: Path) -> None:
    live = note_ons(session / "session.mid")
    lines = [json.loads(line) for line in (session / "session.events").read_text().splitlines()]
    taken = [item[1] for entry in lines for item in entry.get("in", ()) if item[0] == "note" and item[2] > 0]
    assert [p for _, p in live["player"]] == taken, "track 1: the player's notes as the engine took them"
    sent = [67, 71, 74, 72, 71, 69, 67, 60, 64, 67, 72]
    assert len(taken) >= len(sent) - 1 and set(taken) <= set(sent), "the keyboard's two phrases (JACK may lose one)"
    played = engine_notes(session / "session.mid")
    assert len(played) >= 8, "the engine answered both phrases"

    result = replay_session(session, tmp_path / "again.mid")
    again = engine_notes(tmp_path / "again.mid")
    assert [p for _, p in again] == [p for _, p in played], "the same pitches in the same order"
    assert result["same_pitches"] and result["max_onset_diff_planned_ms"] == 0.0, "exactly the live schedule"
    # Live, the output thread sends each note at its deadline, give or take its own lateness (counted
    # as misses; a GIL hand-over can cost a few ms): onsets match within a millisecond wherever the
    # live send was on time, and the late ones differ by exactly their logged lateness.
    lateness_s = [(sent - deadline) / 1e9 for deadline, sent, _, velocity, _ in live_sends(session) if velocity]
    for (replayed, _), (heard, _), late in zip(again, played, lateness_s):
        if late < 0.0005:
            assert abs(replayed - heard) < 0.001, "onsets within a millisecond"
        assert abs(heard - late - replayed) < 0.0005, "the difference is the live send's lateness"
    assert sum(late < 0.0005 for late in lateness_s) >= len(lateness_s) * 0.8


def test_the_replay_recomputes_the_notes_rather_than_copying_them(session: Path, tmp_path: Path) -> None:
    """The log holds inputs and times, not the answer: another seed in the logged patch answers otherwise."""
    lines = (session / "session.events").read_text().splitlines()
    header = json.loads(lines[0])
    header["patch_text"] = header["patch_text"].replace("[engine]", "[engine]\nseed = 12345")
    other = tmp_path / "other"
    other.mkdir()
    (other / "session.events").write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    try:
        result = replay_session(other, tmp_path / "other.mid")
        assert not result["same_pitches"]
    except RecordError as err:  # other notes may also lead the engine to read its clock otherwise
        assert "fewer times" in str(err) or "more often" in str(err)


def test_replay_from_the_command_line(session: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "realtime.cli", "replay", str(session), "--out",
                           str(tmp_path / "cli.mid")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "the same notes as live" in done.stdout
    assert wait_for(lambda: (tmp_path / "cli.mid").exists(), 1.0)


def test_a_session_from_another_model_file_is_refused_in_one_line(session: Path, tmp_path: Path) -> None:
    lines = (session / "session.events").read_text().splitlines()
    header = json.loads(lines[0]) | {"model_sha256": "0" * 64}
    (session / "session.events").write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    model = ModelSection().name  # the session was recorded with the default model
    with pytest.raises(RecordError, match=f"recorded with another {re.escape(model)} model file"):
        replay_session(session, tmp_path / "x.mid")


def test_a_folder_without_a_log_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="session.events: cannot read"):
        replay_session(tmp_path, tmp_path / "x.mid")
