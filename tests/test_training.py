"""Training side (needs the train extra): export parity, and a short real training run."""

import json

import numpy as np
import pytest
from conftest import require_module

torch = require_module("torch", "the train extra: pip install -e '.[train]'")

from realtime.model.generator import ModelRunner  # noqa: E402

from realtime.model.modelfile import field_slices
from realtime.model.tokens import FIELD_SIZES, FIELDS  # noqa: E402
from realtime.training.export import export_all  # noqa: E402
from realtime.training.lstm import NoteLSTM, SingleStep  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.mark.parametrize("hidden,layers", [(64, 1), (96, 2)])
def test_onnx_matches_torch_over_200_chained_steps(tmp_path, hidden, layers):
    torch.manual_seed(0)
    model = NoteLSTM(hidden, layers).eval()
    export_all(model, tmp_path, "parity", {})
    runner = ModelRunner(tmp_path / "parity.onnx")
    step = SingleStep(model).eval()
    rng = np.random.default_rng(0)
    state = torch.zeros(2, layers, 1, hidden)
    worst = 0.0
    with torch.no_grad():
        for _ in range(200):
            note = [int(rng.integers(0, FIELD_SIZES[f])) for f in FIELDS]
            logits, state = step(torch.tensor([note]), state)
            ours = runner.step(*note)
            worst = max(worst, float(np.abs(ours - logits.numpy()).max()),
                        float(np.abs(runner.get_state() - state.numpy()).max()))
    assert worst < 1e-4
    # The int8 variant approximates the same function, and its error must not build up in the carried
    # state. Measured over these 200 chained steps (both sizes) with 7-bit per-channel weights on an
    # AVX2 CPU without VNNI: each head's distribution within total variation 0.0014 of fp32, state
    # within 0.03, logit correlation >= 0.9997 (8-bit weights there: 0.025, 0.64, 0.95, as the CPU's
    # kernels saturate). Bounds with margin; a wrong graph or a state that drifts away fails all three.
    int8 = ModelRunner(tmp_path / "parity.int8.onnx")
    runner.reset()
    rng = np.random.default_rng(1)
    worst_tv = worst_state = 0.0
    lowest_correlation = 1.0
    for _ in range(200):
        note = [int(rng.integers(0, FIELD_SIZES[f])) for f in FIELDS]
        exact, approx = runner.step(*note)[0], int8.step(*note)[0]
        for head in field_slices().values():
            p, q = (np.exp(x[head] - x[head].max()) for x in (exact, approx))
            worst_tv = max(worst_tv, 0.5 * float(np.abs(p / p.sum() - q / q.sum()).sum()))
        worst_state = max(worst_state, float(np.abs(runner.get_state() - int8.get_state()).max()))
        lowest_correlation = min(lowest_correlation, float(np.corrcoef(exact, approx)[0, 1]))
    assert worst_tv < 0.01 and worst_state < 0.1 and lowest_correlation > 0.999, (worst_tv, worst_state,
                                                                                   lowest_correlation)


@pytest.mark.slow
def test_train_reports_both_models_exports_and_resumes(tmp_path, capsys):
    from realtime.training.train import TrainConfig, train

    cfg = TrainConfig(corpus=["chorales"], limit=24, out_dir=str(tmp_path / "models"), name="smoke",
                      checkpoint_dir=str(tmp_path / "ckpt"), hidden=32, layers=1, epochs=1, batch=16,
                      markov_orders=3, progress=False)
    metrics = train(cfg)
    assert set(metrics["markov"]["pitch_nll_by_order"]) == {1, 2, 3}
    for part in ("valid", "test"):
        result = metrics["lstm"][part]
        assert np.isfinite(result["nll"]) and 0 <= result["pitch_accuracy"] <= 1
    meta = json.loads((tmp_path / "models" / "smoke.json").read_text())
    assert meta["training"]["split"]["seed"] == 0 and meta["metrics"]["markov"]["best_order"] in (1, 2, 3)
    assert meta["tokenization"]["scheme"] == "note-factorized-v1" and meta["opset"] >= 17
    ModelRunner(tmp_path / "models" / "smoke.int8.onnx").start()

    cfg.epochs = 2
    second = train(cfg)
    out = capsys.readouterr().out
    assert "resuming after epoch 1" in out
    assert len(second["lstm"]["history"]) == 2
    assert "held-out test pitch NLL: LSTM" in out


