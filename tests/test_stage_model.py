"""The stage model's data and training: each chorale voice with the other voices' harmony, roots by template,
augmentation that moves the harmony with the notes, groups dropped to "not known", and a short real run."""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import require_module

from realtime.model import controls as ctl
from realtime.model.modelfile import models_dir
from realtime.training.stagedata import best_chord, chord_root, example, lines_of, rotate

NOT_KNOWN = ctl.forget_measured(ctl.DEFAULTS.copy())  # what a model hears when nothing about the music is known

C, E, G, B, D, F = 0, 4, 7, 11, 2, 5


def _mask(*pcs):
    return sum(1 << pc for pc in pcs)


def test_roots_by_template_match():
    assert chord_root(_mask(C, E, G)) == C
    assert chord_root(_mask(E, G, C)) == C  # an inversion: same root
    assert chord_root(_mask(G, B, D, F)) == G  # dominant seventh
    assert chord_root(_mask(9, C, E)) == 9  # A minor, not C major with an extra A
    assert chord_root(_mask(C)) == -1 and chord_root(0) == -1
    # a bare dyad leaves the third open: the key decides it (C# and F# in A major: F# minor, with A)
    assert best_chord(_mask(1, 6))[1] == _mask(6, 10, 1)
    assert best_chord(_mask(1, 6), scale=frozenset({9, 11, 1, 2, 4, 6, 8}))[1] == _mask(6, 9, 1)


def test_rotate_moves_masks_and_roots_but_keeps_none():
    masks, roots = rotate(np.array([_mask(C, E, G), 0]), np.array([C, -1]), 14)
    assert masks.tolist() == [_mask(D, 6, 9), 0] and roots.tolist() == [D, -1]
    assert rotate(np.array([_mask(B)]), np.array([B]), 1)[0].tolist() == [_mask(C)]


def test_a_chorale_gives_four_voices_and_a_texture_each_hearing_the_others():
    require_module("music21", "music21's offline corpus")
    from music21 import corpus

    from realtime.training.stagedata import _parse_chorale

    lines = dict(_parse_chorale(("chorales", str(corpus.getWork("bwv66.6")))))
    roles = [key.rsplit("#", 1)[1] for key in lines]
    assert roles == ["melody", "inner", "inner", "bass", "texture"]
    arrays = list(lines.values())
    assert len(arrays[4]) == sum(len(a) for a in arrays[:4])  # the texture is all four parts
    soprano, texture = arrays[0], arrays[4]
    # the soprano's first note (C#5) over A and E in the lower voices: its harmony leaves out its own C#
    assert soprano[0, 0] == 73 and soprano[0, 4] == _mask(4, 9) and soprano[0, 5] == 9
    # the texture hears the whole slice, itself included: A major
    assert texture[0, 4] == _mask(1, 4, 9) and texture[0, 5] == 9
    assert (soprano[:, 4] > 0).all() and (soprano[:, 5] >= 0).mean() > 0.9


def _line():
    rng = np.random.default_rng(0)
    n = 40
    tokens = np.stack([rng.integers(55, 75, n), rng.integers(3, 9, n), rng.integers(2, 8, n), np.full(n, 4)], 1)
    masks = np.array([_mask(C, E, G) if i % 2 else _mask(D, F, 9) for i in range(n)])
    roots = np.array([C if i % 2 else D for i in range(n)])
    return np.concatenate([tokens, masks[:, None], roots[:, None]], 1)


def test_an_example_hears_its_harmony_role_and_style():
    x, c, y = example(_line(), "bass", "irish")
    assert (y == _line()[:, :4]).all() and (x[1:] == y[:-1]).all()
    assert c[:, ctl.INDEX["role_bass"]].all() and c[:, ctl.ROLE_SLICE].sum(1).tolist() == [1.0] * len(c)
    assert c[:, ctl.INDEX["style_irish"]].all() and c[:, ctl.STYLE_SLICE].sum() == len(c)
    assert c[1, ctl.CHORD_SLICE].tolist() == [1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0] and c[1, ctl.INDEX["root0"]] == 1
    _, unknown, _ = example(_line(), None, None)
    assert unknown[:, ctl.ROLE_SLICE].sum() == 0 and unknown[:, ctl.STYLE_SLICE].sum() == 0


