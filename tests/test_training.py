"""Training side (needs the train extra): export parity, and a short real training run."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the train extra is not installed")

from realtime.model.runner import ModelRunner  # noqa: E402
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
    # the int8 variant is an approximation, but of the same function
    int8 = ModelRunner(tmp_path / "parity.int8.onnx")
    int8.step(60, 5, 4, 4)
    runner.reset()
    assert np.corrcoef(int8.logits[0], runner.step(60, 5, 4, 4)[0])[0, 1] > 0.9


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
