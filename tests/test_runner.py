import json
import shutil

import numpy as np
import pytest

from realtime.errors import ModelFileError
from realtime.model.generator import ModelRunner
from realtime.model.modelfile import N_LOGITS, field_slices


def _copy(model, tmp_path):
    target = tmp_path / model.name
    shutil.copy(model, target)
    shutil.copy(model.with_suffix(".json"), target.with_suffix(".json"))
    return target


def _reject(path, *expected):
    with pytest.raises(ModelFileError) as info:
        ModelRunner(path)
    message = str(info.value)
    assert "\n" not in message and path.stem in message  # names the graph or its .json
    for part in expected:
        assert part in message
    return message


def test_steps_with_carried_state_and_restores_it(shipped_model):
    runner = ModelRunner(shipped_model)
    assert runner.start().shape == (1, N_LOGITS)
    runner.step(67, 5, 4, 4)
    saved = runner.get_state()
    a = runner.step(69, 5, 4, 4).copy()
    runner.step(71, 5, 4, 4)
    runner.reset(saved)
    assert np.array_equal(runner.step(69, 5, 4, 4), a)
    runner.reset()
    runner.start()
    assert not np.allclose(runner.step(69, 5, 4, 4), a), "the state must carry the earlier notes"


def test_every_field_gets_its_logits():
    slices = field_slices()
    assert [s.stop - s.start for s in slices.values()] == [128, 15, 14, 8]
    assert max(s.stop for s in slices.values()) == N_LOGITS


def test_truncated_graph_is_rejected(shipped_model, tmp_path):
    path = _copy(shipped_model, tmp_path)
    path.write_bytes(path.read_bytes()[:5000])
    _reject(path, "sha256")


def test_corrupt_graph_with_matching_hash_is_rejected(shipped_model, tmp_path):
    import hashlib

    path = _copy(shipped_model, tmp_path)
    path.write_bytes(b"this is not an onnx file" * 100)
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_suffix(".json").write_text(json.dumps(meta))
    _reject(path, "not a loadable ONNX graph")


def test_metadata_that_does_not_match_the_graph_is_rejected(shipped_model, tmp_path):
    path = _copy(shipped_model, tmp_path)
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["signature"]["dims"]["hidden"] += 1
    path.with_suffix(".json").write_text(json.dumps(meta))
    _reject(path, "shape")


def test_missing_or_broken_metadata_is_rejected(shipped_model, tmp_path):
    path = _copy(shipped_model, tmp_path)
    path.with_suffix(".json").write_text("{ not json")
    _reject(path, "not valid JSON")
    path.with_suffix(".json").unlink()
    _reject(path, "missing")


def test_unknown_model_name_lists_the_shipped_ones():
    with pytest.raises(ModelFileError, match="bach-folk-lstm"):
        ModelRunner("no-such-model")


def _styled(runner, style):
    from realtime.model.controls import set_one_hot

    set_one_hot(runner.controls[0], runner.control_index, "style_", style)


def test_style_guidance_pushes_the_logits_away_from_the_unstyled_ones_and_changes_nothing_without_a_style():
    # fp32: int8 graphs quantize activations per call, so there a stream's twin moves its figures a little
    plain, guided, unstyled = ModelRunner("stage-lstm"), ModelRunner("stage-lstm", guidance=2.0), ModelRunner("stage-lstm")
    assert guided.guidance == 2.0 and guided.state.shape[2] == 2  # the stream and its unstyled twin
    assert ModelRunner("bach-folk-lstm.int8", guidance=2.0).guidance == 0.0  # no styles: nothing to guide
    for runner in (plain, guided):
        _styled(runner, "chorale")
    notes = [(60, 3, 3, 4), (62, 3, 3, 4), (64, 5, 5, 4)]
    for note in notes:
        styled, without, pushed = (r.step(*note)[0].copy() for r in (plain, unstyled, guided))
        assert np.allclose(pushed, styled + 2.0 * (styled - without), atol=1e-4)
        assert np.abs(pushed - styled).max() > 0.3
    saved = guided.get_state()
    after = guided.step(65, 3, 3, 4)[0].copy()
    guided.reset(saved)
    assert np.array_equal(guided.step(65, 3, 3, 4)[0], after)  # both halves saved and restored
    no_style, fresh = ModelRunner("stage-lstm", guidance=4.0), ModelRunner("stage-lstm")
    for note in notes:
        assert np.allclose(no_style.step(*note)[0], fresh.step(*note)[0], atol=1e-5)  # twin = stream


def test_a_guided_batch_moves_only_the_streams_told_to():
    runner = ModelRunner("stage-lstm.int8", batch=3, guidance=2.0)
    runner.controls[:, runner.control_index["style_irish"]] = 1.0
    runner.start()
    before = runner.get_state()
    notes = np.tile(np.array([[67, 3, 3, 4]], np.int64), (3, 1))
    runner.step_some(notes, np.array([True, False, True]))
    moved = np.abs(runner.state - before).max(axis=(0, 1, 3)) > 0  # per row of the state's batch axis
    assert moved.tolist() == [True, False, True, True, False, True]  # each stream with its unstyled twin