def test_controls_measured_before_a_note_never_hear_it_or_what_follows():
    tokens = _line()[:, :4].copy()
    before = ctl.measure_before(tokens)
    assert (before[0] == NOT_KNOWN).all()  # nothing heard yet: the defaults, flagged not known
    assert (before[1:, ctl.INDEX["measured"]] == 1).all()
    changed = tokens.copy()
    changed[20, 0], changed[30:, 0] = 90, 40  # the note itself and everything after it
    again = ctl.measure_before(changed)
    assert np.array_equal(again[:21], before[:21]) and not np.array_equal(again[21], before[21])
    # quarter notes C D E ...: a window of the 8 beats before, one onset a beat, the mean of what was played
    scale = np.array([[60 + (0, 2, 4, 5, 7, 9, 11)[i % 7], 8, 8, 4] for i in range(20)])
    rows = ctl.measure_before(scale)
    assert rows[12, ctl.INDEX["density"]] == pytest.approx(1.0) and rows[12, ctl.INDEX["polyphony"]] == 1.0
    assert rows[12, ctl.INDEX["register"]] == pytest.approx(scale[4:12, 0].mean())
    assert rows[12, ctl.PITCH_CLASS_SLICE].sum() == pytest.approx(1.0) and rows[12, ctl.INDEX["pc1"]] == 0.0


def test_key_shares_as_a_profile_tell_the_key_and_not_the_notes():
    from realtime.training.stagedata import key_profile, key_profiles_before

    line = _line()
    line[:, 0] = [60 + (0, 2, 4, 5, 7, 9, 11)[i % 7] + 12 * (i % 2) for i in range(len(line))]  # C major
    window = example(line, "melody", "folk")[1][:, ctl.PITCH_CLASS_SLICE]
    profile = example(line, "melody", "folk", key_shares="profile")[1][:, ctl.PITCH_CLASS_SLICE]
    assert not np.allclose(window[0], window[10])  # the notes around each one differ
    assert np.allclose(profile, profile[0]) and np.allclose(profile[0], key_profile(line[:, 0]))  # one row a line
    assert np.allclose(profile[0], ctl.key_histogram(frozenset((0, 2, 4, 5, 7, 9, 11)), 0))
    moved = line.copy()
    moved[:, 0] += 3  # the note itself leaves no trace: the same key's profile, whatever the line plays
    assert np.allclose(key_profile(moved[:, 0]), np.roll(profile[0], 3))
    # as a listener knows it: uniform until three pitch classes were heard, then the key of the notes before
    before = key_profiles_before(line[:, 0])
    assert np.allclose(before[:3], 1 / 12) and np.allclose(before[-1], profile[0])
    changed = line[:, 0].copy()
    changed[20:] = 61  # C# from note 20 on: rows up to 20 cannot know it
    assert np.array_equal(key_profiles_before(changed)[:21], before[:21])


def test_controls_measured_before_hear_only_the_notes_before_in_training_too():
    require_module("torch", "the train extra")
    from realtime.training.stage import line_example
    from realtime.training.stagedata import key_profiles_before

    line = _line()
    line[:, 0] = [60 + (0, 2, 4, 5, 7, 9, 11)[i % 7] + 12 * (i % 2) for i in range(len(line))]  # C major
    before = example(line, "melody", "folk", key_shares="profile", measured="before")[1]
    changed = line.copy()
    changed[20:, 0] = 49  # a low C# from note 20 on: no row up to 20 may know it
    after_change = example(changed, "melody", "folk", key_shares="profile", measured="before")[1]
    assert np.array_equal(before[:21], after_change[:21]) and not np.array_equal(before[21:], after_change[21:])
    assert np.allclose(before[:, ctl.PITCH_CLASS_SLICE], key_profiles_before(line[:, 0]))
    assert np.allclose(before[0, :ctl.MEASURED], NOT_KNOWN[:ctl.MEASURED])  # the first note: nothing heard yet
    assert before[:, ctl.INDEX["style_folk"]].all() and before[:, ctl.INDEX["role_melody"]].all()
    # augmented: the key rows made once for the line, rotated with it, are the moved line's own
    rng, rows = np.random.default_rng(5), key_profiles_before(line[:, 0])
    for _ in range(6):
        _, c, y = line_example(line, "melody", "folk", rng, key_shares="profile", measured="before", key_rows=rows)
        assert np.allclose(c[:, ctl.PITCH_CLASS_SLICE], key_profiles_before(y[:, 0]))
        assert np.allclose(c[:, :ctl.MEASURED][:, ctl.INDEX["register"]], ctl.measure_before(y)[:, ctl.INDEX["register"]])


