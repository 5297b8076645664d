"""The listener: chords, key, tempo and beat phase from the player's notes; the duet at the player's tempo;
/listen/* over real UDP; [listen] patch errors. Fake clocks throughout, except the OSC test."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
from pythonosc.osc_message import OscMessage

from realtime.bench.performance import TempoMap, feed, perform
from realtime.clock import FakeClock
from realtime.engine.continuation import Continuation
from realtime.engine.engine import Engine
from realtime.errors import PatchError
from realtime.events import NoteMessage
from realtime.io.ports import MemoryInput, MemoryOutput
from realtime.listen import Listener
from realtime.listen.osc import LISTEN_MESSAGES, ListenSender
from realtime.model.generator import Generator
from realtime.model.runner import ModelRunner
from realtime.model.sampling import Sampler
from realtime.model.tokens import IOI_BEATS
from realtime.patch import parse_patch
from realtime.scheduler import Scheduler
from realtime.settings import ContinuationSettings, ListenSettings

MS = 1_000_000


def chord_of(pitches, settings=None, then=()):
    """Hold `pitches` (then `then` on top) and return what the listener calls the chord."""
    listener, t = Listener(settings), 1_000 * MS
    for pitch in pitches:
        listener.hear(NoteMessage(pitch, 80), t)
    for pitch in then:
        listener.hear(NoteMessage(pitch, 80), t + 5 * MS)
    listener.refresh(t + 10 * MS)
    return listener.snapshot().chord


@pytest.mark.parametrize("pitches, root, quality", [
    ((60, 64, 67), 0, "maj"),  # root position
    ((64, 67, 72), 0, "maj"),  # first inversion
    ((55, 60, 64), 0, "maj"),  # second inversion
    ((57, 60, 64), 9, "min"),
    ((48, 64, 70), 0, "7"),  # C7 without its fifth
    ((43, 59, 65), 7, "7"),  # G7 without its fifth, root in the bass
    ((47, 53, 55, 62), 7, "7"),  # G7, third in the bass
    ((50, 65, 69, 72), 2, "m7"),
    ((48, 52, 55, 59), 0, "maj7"),
    ((59, 62, 65), 11, "dim"),
    ((60, 64, 68), 0, "aug"),
    ((60, 65, 67), 0, "sus4"),
    ((62, 65, 68, 71), 2, "dim7"),  # a diminished seventh is named from its bass
    ((59, 62, 65, 69), 11, "m7b5"),
    ((45, 60, 64, 67), 9, "m7"),  # C6 in pitch classes, A in the bass: Am7
])
def test_chord_templates_with_inversions_and_missing_fifths(pitches, root, quality):
    chord = chord_of(pitches)
    assert (chord.root, chord.quality) == (root, quality), chord.name
    assert chord.confidence >= 0.7


def test_a_complete_chord_is_surer_than_one_with_a_foreign_note():
    assert chord_of((60, 64, 67)).confidence == 1.0
    assert chord_of((60, 64, 67, 61)).confidence < 0.8


def test_the_left_hand_zone_ignores_the_melody_above_the_split():
    left = ListenSettings(zone="left", split_pitch=60)
    chord = chord_of((41, 45, 48), left, then=(71, 74, 79))  # F major held low, a G major melody above
    assert (chord.root, chord.quality) == (5, "maj")
    everything = chord_of((41, 45, 48), ListenSettings(zone="all"), then=(71, 74, 79))
    assert (everything.root, everything.quality) != (5, "maj")


def test_an_arpeggio_makes_a_chord_through_the_release_memory():
    listener, t = Listener(ListenSettings(chord_release_ms=400)), 0
    for pitch in (48, 52, 55, 52):  # C E G E, each let go before the next
        listener.hear(NoteMessage(pitch, 80), t)
        listener.hear(NoteMessage(pitch, 0), t + 120 * MS)
        listener.refresh(t + 120 * MS)
        t += 150 * MS
    chord = listener.snapshot().chord
    assert (chord.root, chord.quality) == (0, "maj")
    no_memory = Listener(ListenSettings(chord_release_ms=0))
    no_memory.hear(NoteMessage(48, 80), 0)
    no_memory.hear(NoteMessage(48, 0), 100 * MS)
    no_memory.hear(NoteMessage(52, 80), 150 * MS)
    no_memory.refresh(160 * MS)
    assert no_memory.snapshot().chord.root is None


SCALES = {"C major": (0, 2, 4, 5, 7, 9, 11), "A major": (9, 11, 1, 2, 4, 6, 8), "F minor": (5, 7, 8, 10, 0, 1, 4)}
CADENCE = (0, 4, 7, 12, 5, 9, 0, 7, 11, 2, 4, 0)  # degrees 1 3 5 8 4 6 1 5 7 2 3 1 of the scale, as semitones


def key_melody(tonic: int, minor: bool, notes: int, seed: int) -> list[int]:
    """A tonal line: scale steps weighted to the tonic triad, in the key's own pitch classes."""
    rng = np.random.default_rng(seed)
    degrees = (0, 2, 3, 5, 7, 8, 11) if minor else (0, 2, 4, 5, 7, 9, 11)
    weights = np.array([4, 1, 3, 1.5, 3, 1, 1.2])
    picks = rng.choice(7, size=notes, p=weights / weights.sum())
    return [60 + (tonic + degrees[d]) % 12 for d in picks]


