"""Learning the player live: the Markov blend in the duet's pitch choice, its live control, and its memory file.

Unit tests on a fake clock (the offline Duet runs the very engine loop a show runs), and one through a real
`realtime run` over OSC on loopback: a memory file written at the end of one run and read at the next.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from jackclients import run_realtime, wait_for
from pythonosc.udp_client import SimpleUDPClient

from realtime.clock import FakeClock
from realtime.engine.continuation import Continuation
from realtime.engine.engine import Engine
from realtime.engine.playermemory import PlayerMemory
from realtime.errors import PatchError
from realtime.events import ControlChange, MemoryRequest, NamedControl, NoteSequence
from realtime.io.ports import MemoryInput, MemoryOutput
from realtime.model.generator import Generator, ModelRunner, build_generator
from realtime.model.markov import MarkovModel
from realtime.model.markovfile import load_model, save_counts
from realtime.model.markovkernel import MarkovKernel
from realtime.model.sampling import Constraints, Sampler, key_pitch_classes
from realtime.model.tokens import Token
from realtime.offline import Duet
from realtime.patch import compile_patch, parse_patch
from realtime.replay import replay_session
from realtime.scheduler import Scheduler
from realtime.settings import ContinuationSettings, ControlMapping

MS = 1_000_000
ZIGZAG = [60, 67, 62, 69, 64, 71, 65, 72]  # leaps of a fifth up and a fourth down: not the chorales' habit
SETTINGS = ContinuationSettings(tempo_bpm=100, phrase_end_ms=300, answer_notes=16, answer_beats=8)
PERIOD_MS = 8000  # one phrase and its answer (16 notes within 8 beats at 100 BPM: under 5 s)


def _duet(model, blend: float, seed: int = 3, memory: PlayerMemory | None = None) -> Duet:
    duet = Duet(build_generator(str(model), seed, 0.9, 0.92), SETTINGS, FakeClock())
    if memory is not None:
        duet.mode.memory = memory
    duet.mode.memory.blend = blend
    return duet


def _answers(duet: Duet, prompts: list[list[int]]) -> list[list[int]]:
    """The player plays each prompt in turn, each answered before the next; the pitches of every answer."""
    notes = [(PERIOD_MS * i + 300.0 * j, 270.0, p, 80) for i, prompt in enumerate(prompts) for j, p in enumerate(prompt)]
    duet.perform(NoteSequence.from_absolute(notes, "ms", 100.0), 100 * MS, until_ns=(100 + PERIOD_MS * len(prompts)) * MS)
    answers = [[] for _ in prompts]
    for at_ns, message in duet.output.sent:
        if message.is_on:
            answers[(at_ns // MS - 100) // PERIOD_MS].append(message.pitch)
    return answers


def _learned(phrases: list[list[int]], blend: float = 0.5, memory: PlayerMemory | None = None) -> PlayerMemory:
    """A memory (by default a new one) that heard these phrases, one after another."""
    memory = memory if memory is not None else PlayerMemory(None, blend)
    for phrase in phrases:
        for pitch in phrase:
            memory.hear(int(pitch))
        memory.end_phrase()
    return memory


def _random_memory(seed: int = 0, phrases: int = 200) -> PlayerMemory:
    rng = np.random.default_rng(seed)
    return _learned([rng.integers(48, 80, size=int(rng.integers(3, 14))) for _ in range(phrases)])


def test_the_blend_moves_probability_to_the_note_a_repeated_phrase_goes_on_with(shipped_model):
    generator = build_generator(str(shipped_model), 0, 0.9, 0.92)
    for pitch in ZIGZAG[:5]:  # the model has heard the phrase up to 64; the phrase goes on with 71
        generator.feed(Token(pitch, 3, 3, 4))
    after = {}
    for times in (1, 3, 8):
        markov = _learned([ZIGZAG] * times).blended(ZIGZAG[:5])
        after[times] = generator.pitch_distribution(markov, 0.5)[71]
    alone = generator.pitch_distribution()[71]
    assert generator.pitch_distribution(markov, 0.0)[71] == alone, "blend 0: the model alone"
    assert alone < 0.2, f"the model alone does not expect the leap ({alone:.3f})"
    assert after[1] > alone + 0.2, f"one hearing already moves it: {alone:.3f} -> {after[1]:.3f}"
    assert after[1] < after[3] < after[8], f"more repetitions, more weight: {after}"
    assert after[8] > 0.45, "at blend 0.5 the memory's near-certainty is half the choice"


def test_answers_hold_the_repeated_phrase_s_ngrams_more_often_with_the_blend(shipped_model):
    trigrams = {tuple((ZIGZAG * 2)[i:i + 3]) for i in range(len(ZIGZAG))}  # the phrase, and on into its repeat

    def hits(blend: float, seed: int) -> int:
        answers = _answers(_duet(shipped_model, blend, seed), [ZIGZAG] * 6)
        return sum(tuple(a[i:i + 3]) in trigrams for a in answers[1:] for i in range(len(a) - 2))

    counts = {seed: (hits(0.0, seed), hits(0.5, seed)) for seed in (1, 2, 3)}  # 15 answers of 16 notes each
    plain, blended = (sum(c[i] for c in counts.values()) for i in (0, 1))
    assert all(b > p for p, b in counts.values()) and blended >= max(30, 5 * plain), f"(blend 0, 0.5): {counts}"


def test_the_key_and_range_still_hold_after_blending(shipped_model):
    constraints = Constraints(key_pitch_classes("C major"), 55, 79)
    generator = build_generator(str(shipped_model), 0, 1.0, 1.0, constraints)
    memory = _learned([[61, 60, 63, 62, 66, 64, 85, 67, 30]] * 5, 1.0)  # mostly out of key or of range
    markov = memory.blended([61, 60])
    assert markov[~constraints.pitch_mask()].sum() > 0.5
    for blend in (0.5, 1.0):
        p = generator.pitch_distribution(markov, blend)
        assert p[~constraints.pitch_mask()].sum() == 0.0 and abs(p.sum() - 1.0) < 1e-12
    only_markov = generator.pitch_distribution(markov, 1.0)
    allowed = np.where(constraints.pitch_mask(), markov, 0.0)
    assert np.allclose(only_markov, allowed / allowed.sum(), rtol=1e-12), "blend 1: the memory alone, in key"
    generator.reset()
    pitches = []
    for _ in range(300):
        token = generator.sample_next(markov=memory.blended(pitches[-4:]), blend=1.0)
        generator.commit(token)
        pitches.append(token.pitch)
    assert all(constraints.pitch_mask()[p] for p in pitches)
    elsewhere = _learned([[61, 63, 85]] * 3, 1.0).blended([61])  # nothing it knows is allowed: no opinion
    assert np.array_equal(generator.pitch_distribution(elsewhere, 1.0), generator.pitch_distribution())


def test_blend_zero_plays_exactly_the_notes_of_a_duet_without_a_memory(shipped_model):
    without = _duet(shipped_model, 0.0)
    with_memory = _duet(shipped_model, 0.0, memory=_random_memory())
    for duet in (without, with_memory):
        _answers(duet, [ZIGZAG, [67, 71, 74, 72], ZIGZAG])
    assert len(without.output.sent) > 80
    assert with_memory.output.sent == without.output.sent, "same seed, same notes at the same moments"
    assert with_memory.mode.memory.model.context_count() > without.mode.memory.model.context_count()


def test_blend_zero_never_reads_the_markov_distribution(shipped_model):
    runs = []
    for markov in (None, np.full(128, 1 / 128), _random_memory().blended([60, 62])):
        generator = Generator(ModelRunner(shipped_model), Sampler(7, 1.1, 0.95))
        tokens = []
        for _ in range(200):
            token = generator.sample_next(markov=markov, blend=0.0)
            generator.commit(token)
            tokens.append(token)
        runs.append(tokens)
    assert runs[0] == runs[1] == runs[2]


def test_the_compiled_distribution_equals_the_model_s_to_the_bit():
    memory = _random_memory(phrases=300)  # grows the pool and the rows past their first size
    kernel, rng = memory.kernel, np.random.default_rng(5)
    assert len(kernel.rows) == memory.model.context_count() > 1024
    out = np.empty(128)
    for _ in range(500):
        context = [int(p) for p in rng.integers(48, 80, size=int(rng.integers(0, 7)))]
        assert np.array_equal(kernel.distribution_into(context, out), memory.model.distribution(context[-4:]))
    fresh = MarkovKernel(MarkovModel.from_counts(memory.model.counts(), 4, uniform_floor=False))
    context = [60, 62, 64]
    assert np.array_equal(fresh.distribution_into(context, out), memory.model.distribution(context))


def _engine(shipped_model, controls=()):
    clock = FakeClock()
    generator = build_generator(str(shipped_model), 0)
    scheduler = Scheduler(MemoryOutput(clock, "out"))
    mode = Continuation(generator, scheduler, SETTINGS, clock=clock)
    return Engine(mode, clock, [MemoryInput(clock, "keys")], scheduler, controls=controls), mode


def test_a_cc_and_an_osc_control_move_the_blend_and_out_of_range_values_are_refused(shipped_model):
    patch = parse_patch({"continuation": {"blend": 0.25}, "controls": [
        {"source": "cc:2", "target": "blend"}, {"source": "osc:blend", "target": "blend", "min": 0.0, "max": 0.8}]})
    settings = compile_patch(patch)
    engine, mode = _engine(shipped_model, settings.controls)
    mode.memory.blend = settings.continuation.blend
    assert mode.memory.blend == 0.25
    engine._hear(ControlChange(2, 127), 0)
    engine.tick()
    assert mode.memory.blend == 1.0, "CC 2 at the top: the memory alone"
    engine._hear(NamedControl("blend", 0.5), 0)
    engine.tick()
    assert mode.memory.blend == pytest.approx(0.4), "osc:blend maps 0..1 onto the patch's 0-0.8"
    for bad in (1.5, -0.1, float("nan")):
        mode.apply_control("blend", bad)
        assert mode.memory.blend == pytest.approx(0.4), "an out-of-range value changes nothing"
        line = mode.last_error
        assert line.count("\n") == 0 and "blend" in line and "0-1" in line and "refused" in line, line
    for key, value in (("blend", 1.5), ("blend", -0.5), ("memory", "")):
        with pytest.raises(PatchError, match=f"continuation.*{key}"):
            parse_patch({"continuation": {key: value}}, "duet.toml")
    assert ControlMapping("cc:2", "blend", 0.0, 1.0).value(3.0) == 1.0, "a mapped controller is clamped to 0-1"


def test_memory_save_through_the_engine_is_written_outside_the_loop(shipped_model, tmp_path):
    engine, mode = _engine(shipped_model)
    mode.memory = PlayerMemory(tmp_path / "player.markov", 0.3)
    assert mode.memory.persist() == [f"memory: {tmp_path / 'player.markov'} does not exist yet; starting with an "
                                     "empty memory (it is written when the run ends)"]
    _learned([ZIGZAG], memory=mode.memory)
    engine._hear(MemoryRequest("save"), 0)
    engine.tick()
    assert not (tmp_path / "player.markov").exists(), "the engine thread only copies the counts"
    (line,) = mode.memory.persist()
    assert line.startswith("memory: ") and "saved to" in line
    assert load_model(tmp_path / "player.markov").counts() == mode.memory.model.counts()
    assert mode.memory.persist(final=True) == [], "nothing new learned since: the end of the run writes nothing"


def test_saving_and_loading_restores_the_memory_exactly(tmp_path):
    memory = _random_memory(seed=4, phrases=250)
    memory.path = tmp_path / "player.markov"
    (line,) = memory.persist(final=True)
    assert "saved to" in line and not list(tmp_path.glob(".*")), "written by a rename: no temporary left"
    again = PlayerMemory(tmp_path / "player.markov", 0.5)
    assert again.model.counts() == memory.model.counts()
    assert again.model.max_order == memory.model.max_order and again.model.vocab_size == 128
    rng, a, b = np.random.default_rng(9), np.empty(128), np.empty(128)
    for _ in range(400):
        context = [int(p) for p in rng.integers(48, 80, size=int(rng.integers(0, 6)))]
        assert np.array_equal(memory.model.distribution(context), again.model.distribution(context))
        assert np.array_equal(memory.kernel.distribution_into(context, a), again.kernel.distribution_into(context, b))
    _learned([[60, 62]], memory=again).persist(final=True)
    assert PlayerMemory(tmp_path / "player.markov").model.counts() == again.model.counts(), "and it learns on"


def _good_document(tmp_path) -> dict:
    save_counts(tmp_path / "good.markov", _learned([ZIGZAG] * 2).model.counts(), 4)
    return json.loads((tmp_path / "good.markov").read_text())


BROKEN = {  # name -> (how the file is made from a good document, the problem its line names)
    "truncated": (lambda doc: json.dumps(doc)[:-40], "cut short"),
    "empty": (lambda doc: "", "cut short"),
    "binary": (lambda doc: b"\x89PNG\r\n\x1a\n\xff\xfe", "not text"),
    "foreign json": (lambda doc: json.dumps({"notes": [60, 62]}), "not a memory file"),
    "newer version": (lambda doc: json.dumps(doc | {"version": 2}), "version 2"),
    "other vocabulary": (lambda doc: json.dumps(doc | {"vocab_size": 88}), "88 symbols"),
    "order as text": (lambda doc: json.dumps(doc | {"max_order": "4"}), "max_order must be a whole number"),
    "count as text": (lambda doc: json.dumps(doc | {"contexts": [[[60], [[67, "3"]]]]}), "a count must be"),
    "count as bool": (lambda doc: json.dumps(doc | {"contexts": [[[60], [[67, True]]]]}), "a count must be"),
    "note out of range": (lambda doc: json.dumps(doc | {"contexts": [[[200], [[67, 1]]]]}), "a note must be"),
    "zero count": (lambda doc: json.dumps(doc | {"contexts": [[[60], [[67, 0]]]]}), "a count must be"),
    "context too long": (lambda doc: json.dumps(doc | {"max_order": 1, "contexts": [[[60, 62], [[64, 1]]]]}),
                         "longer than max_order"),
    "contexts not a list": (lambda doc: json.dumps(doc | {"contexts": {"60": 1}}), "must be a list"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_memory_file_is_one_line_and_an_empty_memory(tmp_path, name):
    make, problem = BROKEN[name]
    path = tmp_path / "player.markov"
    content = make(_good_document(tmp_path))
    content = content if isinstance(content, bytes) else content.encode()
    path.write_bytes(content)
    memory = PlayerMemory(path, 0.5)
    (line,) = memory.persist()
    assert "\n" not in line and str(path) in line and problem in line and "empty memory" in line, line
    assert memory.model.context_count() == 0 and memory.blended([60]) is not None
    (saved,) = _learned([ZIGZAG], memory=memory).persist(final=True)
    assert "player.markov.unreadable" in saved, "the unreadable file is kept, not written over"
    assert (tmp_path / "player.markov.unreadable").read_bytes() == content
    assert PlayerMemory(path).model.counts() == memory.model.counts()


def test_a_folder_where_the_memory_file_should_be_is_one_line(tmp_path):
    (tmp_path / "player.markov").mkdir()
    memory = PlayerMemory(tmp_path / "player.markov", 0.5)
    (line,) = memory.persist()
    assert "is a folder" in line and "empty memory" in line
    (line,) = _learned([[60]], memory=memory).persist(final=True)
    assert line.startswith("memory: ") and "could not save the memory" in line and "\n" not in line, line
    missing_folder = PlayerMemory(tmp_path / "nowhere" / "player.markov")
    (line,) = missing_folder.persist()
    assert "does not exist, so it cannot be saved" in line


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _play(player: SimpleUDPClient, pitches: list[int]) -> None:
    for pitch in pitches:
        player.send_message("/note/on", [pitch, 90])
        time.sleep(0.1)
        player.send_message("/note/off", [pitch])
    time.sleep(1.2)  # the phrase ends (300 ms), is answered and so learned


def _run(patch: Path, play, *flags: str) -> str:
    """`realtime run PATCH FLAGS`, `play()` while it runs, then Ctrl-C; what it said on stderr."""
    proc = run_realtime(patch, *flags)
    try:
        play()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    return err


def test_a_run_saves_its_memory_at_the_end_and_the_next_run_reads_it(tmp_path):
    port = _free_port()
    patch = tmp_path / "duet.toml"
    patch.write_text(f"""