def test_numpy_reference_matches_the_graph(tmp_path):
    from realtime.model.reference import NumpyLSTM, weights_path

    torch.manual_seed(1)
    export_all(NoteLSTM(48, 2).eval(), tmp_path, "ref", {})
    runner, reference = ModelRunner(tmp_path / "ref.onnx"), NumpyLSTM(weights_path(tmp_path / "ref.int8.onnx"))
    rng = np.random.default_rng(1)
    for _ in range(200):
        note = [int(rng.integers(0, FIELD_SIZES[f])) for f in FIELDS]
        assert np.abs(runner.step(*note) - reference.step(*note)).max() < 1e-4


def test_conditioned_graph_matches_torch_and_its_controls_steer(tmp_path):
    """The game model's export: a `control` input named on the card, same function as torch."""
    from realtime.model import controls as ctl
    from realtime.training.lstm import ControlledNoteLSTM, ControlledSingleStep

    torch.manual_seed(2)
    model = ControlledNoteLSTM(48, 2, ctl.LOW, ctl.HIGH).eval()
    export_all(model, tmp_path, "cond", {})
    meta = json.loads((tmp_path / "cond.json").read_text())
    assert [c["name"] for c in meta["controls"]][:4] == ["density", "polyphony", "register", "dynamics"]
    assert meta["signature"]["inputs"]["control"] == ["batch", ctl.N_CONTROLS]
    runner = ModelRunner(tmp_path / "cond.onnx", batch=2)
    assert runner.control_index["dynamics"] == 3
    step = ControlledSingleStep(model).eval()
    rng = np.random.default_rng(2)
    state = torch.zeros(2, 2, 2, 48)
    worst = 0.0
    with torch.no_grad():
        for _ in range(50):
            notes = np.array([[int(rng.integers(0, FIELD_SIZES[f])) for f in FIELDS] for _ in range(2)])
            controls = (ctl.LOW + rng.random((2, ctl.N_CONTROLS)) * (ctl.HIGH - ctl.LOW)).astype(np.float32)
            logits, state = step(torch.from_numpy(notes), torch.from_numpy(controls), state)
            ours = runner.step_batch(notes, controls)
            worst = max(worst, float(np.abs(ours - logits.numpy()).max()))
    assert worst < 1e-4
    import onnx
    nodes = [n.op_type for n in onnx.load(str(tmp_path / "cond.onnx")).graph.node]
    assert len(nodes) <= 16 and nodes.count("LSTM") == 2, nodes  # written node by node: the tracer made 47
    # the same note with different controls gives different predictions: the input is wired through
    runner.reset()
    a = runner.step_batch(np.array([[60, 5, 4, 4]] * 2), np.stack([ctl.LOW, ctl.HIGH]).astype(np.float32))
    assert not np.allclose(a[0], a[1])


def test_controls_measured_from_data():
    from realtime.model import controls as ctl

    # a bar of quarter notes then a bar of eighths, C major triad tones, velocity bucket 4 (80)
    tokens = np.array([[60, 8, 7, 4]] * 8 + [[64, 5, 4, 4]] * 16 + [[67, 5, 4, 4]] * 8)
    c = ctl.measure(tokens)
    assert c.shape == (len(tokens), ctl.N_CONTROLS)
    assert c[0, ctl.INDEX["density"]] < c[-1, ctl.INDEX["density"]]  # quarters, then eighths
    assert np.allclose(c[:, ctl.INDEX["dynamics"]], 80) and np.allclose(c[:, ctl.PITCH_CLASS_SLICE].sum(1), 1)
    assert np.all(c[:, ctl.INDEX["polyphony"]] == 1.0)