@pytest.mark.parametrize("first, second", [((0, False), (9, False)), ((0, False), (5, True)), ((7, False), (4, True))])
def test_the_key_follows_a_modulation(first, second):
    listener, t = Listener(), 0
    for pitch in key_melody(*first, 48, seed=1):
        listener.hear(NoteMessage(pitch, 80), t)
        listener.hear(NoteMessage(pitch, 0), t + 400 * MS)
        t += 500 * MS
        listener.refresh(t)
    key = listener.snapshot().key
    assert (key.tonic, key.mode) == (first[0], "minor" if first[1] else "major")
    switched_after = None
    for n, pitch in enumerate(key_melody(*second, 48, seed=2), 1):
        listener.hear(NoteMessage(pitch, 80), t)
        listener.hear(NoteMessage(pitch, 0), t + 400 * MS)
        t += 500 * MS
        listener.refresh(t)
        key = listener.snapshot().key
        if (key.tonic, key.mode) == (second[0], "minor" if second[1] else "major"):
            switched_after = switched_after or n
        else:
            switched_after = None  # it must switch and stay
    assert switched_after is not None and switched_after <= 32, switched_after
    assert key.confidence > 0.6


RHYTHM = [1.0, 1.0, 0.5, 0.5, 1.0, 1.0, 2.0, 1.0, 0.5, 0.5, 1.0, 1.0, 1.0, 2.0]  # quarters, eighth pairs, halves


def tune(beats: float) -> list[tuple[float, float, int]]:
    notes, at, i = [], 0.0, 0
    while at < beats:
        duration = RHYTHM[i % len(RHYTHM)]
        notes.append((at, duration, 60 + (i * 5) % 12))
        at, i = at + duration, i + 1
    return notes


@pytest.mark.parametrize("before, after", [(60, 75), (90, 72), (120, 150), (150, 120), (180, 150), (100, 125)])
def test_the_tempo_locks_within_four_beats_of_a_change(before, after):
    change = 16.0
    tempo = TempoMap(((0.0, before), (change, after)))
    events = perform(tune(change + 12), tempo, jitter_ms=10, seed=3)
    beats = [change - 0.5] + [change + b for b in (4.05, 6.05, 8.05, 11.05)]
    states = feed(Listener(ListenSettings(), tempo_bpm=100), events, [tempo.ns_at(b) for b in beats])
    before_change, *after_change = states
    assert before_change.tempo.locked and abs(before_change.tempo.bpm / before - 1) < 0.04
    for beat, state in zip(beats[1:], after_change):
        assert state.tempo.locked, f"not locked {beat - change:.0f} beats after {before} -> {after} BPM"
        error = abs(state.tempo.bpm / after - 1)
        assert error < 0.04, f"{state.tempo.bpm:.1f} BPM {beat - change:.0f} beats after {before} -> {after}"