def test_augmentation_moves_the_harmony_with_the_notes_and_drops_groups():
    require_module("torch", "the train extra")
    from realtime.training.stage import line_example

    line = _line()
    in_chord = (line[:, 4] >> (line[:, 0] % 12)) & 1
    rng = np.random.default_rng(3)
    for _ in range(20):
        _, c, y = line_example(line, "melody", "chorale", rng, drop=0.0)
        chord = c[:, ctl.CHORD_SLICE]
        assert (chord[np.arange(len(y)), y[:, 0] % 12] == in_chord).all()  # a chord tone stays a chord tone
        shift = int(y[0, 0] - line[0, 0])
        assert np.argmax(c[1, ctl.ROOT_SLICE]) == (line[1, 5] + shift) % 12
    dropped = line_example(line, "melody", "chorale", rng, drop=1.0)[1]
    assert dropped[:, ctl.MEASURED:].sum() == 0  # every group not known
    kept = [line_example(line, "melody", "chorale", rng, drop=0.5)[1][0, ctl.INDEX["style_chorale"]] for _ in range(200)]
    assert 0.35 < np.mean(kept) < 0.65


def test_measured_controls_dropped_to_their_defaults_leave_the_groups_and_a_card_can_hear_nothing():
    require_module("torch", "the train extra")
    from realtime.training.stage import line_example
    from realtime.training.stagecard import nothing_known

    line, rng = _line(), np.random.default_rng(4)
    blind = line_example(line, "melody", "chorale", rng, drop=0.0, drop_measured=1.0)[1]
    assert np.allclose(blind[:, :ctl.MEASURED], NOT_KNOWN[:ctl.MEASURED])  # the uniform key among them
    assert (blind[:, ctl.INDEX["measured"]] == 0).all()  # and flagged: the model can tell it from a real value
    assert blind[:, ctl.INDEX["style_chorale"]].all() and blind[:, ctl.INDEX["role_melody"]].all()
    heard = line_example(line, "melody", "chorale", rng, drop=0.0, drop_measured=0.0)[1]
    assert not np.allclose(heard[:, ctl.INDEX["register"]], ctl.DEFAULTS[ctl.INDEX["register"]])
    assert (heard[:, ctl.INDEX["measured"]] == 1).all()
    dropped = [line_example(line, "melody", "chorale", rng, drop=0.0, drop_measured=0.3)[1][0, ctl.INDEX["register"]]
               == ctl.DEFAULTS[ctl.INDEX["register"]] for _ in range(300)]
    assert 0.2 < np.mean(dropped) < 0.4
    nothing = nothing_known(heard)
    assert np.allclose(nothing[:, :ctl.MEASURED], NOT_KNOWN[:ctl.MEASURED]) and nothing[:, ctl.MEASURED:].sum() == 0
    assert not np.allclose(heard, nothing)  # the copy is changed, not the rows given