@pytest.mark.parametrize("argv,kind,hidden,name", [
    (["train"], "TrainConfig", 256, "bach-folk-lstm"),
    (["train", "--hidden", "64"], "TrainConfig", 64, "bach-folk-lstm"),
    (["train", "--controls"], "ConditionedConfig", 128, "game-lstm"),
    (["train", "--controls", "--hidden", "256"], "ConditionedConfig", 256, "game-lstm"),  # was silently 128
    (["train", "--controls", "--name", "bach-folk-lstm"], "ConditionedConfig", 128, "bach-folk-lstm"),
    (["train", "--stage"], "StageConfig", 128, "stage-lstm"),
])
def test_train_flags_given_always_win_and_the_rest_keep_the_configs_defaults(argv, kind, hidden, name):
    from realtime.cli import build_parser, train_config
    from realtime.training.conditioned import ConditionedConfig
    from realtime.training.stage import StageConfig
    from realtime.training.train import TrainConfig

    cfg = train_config(build_parser().parse_args(argv + ["--no-progress"]))
    assert type(cfg).__name__ == kind and cfg.hidden == hidden and cfg.name == name and not cfg.progress
    defaults = {"ConditionedConfig": ConditionedConfig, "StageConfig": StageConfig}.get(kind, TrainConfig)()
    assert (cfg.epochs, cfg.threads, cfg.layers, cfg.corpus) == (defaults.epochs, defaults.threads, defaults.layers,
                                                                 defaults.corpus)
    given = train_config(build_parser().parse_args(argv + ["--epochs", "3", "--threads", "2", "--corpus", "chorales"]))
    assert (given.epochs, given.threads, given.corpus) == (3, 2, ["chorales"])


def test_key_shares_and_max_minutes_reach_the_stage_config_and_are_refused_where_they_mean_nothing():
    from realtime.cli import build_parser, train_config
    from realtime.errors import RealtimeError

    parse = build_parser().parse_args
    cfg = train_config(parse(["train", "--stage", "--key-shares", "profile", "--max-minutes", "12", "--no-progress"]))
    assert (cfg.key_shares, cfg.max_minutes) == ("profile", 12.0)
    assert train_config(parse(["train", "--stage", "--no-progress"])).key_shares == "profile"
    assert train_config(parse(["train", "--stage", "--key-shares", "window", "--no-progress"])).key_shares == "window"
    assert train_config(parse(["train", "--controls", "--max-minutes", "3", "--no-progress"])).max_minutes == 3.0
    with pytest.raises(RealtimeError, match="--key-shares is a stage model's choice"):
        train_config(parse(["train", "--controls", "--key-shares", "profile"]))
    with pytest.raises(RealtimeError, match="--max-minutes applies to --controls and --stage"):
        train_config(parse(["train", "--max-minutes", "3"]))
    with pytest.raises(SystemExit):
        parse(["train", "--stage", "--key-shares", "notes"])
    assert train_config(parse(["train", "--stage", "--measured", "before", "--no-progress"])).measured == "before"
    assert train_config(parse(["train", "--stage", "--no-progress"])).measured == "around"
    with pytest.raises(RealtimeError, match="--measured is a stage model's choice"):
        train_config(parse(["train", "--controls", "--measured", "before"]))


def test_int8_keeps_the_nodes_it_is_told_in_fp32_and_names_one_it_cannot_find(tmp_path):
    import onnx

    from realtime.training.export import quantize_int8

    export_all(NoteLSTM(32, 2).eval(), tmp_path, "mixed", {}, keep_fp32=("/lstm/LSTM",))
    ops = {n.name: n.op_type for n in onnx.load(str(tmp_path / "mixed.int8.onnx")).graph.node}
    assert ops["/lstm/LSTM"] == "LSTM" and "DynamicQuantizeLSTM" in ops.values()
    assert json.loads((tmp_path / "mixed.int8.json").read_text())["fp32_nodes"] == ["/lstm/LSTM"]
    with pytest.raises(ValueError, match="no node named /lstm/LSTM_9 to keep in fp32"):
        quantize_int8(tmp_path / "mixed.onnx", tmp_path / "x.onnx", ("/lstm/LSTM_9",))