def test_the_beat_phase_points_at_the_beats():
    tempo = TempoMap(((0.0, 96.0),))
    events = perform(tune(16), tempo, jitter_ms=5, seed=4)
    probes = [tempo.ns_at(b) for b in (12.0, 12.25, 12.5, 12.75)]
    phases = [state.phase for state in feed(Listener(), events, probes)]
    for phase, expected in zip(phases, (0.0, 0.25, 0.5, 0.75)):
        assert min(abs(phase - expected), 1 - abs(phase - expected)) < 0.06, phases


def test_density_and_dynamics_follow_the_playing():
    listener = Listener(ListenSettings(dynamics_decay_s=2.0), tempo_bpm=120)
    for i in range(16):  # two notes a beat at 120 BPM, soft
        listener.hear(NoteMessage(60, 40), i * 250 * MS)
        listener.hear(NoteMessage(60, 0), i * 250 * MS + 200 * MS)
    listener.refresh(16 * 250 * MS)
    state = listener.snapshot()
    assert 1.5 < state.density < 2.5 and abs(state.dynamics - 40) < 1
    for i in range(16, 24):
        listener.hear(NoteMessage(60, 110), i * 250 * MS)
    listener.refresh(24 * 250 * MS)
    assert listener.snapshot().dynamics > 80
    assert listener.snapshot(60_000 * MS).density < 0.01, "silence: the density fades"


def test_a_midi_clock_sets_the_tempo_when_the_patch_says_so():
    listener = Listener(ListenSettings(tempo_source="midi_clock"), tempo_bpm=100)
    listener.on_raw_midi(bytes([0xFA]), 0)
    pulse_ns = round(60e9 / 132 / 24)
    for i in range(48):
        listener.on_raw_midi(bytes([0xF8]), i * pulse_ns)
        listener.hear(NoteMessage(60, 80), i * pulse_ns * 7)  # notes off the clock's beat change nothing
    listener.refresh(48 * pulse_ns)
    tempo = listener.snapshot().tempo
    assert tempo.source == "midi_clock" and tempo.locked and abs(tempo.bpm - 132) < 0.5
    assert tempo.phase(24 * pulse_ns) == pytest.approx(0.0, abs=1e-3)


# --- the duet at the player's tempo ------------------------------------------------------------------------
def duet_answer_iois(model, follow: bool, player_bpm: float = 75.0, patch_bpm: float = 100.0):
    clock = FakeClock()
    keyboard, output = MemoryInput(clock), MemoryOutput(clock)
    scheduler = Scheduler(output, late_tolerance_ns=3 * MS)
    settings = ContinuationSettings(tempo_bpm=patch_bpm, phrase_end_beats=1.5, follow_tempo=follow,
                                    answer_notes=16, answer_beats=16)
    listener = Listener(ListenSettings(), tempo_bpm=patch_bpm)
    generator = Generator(ModelRunner(model), Sampler(11, 0.9, 0.92))
    generator.reset()
    mode = Continuation(generator, scheduler, settings, clock=clock, listener=listener)
    engine = Engine(mode, clock, [keyboard], scheduler, listener=listener)
    events = perform(tune(16), TempoMap(((0.0, player_bpm),)), jitter_ms=8, seed=5, origin_ns=MS)
    end_ns = events[-1][0] + 12_000 * MS
    while clock.now_ns() < end_ns:
        clock.advance_ms(1)
        while events and events[0][0] <= clock.now_ns():
            _, message = events.pop(0)
            keyboard.play(message.pitch, message.velocity)
        engine.tick()
    onsets = sorted({t for t, m in output.sent if m.is_on})
    return listener, np.diff(onsets) / MS


def _on_grid(iois_ms, beat_ms: float) -> np.ndarray:
    grid = np.array([b * beat_ms for b in IOI_BEATS[1:]])
    return np.min(np.abs(iois_ms[:, None] - grid[None, :]), axis=1) <= 1.0


