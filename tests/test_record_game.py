"""Recording a live game session (OSC over UDP in, JACK MIDI out to a foreign synth) and replaying it
offline: the same notes on every voice, note for note, and a session folder that is not one refused."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import mido
import pytest
from conftest import private_jack, require_tools
from jackclients import ROOT, Keyboard, Receiver, Running

from realtime.gameclient import run_client
from realtime.record import RecordError
from realtime.replay import replay_session

GAME_PATCH = ROOT / "patches" / "game.toml"
VOICE_TRACKS = {"engine ch1 pads", "engine ch2 bass", "engine ch3 melody", "engine ch10 stingers"}


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def read_midi(path: Path) -> tuple[dict[str, list[tuple[float, int]]], list[str], list[float]]:
    """As mido plays the file (its own tempo-map walk): per track name the (seconds, pitch) of each
    note-on; the markers; the tempos in BPM."""
    mid = mido.MidiFile(path)
    names = {}
    for track in mid.tracks[1:]:
        channels = {m.channel for m in track if m.type == "note_on"}
        names.update({channel: track.name for channel in channels})
    ons: dict[str, list[tuple[float, int]]] = {name: [] for name in names.values()}
    markers, now = [], 0.0
    for message in mid:  # merged, with delta times in seconds through every set_tempo
        now += message.time
        if message.type == "note_on" and message.velocity > 0:
            ons[names[message.channel]].append((now, message.note))
        elif message.type == "marker":
            markers.append(message.text)
    tempos = [round(mido.tempo2bpm(m.tempo), 1) for m in mid.tracks[0] if m.type == "set_tempo"]
    return ons, markers, tempos


def log_lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "session.events").read_text().splitlines()]


def onsets_match(folder: Path, live: dict, again: dict) -> tuple[int, float]:
    """Per track, the same pitches in order, and onsets as the output sent them: on time, within a
    millisecond of the replay; a late send (the output thread held up, counted as a miss) later by
    exactly its logged lateness. Returns (notes sent on time, their largest onset difference in s)."""
    lines = log_lines(folder)
    origin_ns = lines[0]["origin_ns"]
    sends: dict[tuple[int, int], list[tuple[float, float]]] = {}  # (channel, pitch): (deadline s, lateness s)
    for s in (e.get("sent") for e in lines):
        if s and s[3]:
            sends.setdefault((s[4], s[2]), []).append(((s[0] - origin_ns) / 1e9, (s[1] - s[0]) / 1e9))
    on_time, worst = 0, 0.0
    for name in live:
        assert [p for _, p in again[name]] == [p for _, p in live[name]], f"{name}: the same pitches in order"
        channel = int(name.split()[1][2:]) - 1
        for (replayed, pitch), (sent, _) in zip(again[name], live[name]):
            deadline, late = min(sends[channel, pitch], key=lambda d: abs(d[0] - replayed))
            assert abs(deadline - replayed) < 0.0001, "the replay's onset is the live deadline"
            assert abs(sent - late - replayed) < 0.0005, "the difference is the live send's lateness"
            if late < 0.0005:
                on_time += 1
                worst = max(worst, abs(sent - replayed))
    assert worst < 0.001, "onsets within a millisecond"
    return on_time, worst


@pytest.fixture(scope="module")
def recorded_game(tmp_path_factory):
    """`realtime run patches/game.toml --record` on JACK, played by the project's game client and oscsend: one
    live session for the module (JACK runs only while it records); (folder, the synth that heard it)."""
    require_tools("oscsend", package="liblo-tools")
    with private_jack():
        return _record_game(tmp_path_factory.mktemp("record-game"))


@pytest.fixture
def game_session(recorded_game, tmp_path: Path):
    """A copy of the module's live game session, for one test to read or change, and its synth."""
    folder, synth = recorded_game
    return Path(shutil.copytree(folder, tmp_path / "show")), synth