@pytest.mark.slow
def test_a_short_stage_run_exports_cards_that_list_the_groups_and_resumes(tmp_path, capsys):
    require_module("torch", "the train extra")
    from realtime.training.stage import StageConfig, train_stage

    cfg = StageConfig(corpus=["chorales"], limit=24, out_dir=str(tmp_path / "m"), checkpoint_dir=str(tmp_path / "c"),
                      hidden=32, layers=1, epochs=1, batch=16, progress=False)
    train_stage(cfg)
    cards = {p: json.loads((tmp_path / "m" / p).read_text()) for p in ("stage-lstm.json", "stage-lstm.int8.json")}
    for name, card in cards.items():
        names = [c["name"] for c in card["controls"]]
        assert names == list(ctl.CONTROL_NAMES) and card["training"]["roles"] == list(ctl.ROLES)
        lstm = card["metrics"]["lstm"]
        assert lstm["measured"]["graph"] == name.replace(".json", ".onnx") and np.isfinite(lstm["test"]["nll"])
        assert lstm["test_groups_not_known"]["notes"] == lstm["test"]["notes"]
        assert card["metrics"]["markov"]["best_order"] >= 1
    assert cards["stage-lstm.int8.json"]["fp32_nodes"] == ["/lstm/LSTM"] and "fp32_nodes" not in cards["stage-lstm.json"]
    assert cards["stage-lstm.json"]["metrics"]["lstm"]["test"] != cards["stage-lstm.int8.json"]["metrics"]["lstm"]["test"]
    _reexport_gives_the_same_graphs_and_figures(tmp_path / "m", tmp_path / "again")
    cfg.epochs = 2
    train_stage(cfg)
    assert "resuming after epoch 1" in capsys.readouterr().out


def _reexport_gives_the_same_graphs_and_figures(trained: Path, again: Path) -> None:
    """`python -m realtime.training.reexport`: the graphs written again from the weights and the card's
    record compute what the trained ones did, and their cards measure the same figures."""
    import onnxruntime as ort

    from realtime.training.reexport import main

    assert main([str(trained / "stage-lstm.onnx"), "--out-dir", str(again)]) == 0
    rng = np.random.default_rng(5)
    for name in ("stage-lstm.onnx", "stage-lstm.int8.onnx"):
        old, new = (ort.InferenceSession(str(d / name), providers=["CPUExecutionProvider"]) for d in (trained, again))
        feeds = {"note": np.column_stack([rng.integers(40, 80, 3), rng.integers(0, 8, (3, 3))]).astype(np.int64),
                 "control": np.tile(np.asarray(ctl.DEFAULTS, np.float32), (3, 1)),
                 "state": rng.normal(0, 0.3, (2, 1, 3, 32)).astype(np.float32)}
        for a, b in zip(old.run(None, feeds), new.run(None, feeds)):
            assert np.allclose(a, b, atol=1e-5)
        cards = [json.loads((d / name).with_suffix(".json").read_text())["metrics"]["lstm"] for d in (trained, again)]
        assert cards[1]["test"] == cards[0]["test"] and cards[1]["test_nothing_known"] == cards[0]["test_nothing_known"]