def test_the_duet_answers_at_the_players_tempo_not_the_patchs(shipped_model):
    listener, iois = duet_answer_iois(shipped_model, follow=True)
    tempo = listener.snapshot().tempo
    assert tempo.locked and abs(tempo.bpm - 75) < 2
    assert len(iois) >= 6
    assert _on_grid(iois, 60_000 / tempo.bpm).all(), "every answer onset falls on the player's beat grid"
    assert not _on_grid(iois, 600.0).all(), "some fall off the patch's 100 BPM grid"
    _, patch_iois = duet_answer_iois(shipped_model, follow=False)
    assert _on_grid(patch_iois, 600.0).all(), "follow_tempo = false keeps the patch's tempo"


# --- /listen/* over real UDP -------------------------------------------------------------------------------
def test_listen_messages_arrive_over_udp_loopback():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2.0)
    clock = FakeClock(10_000 * MS)
    listener = Listener(tempo_bpm=100)
    for i, pitch in enumerate((50, 53, 57, 60)):  # D F A C: Dm7
        listener.hear(NoteMessage(pitch, 90), clock.now_ns() + i * MS)
    for beat in range(8):
        listener.hear(NoteMessage(74, 90), clock.now_ns() + beat * 500 * MS)  # a melody at 120 BPM
        listener.refresh(clock.now_ns() + beat * 500 * MS)
    clock.advance_ms(3500)
    sender = ListenSender(listener, clock, "127.0.0.1", receiver.getsockname()[1], interval_ms=20)
    got: dict[str, list] = {}
    try:
        deadline = time.monotonic() + 3
        while set(got) != set(LISTEN_MESSAGES) and time.monotonic() < deadline:
            message = OscMessage(receiver.recv(1024))
            got[message.address] = message.params
    finally:
        sender.close()
        receiver.close()
    assert got["/listen/chord"][:2] == [2, "m7"] and got["/listen/chord"][2] > 0.9
    assert got["/listen/key"][1] in ("major", "minor") and 0 <= got["/listen/key"][0] <= 11
    bpm, phase, locked = got["/listen/tempo"]
    assert abs(bpm - 120) < 2 and locked == 1 and 0 <= phase < 1


# --- [listen] in a patch -----------------------------------------------------------------------------------
@pytest.mark.parametrize("table, words", [
    ({"zone": "right"}, "zone must be 'all' or 'left'"),
    ({"split_pitch": 130}, "split_pitch must be between 0 and 127"),
    ({"split_pitch": 60.5}, "split_pitch must be a whole number"),
    ({"key_decay_s": 0}, "key_decay_s must be between 1 and 600 s"),
    ({"chord_release_ms": "long"}, "chord_release_ms must be a number"),
    ({"tempo_source": "link"}, "tempo_source must be 'playing' or 'midi_clock'"),
    ({"tempo_memory_beats": 40}, "tempo_memory_beats must be between 1 and 16"),
    ({"osc_interval_ms": 1}, "osc_interval_ms must be between 10 and 5000 ms"),
    ({"spilt_pitch": 60}, "unknown key 'spilt_pitch'"),
])
def test_bad_listen_values_get_one_line_errors(table, words):
    with pytest.raises(PatchError) as info:
        parse_patch({"listen": table}, "duet.toml")
    message = str(info.value)
    assert message.startswith("duet.toml: [listen] ") and words in message and "\n" not in message


def test_a_midi_clock_tempo_needs_midi():
    with pytest.raises(PatchError, match=r"\[listen\] tempo_source = \"midi_clock\" needs \[midi\] enabled"):
        parse_patch({"listen": {"tempo_source": "midi_clock"}, "midi": {"enabled": False}}, "duet.toml")


def test_follow_tempo_is_a_continuation_key():
    assert parse_patch({"continuation": {"follow_tempo": False}}).continuation.follow_tempo is False
    with pytest.raises(PatchError, match="follow_tempo must be true or false"):
        parse_patch({"continuation": {"follow_tempo": "no"}}, "duet.toml")