def _record_game(tmp_path: Path):
    patch = tmp_path / "game.toml"
    patch.write_text(GAME_PATCH.read_text().replace("[midi]\n", '[midi]\nbackend = "jack"\noutput = "synth"\n', 1))
    synth = Receiver("synth")
    port, folder = free_udp_port(), tmp_path / "show"
    try:
        with Running(patch, "--record", str(folder), "--osc-port", str(port)) as run:
            time.sleep(1.0)  # calm, as the patch starts it: pads and melody in D major at 84 BPM
            run_client("127.0.0.1", port, seconds_per_scene=0.8, rate_hz=20, start=False, printer=lambda line: None)
            for address, types, value in (("/game/state", "s", "tense"), ("/game/event", "s", "hit"),
                                          ("/game/param", "sf", "intensity 0.9")):
                subprocess.run(["oscsend", "127.0.0.1", str(port), address, types, *value.split()], check=True,
                               timeout=5)
            time.sleep(1.2)  # tense, from the next bar line
    finally:
        synth.close()
    assert run.returncode == 0, run.err
    assert "recorded " in run.out and " game messages and " in run.out, run.out
    return folder, synth


def test_a_live_game_session_replays_note_for_note(game_session, tmp_path: Path) -> None:
    folder, synth = game_session
    live, live_markers, live_tempos = read_midi(folder / "session.mid")
    result = replay_session(folder, tmp_path / "again.mid")
    again, markers, tempos = read_midi(tmp_path / "again.mid")

    assert set(again) == set(live) == VOICE_TRACKS, "one named track per voice, and the stingers"
    assert markers == live_markers and "state tense" in markers and "event hit" in markers
    assert {84.0, 96.0} <= set(tempos) and len(set(tempos)) >= 3, "the sections' tempos are in the map"
    assert tempos == live_tempos
    assert result["same_pitches"] and result["max_onset_diff_planned_ms"] == 0.0, "exactly the live schedule"
    # entered and played on (a beat or so of the tense section; a loaded machine has left 3 notes, not 4)
    assert len(again["engine ch2 bass"]) >= 2, "the bass entered when the game raised intensity"

    on_time, worst = onsets_match(folder, live, again)
    assert on_time >= 0.8 * result["replayed_notes"]

    # The foreign synth heard those notes at those moments (its stamps are JACK's frame times, through
    # its DLL, whose offset from the wall clock has been seen 1 ms off and a stamp 13 ms off on a loaded
    # machine: each note is matched within 30 ms, the median within 2 ms; tests/test_jack_timing.py
    # measures timing at the receiver properly); it may miss a cycle now and then (its callback waits
    # for this process's interpreter lock), but it hears nothing that is not in session.mid. The last
    # 50 ms before the stop are left out: the stop's panic takes back what the port has not written yet.
    lines = log_lines(folder)
    origin_s = lines[0]["origin_ns"] / 1e9
    until_s = next(e["stop"] for e in lines if "stop" in e) / 1e9 - origin_s - 0.05
    recorded = [(int(name.split()[1][2:]) - 1, p, t) for name, notes in live.items() for t, p in notes]
    gaps = []
    for t, channel, pitch in ((t - origin_s, m[0] & 0x0F, m[1]) for t, m in synth.messages
                              if m[0] & 0xF0 == 0x90 and m[2] > 0):
        match = min((n for n in recorded if n[:2] == (channel, pitch)), key=lambda n: abs(n[2] - t), default=None)
        if t < until_s:
            assert match is not None and abs(match[2] - t) < 0.03, f"the synth heard {pitch} on {channel + 1} at {t:.3f} s"
        if match is not None and abs(match[2] - t) < 0.03:
            recorded.remove(match)
            gaps.append(abs(match[2] - t))
    recorded = [n for n in recorded if n[2] < until_s - 0.03]  # what the synth did not hear
    gaps.sort()
    print(f"compared {result['replayed_notes']} notes ({on_time} sent on time): replay within {worst * 1e3:.3f} ms "
          f"of session.mid; the synth heard {len(gaps)}, missed {len(recorded)}, within "
          f"{gaps[len(gaps) // 2] * 1e3:.3f} ms (median), {gaps[-1] * 1e3:.3f} ms (worst)")
    missed_cycles = {round(n[2], 3) for n in recorded}  # a missed cycle loses every note of its moment
    assert len(missed_cycles) <= 2 and len(recorded) <= 8, f"the synth missed {recorded}"
    assert gaps[len(gaps) // 2] < 0.002


def test_the_replay_follows_the_logged_game_messages(game_session, tmp_path: Path) -> None:
    """The log holds the game's messages, not the music: without its state changes the replay plays otherwise."""
    folder, _ = game_session
    lines = log_lines(folder)
    for entry in lines:
        if "in" in entry:
            entry["in"] = [item for item in entry["in"] if not (item[0] == "game" and item[1] == "state")]
    other = tmp_path / "other"
    other.mkdir()
    (other / "session.events").write_text("".join(json.dumps(entry) + "\n" for entry in lines))
    result = replay_session(other, tmp_path / "other.mid")
    assert not result["same_pitches"]
    _, markers, tempos = read_midi(tmp_path / "other.mid")
    assert not any(m.startswith("state") for m in markers) and set(tempos) == {96.0, 84.0}, "calm all along"


def keyboard_port() -> str:
    from realtime.io import midi

    return midi.resolve_port(midi.list_ports("jack")["outputs"], "realtime-in", "output", "jack")


def test_a_game_following_a_midi_clock_replays_note_for_note(jack, tmp_path: Path) -> None:
    """A drum machine as master (Start, 24 pulses a beat at 100 BPM) and a game over OSC, both recorded."""
    from pythonosc.udp_client import SimpleUDPClient

    text = GAME_PATCH.read_text().replace("[midi]\n", '[midi]\nbackend = "jack"\noutput = "synth"\n', 1)
    text = text.replace("autostart = true", "autostart = false").replace("midi_clock_out = true", "midi_clock_out = false")
    patch = tmp_path / "clocked.toml"
    patch.write_text(text.replace("midi_clock_in = false", "midi_clock_in = true"))
    synth = Receiver("synth")
    port, folder = free_udp_port(), tmp_path / "clocked"
    drums = Keyboard("drums")
    try:
        with Running(patch, "--record", str(folder), "--osc-port", str(port)) as run:
            drums.play_into(keyboard_port())
            time.sleep(0.05)  # a connection joins JACK's graph from a later cycle
            game = SimpleUDPClient("127.0.0.1", port)
            drums.send([0xFA])
            next_pulse = time.monotonic()
            for pulse in range(24 * 8):
                next_pulse += 60.0 / 100 / 24
                while time.monotonic() < next_pulse:
                    time.sleep(0.0005)
                drums.send([0xF8])
                if pulse == 24 * 3:
                    game.send_message("/game/param", ["intensity", 0.8])
                    game.send_message("/game/state", ["combat"])
            drums.send([0xFC])
            time.sleep(0.3)
    finally:
        drums.close()
        synth.close()
    assert run.returncode == 0, run.err
    lines = log_lines(folder)
    raw = [item for entry in lines for item in entry.get("in", ()) if item[0] == "raw"]
    # JACK and rtmidi may lose a pulse now and then on a loaded machine; the engine dropped none
    assert len(raw) >= 24 * 6 and raw[0][1] == "fa", "the clock's bytes, as the engine thread took them"
    assert lines[-1]["inbox_drops"] == 0
    live, _, _ = read_midi(folder / "session.mid")
    result = replay_session(folder, tmp_path / "again.mid")
    again, markers, tempos = read_midi(tmp_path / "again.mid")
    assert result["same_pitches"] and result["replayed_notes"] >= 20 and result["max_onset_diff_planned_ms"] == 0.0
    assert "state combat" in markers
    # the tempo map follows the master's pulses (sent from a sleeping loop: one late now and then)
    assert len(tempos) > 24 and abs(sorted(tempos)[len(tempos) // 2] - 100.0) < 2.0, "the master's tempo"
    assert set(again) == set(live) and "engine ch1 pads" in again
    on_time, _ = onsets_match(folder, live, again)
    assert on_time >= 0.8 * result["replayed_notes"]


HEADER = {"session": 1, "mode": "game", "patch": "game.toml", "patch_text": "", "model": "game-lstm.int8",
          "model_sha256": "0" * 64, "origin_ns": 0, "tempo_bpm": 96.0}


def write_session(folder: Path, *lines: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "session.events").write_text("".join(line + "\n" for line in lines))
    return folder / "session.events"


@pytest.fixture(scope="module")
def game_header() -> dict:
    """A real header for patches/game.toml (its text, the shipped game model's hash), as a recording writes it."""
    from realtime.model.generator import ModelRunner
    from realtime.patch import load_patch
    from realtime.record import session_identity

    patch = load_patch(GAME_PATCH)
    return {"session": 1, "mode": "game", "origin_ns": 10**9,
            **session_identity(patch, ModelRunner(patch.model.name, batch=3), str(GAME_PATCH))}


@pytest.mark.parametrize("lines, problem", [
    (['{"session": 1, "mode": "game"', '{"t": [1]}'], r"session.events: line 1 is not JSON .*cut off"),
    (['{"type": "note_on", "note": 60}'], r"session.events: not a session log of format 1"),
    (['{"session": 1, "patch": "game.toml"}'], r"session.events: line 1: the header lacks patch_text, model,"),
    ([json.dumps(HEADER), "[1, 2]"], r"session.events: line 2 is not a session entry"),
    ([json.dumps(HEADER), '{"t": [1, "soon"]}'], r"session.events: line 2 is a tick whose readings"),
    ([json.dumps(HEADER), '{"sent": [1, 2, 60]}'], r"session.events: line 2 is a send that is not \[deadline_ns"),
    ([json.dumps(HEADER), '{"cut": 1.5}'], r"session.events: line 2 has a 'cut' that is not a time in ns"),
    ([json.dumps(HEADER | {"origin_ns": "now"})], r"session.events: line 1: the header's origin_ns"),
])
def test_a_broken_or_foreign_log_is_refused_in_one_line(tmp_path: Path, lines: list[str], problem: str) -> None:
    write_session(tmp_path / "s", *lines)
    with pytest.raises(RecordError, match=problem) as caught:
        replay_session(tmp_path / "s", tmp_path / "x.mid")
    assert "\n" not in str(caught.value) and str(tmp_path / "s" / "session.events") in str(caught.value)


@pytest.mark.parametrize("item, problem", [
    (["game", "state", "boss-fight", 0.0, 10**9], "the game state 'boss-fight' is not in the logged patch"),
    (["game", "explode", "", 0.0, 10**9], "a game message of kind 'explode'"),
    (["raw", "zz", 10**9], "is malformed"),
    (["game", "param"], "is malformed"),
    (["gesture", 1, 10**9], "an input of kind 'gesture' cannot be replayed in game mode"),
])
def test_an_input_the_patch_cannot_take_is_refused_naming_the_line(tmp_path: Path, game_header: dict, item: list,
                                                                   problem: str) -> None:
    path = write_session(tmp_path / "s", json.dumps(game_header), '{"start": 1000000000}',
                         json.dumps({"t": [10**9, 10**9, 10**9]}), json.dumps({"t": [2 * 10**9] * 3, "in": [item]}))
    with pytest.raises(RecordError) as caught:
        replay_session(tmp_path / "s", tmp_path / "x.mid")
    message = str(caught.value)
    assert message.startswith(f"{path}: line 4: ") and problem in message and "\n" not in message


def test_a_log_whose_patch_does_not_load_is_refused_naming_the_log(tmp_path: Path, game_header: dict) -> None:
    header = game_header | {"patch_text": game_header["patch_text"].replace("[game.states.calm]", "[game.states.calm")}
    path = write_session(tmp_path / "s", json.dumps(header))
    with pytest.raises(RecordError, match=f"^{path}: the logged patch does not load"):
        replay_session(tmp_path / "s", tmp_path / "x.mid")


def test_a_tick_the_engine_takes_otherwise_is_a_divergence_naming_the_line(tmp_path: Path, game_header: dict) -> None:
    path = write_session(tmp_path / "s", json.dumps(game_header), json.dumps({"t": [10**9, 10**9]}))
    with pytest.raises(RecordError, match=f"^{path}: line 2: the engine read its clock more often than it did live"):
        replay_session(tmp_path / "s", tmp_path / "x.mid")