[engine]
tempo_bpm = 120
[continuation]
phrase_end_ms = 300
answer_notes = 4
answer_beats = 2
blend = 0.5
memory = "player.markov"
[midi]
enabled = false
[osc]
port = {port}
""")
    memory_file, player, asked = tmp_path / "player.markov", SimpleUDPClient("127.0.0.1", port), {}

    def first_run() -> None:
        _play(player, ZIGZAG)
        player.send_message("/memory/save", [])
        assert wait_for(memory_file.exists, 5.0), "/memory/save wrote the file while the run goes on"
        asked.update(load_model(memory_file).counts())
        _play(player, ZIGZAG)

    err = _run(patch, first_run)
    assert "does not exist yet; starting with an empty memory" in err
    end = load_model(memory_file).counts()
    assert end[()][60] == 2 * asked[()][60] == 2, "the second phrase was learned and saved at the end"
    assert end[(60, 67)] == {62: 2} and end[(72,)] == {60: 1}, "learned as one stream: the repeat follows the end"

    show = tmp_path / "show"
    err = _run(patch, lambda: (time.sleep(1.0), _play(player, ZIGZAG[:4])), "--record", str(show))
    assert f"memory: {len(end)} contexts (order 4) read from {memory_file}" in err
    assert load_model(show / "memory.markov").counts() == end, "the recording keeps the memory it started from"
    assert load_model(memory_file).counts()[()][60] == 3, "and the file moved on"
    result = replay_session(show, tmp_path / "again.mid")
    assert result["live_notes"] >= 2 and result["same_pitches"], "replayed with the blend, note for note"