# --- the running engine: status line, and /listen/* from `realtime run` ------------------------------------
def test_the_status_line_shows_what_the_listener_hears():
    from realtime.app import LiveEngine

    clock = FakeClock(1_000 * MS)
    patch = parse_patch({"engine": {"tempo_bpm": 100}, "continuation": {"phrase_end_ms": 5000},
                         "midi": {"enabled": False}, "osc": {"enabled": False}}, "status.toml")
    live = LiveEngine(patch, clock=clock)
    keys = MemoryInput(clock)
    keys.set_listener(live.engine._hear)
    try:
        assert "chord - " in live.status() and "tempo -" in live.status()
        for beat in range(10):  # an F major chord held, a melody on top at 90 BPM
            if beat == 0:
                for pitch in (53, 57, 60):
                    keys.play(pitch, 80)
            keys.play((65, 69, 72)[beat % 3] + 12, 90)
            live.engine.tick()
            clock.advance_ms(600)
            keys.play((65, 69, 72)[beat % 3] + 12, 0)
            live.engine.tick()
            clock.advance_ms(60_000 / 90 - 600)
        status = live.status()
        assert "chord F " in status and "key F major" in status and "90." in status and "locked" in status, status
    finally:
        live.stop()


def test_realtime_run_sends_listen_messages_to_out_host(tmp_path):
    import signal

    from pythonosc.udp_client import SimpleUDPClient
    from test_run_osc import Listener as OscRecorder, _free_port, _start

    recorder, osc_in = OscRecorder(), _free_port()
    proc = _start(tmp_path, recorder, osc_in)  # [osc] out_host = 127.0.0.1, [engine] tempo_bpm = 120
    try:
        player = SimpleUDPClient("127.0.0.1", osc_in)
        for pitch in (57, 60, 64):  # A minor, held
            player.send_message("/note/on", [pitch, 80])
        for _ in range(8):  # quarter notes at 100 BPM above it
            player.send_message("/note/on", [76, 90])
            time.sleep(0.5)
            player.send_message("/note/off", [76])
            time.sleep(0.1)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            tempo = [args for _, address, args in recorder.events if address == "/listen/tempo"]
            if tempo and tempo[-1][2] == 1:
                break
            time.sleep(0.05)
        for pitch in (57, 60, 64):
            player.send_message("/note/off", [pitch])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
        recorder.server.shutdown()
    chords = [args for _, address, args in recorder.events if address == "/listen/chord"]
    assert chords and tuple(chords[-1][:2]) == (9, "min") and chords[-1][2] > 0.9
    bpm, phase, locked = tempo[-1]
    assert locked == 1 and abs(bpm - 100) < 4 and 0 <= phase < 1


def test_the_readme_shows_the_listening_tables_the_code_has():
    from pathlib import Path

    from realtime.listen.osc import sent_table_markdown
    from realtime.settings import LISTEN_RANGES, ranges_table_markdown

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert ranges_table_markdown(LISTEN_RANGES) in readme
    assert sent_table_markdown() in readme
    for name, r in LISTEN_RANGES.items():  # each range is the one the patch check enforces
        assert getattr(ListenSettings(), name) == r.default
        parse_patch({"listen": {name: type(getattr(ListenSettings(), name))(r.high)}})
        with pytest.raises(PatchError, match=name):
            parse_patch({"listen": {name: type(getattr(ListenSettings(), name))(r.high + 1)}})


def test_any_mode_reads_the_listener_the_engine_feeds():
    class Quiet:  # a mode that only listens
        def __init__(self):
            self.heard = []

        def on_message(self, message, at_ns):
            self.heard.append(self.listener.snapshot(at_ns).chord.name)

        def tick(self, now_ns):
            pass

        def next_deadline_ns(self):
            return None

        def stop(self, now_ns):
            pass

        def apply_control(self, target, value):
            pass

    clock, mode = FakeClock(), Quiet()
    keys = MemoryInput(clock)
    engine = Engine(mode, clock, [keys], Scheduler(MemoryOutput(clock)), listener=Listener())
    assert mode.listener is engine.listener
    for pitch in (55, 59, 62, 65):  # G7
        keys.play(pitch, 80)
    engine.tick()
    clock.advance_ms(5)
    keys.play(79, 80)
    engine.tick()
    assert mode.heard[-1] == "G7"