def test_reexport_names_what_it_cannot_use(tmp_path, capsys):
    require_module("torch", "the train extra")
    from realtime.training.reexport import main

    for suffix in (".onnx", ".json"):
        shutil.copy(models_dir() / f"game-lstm{suffix}", tmp_path / f"game-lstm{suffix}")
    assert main([str(tmp_path / "game-lstm.onnx")]) == 2
    assert "no game-lstm.weights.npz beside it" in capsys.readouterr().err
    shutil.copy(models_dir() / "game-lstm.weights.npz", tmp_path / "game-lstm.weights.npz")
    assert main([str(tmp_path / "game-lstm.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reexport: ") and "not a stage model" in err and "\n" not in err
    card = json.loads((models_dir() / "stage-lstm.json").read_text())
    (tmp_path / "stage-lstm.json").write_text(json.dumps(card))
    shutil.copy(models_dir() / "game-lstm.weights.npz", tmp_path / "stage-lstm.weights.npz")  # another model's
    shutil.copy(models_dir() / "stage-lstm.onnx", tmp_path / "stage-lstm.onnx")
    assert main([str(tmp_path / "stage-lstm.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert "stage-lstm.weights.npz: not the weights its card describes" in err and "\n" not in err
    (tmp_path / "stage-lstm.json").write_text("{ broken")
    assert main([str(tmp_path / "stage-lstm.onnx")]) == 2
    assert "stage-lstm.json: metadata is not valid JSON" in capsys.readouterr().err


def test_lines_of_keeps_every_line_with_its_style():
    pieces = {"b": {"style": "irish", "lines": [("melody", np.zeros((3, 6)))]},
              "a": {"style": "chorale", "lines": [("melody", np.zeros((2, 6))), ("bass", np.ones((2, 6)))]}}
    assert [(len(a), r, s) for a, r, s in lines_of(pieces)] == [(2, "melody", "chorale"), (2, "bass", "chorale"),
                                                               (3, "melody", "irish")]


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SHIPPED = models_dir() / "stage-lstm.int8.onnx"


def _benchmark(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not SHIPPED.exists(), reason="models/stage-lstm.int8.onnx is not shipped")
def test_the_shipped_card_lists_its_groups_and_figures_measured_on_each_graph():
    cards = [json.loads(SHIPPED.with_name(n).read_text()) for n in ("stage-lstm.json", "stage-lstm.int8.json")]
    for card in cards:
        assert [c["name"] for c in card["controls"]] == list(ctl.CONTROL_NAMES)
        assert set(card["training"]["styles"]) == set(ctl.STYLES) and card["training"]["subsets"]
        lstm = card["metrics"]["lstm"]
        assert lstm["measured"]["precision"] == card["precision"]
        # the groups are worth something on held-out lines: hearing them lowers the pitch NLL
        assert lstm["test"]["pitch_nll"] < lstm["test_groups_not_known"]["pitch_nll"] - 0.02
        # told nothing but the notes (measured controls flagged not known, groups zeros) it beats the Markov
        # baseline the card chose on validation: measured 1.778 against 1.913 (int8)
        assert lstm["test_nothing_known"]["pitch_nll"] < card["metrics"]["markov"]["best_test_pitch_nll"]
    assert cards[0]["metrics"]["lstm"]["test"]["nll"] != cards[1]["metrics"]["lstm"]["test"]["nll"]
    # the first LSTM stays fp32 (its input holds the controls): int8 then costs little (measured 1.299 -> 1.303;
    # with every layer int8 it was 0.744)
    assert cards[1]["fp32_nodes"] == ["/lstm/LSTM"]
    assert cards[1]["metrics"]["lstm"]["test"]["pitch_nll"] < cards[0]["metrics"]["lstm"]["test"]["pitch_nll"] + 0.03


@pytest.mark.slow
@pytest.mark.skipif(not SHIPPED.exists(), reason="models/stage-lstm.int8.onnx is not shipped")
def test_the_harmony_benchmark_quick_the_model_hears_the_chords(tmp_path):
    out = tmp_path / "h.json"
    results = _benchmark("stage_harmony").main(["--quick", "--json", str(out)])
    assert json.loads(out.read_text())["headline"] == results["headline"]
    share = {k: v["share"] for k, v in results["table"].items()}
    assert set(share) == {"real sopranos", "model hearing the harmony", "model, harmony not known"}
    assert all(v["notes_on_beat"] > 50 for v in results["table"].values())
    # measured (quick, 3 chorales): hearing 72%, not known 37%, real 70%
    assert share["model hearing the harmony"] > share["model, harmony not known"] + 0.15


@pytest.mark.slow
@pytest.mark.skipif(not SHIPPED.exists(), reason="models/stage-lstm.int8.onnx is not shipped")
def test_the_roles_benchmark_quick_every_control_moves_every_voice(tmp_path):
    results = _benchmark("stage_roles").main(["--quick", "--json", str(tmp_path / "r.json")])
    assert set(results["table"]) == {"melody", "bass", "inner"}
    for role, sweeps in results["table"].items():
        assert set(sweeps) == {"register", "density", "dynamics"}
        for name, m in sweeps.items():
            assert m["spearman"] > 0.6, (role, name, m)  # measured (quick) 0.87-0.99
            assert m["means"][-1] > m["means"][0], (role, name, m)
