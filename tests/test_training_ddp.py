"""`realtime train` under torchrun: two CPU processes (gloo), each on its shard, against one process."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require_module

torch = require_module("torch", "the train extra: pip install -e '.[train]'")

import torch.distributed as dist  # noqa: E402
from ddp_worker import BATCH, WINDOWS, batch_loss, fixed_data, fresh_model  # noqa: E402

from realtime.errors import RealtimeError  # noqa: E402
from realtime.events import NoteSequence, write_midi  # noqa: E402
from realtime.training.distributed import SINGLE, World, join  # noqa: E402
from realtime.training.lstm import ControlledNoteLSTM, NoteLSTM  # noqa: E402
from realtime.training.train import TrainConfig, evaluate, load_split, train_epoch  # noqa: E402

pytestmark = pytest.mark.torch

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--corpus", "", "--hidden", "32", "--layers", "1", "--window", "16", "--batch", "8", "--threads", "1",
        "--no-progress", "--name", "ddp"]


@pytest.fixture(scope="module")
def midi_dir(tmp_path_factory) -> Path:
    """Forty short random tunes as .mid files: a corpus that needs no music21 parsing."""
    folder = tmp_path_factory.mktemp("tunes")
    rng = np.random.default_rng(5)
    for i in range(40):
        onsets = np.cumsum(rng.choice([0.5, 1.0, 1.5], 120))
        notes = [(float(t), 0.5, int(p), int(v)) for t, p, v in zip(onsets, 55 + rng.integers(0, 20, 120).cumsum() % 24,
                                                                    rng.integers(40, 110, 120))]
        write_midi(NoteSequence.from_absolute(notes, "beats"), folder / f"tune{i:02d}.mid")
    split, _ = load_split(TrainConfig(corpus=[], midi_dir=str(folder)))
    assert len(split.valid) >= 2 and split.test, split.describe()  # two ranks each score a validation piece
    return folder


def torchrun(argv: list[str], cwd: Path, processes: int = 2) -> str:
    """Run `python -m torch.distributed.run` in cwd on a free port; its stdout (both ranks') once it exits 0."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes),
           "--master-addr", "127.0.0.1", "--master-port", str(port), *argv]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=150, env=env, cwd=cwd)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def train_under_torchrun(tmp: Path, midi: Path, *extra: str) -> str:
    """Train in tmp; the folders are relative (a checkpoint's config names them), so tmp can be copied."""
    return torchrun(["-m", "realtime.cli", "train", *TINY, "--midi-dir", str(midi), "--out-dir", "models",
                     "--checkpoint-dir", "ckpt", *extra], tmp)


def rank_logs(ckpt: Path) -> list[dict]:
    return [json.loads((ckpt / f"ddp.rank{r}.json").read_text()) for r in (0, 1)]


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory, midi_dir) -> tuple[Path, str]:
    """A finished one-epoch torchrun run of plain `realtime train` (resumed by a test below)."""
    tmp = tmp_path_factory.mktemp("ddp")
    return tmp, train_under_torchrun(tmp, midi_dir, "--epochs", "1")


@pytest.mark.parametrize("mode", ["plain", "controls"])
def test_two_ranks_train_disjoint_shards_and_rank_0_alone_writes(mode, one_epoch, midi_dir, tmp_path):
    if mode == "plain":
        tmp, out = one_epoch
    else:
        tmp, out = tmp_path, train_under_torchrun(tmp_path, midi_dir, "--epochs", "1", "--controls")
    ckpt, models = tmp / "ckpt", tmp / "models"
    for line in ("data: ", "epoch 1: train NLL", "exported "):  # printed by rank 0 only
        assert out.count(line) == 1, out
    assert out.count("markov: best order") == (mode == "plain")
    assert sorted(p.name for p in ckpt.iterdir()) == ["ddp.best.pt", "ddp.pt", "ddp.rank0.json", "ddp.rank1.json"]
    assert sorted(p.name for p in models.iterdir()) == ["ddp.int8.json", "ddp.int8.onnx", "ddp.json", "ddp.onnx",
                                                        "ddp.weights.npz"]
    card = json.loads((models / "ddp.json").read_text())
    assert card["training"]["distributed"]["processes"] == 2 and card["training"]["distributed"]["backend"] == "gloo"
    if mode == "plain":  # each precision's figures measured on its own graph (the game trainer does not yet)
        assert card["metrics"]["lstm"]["measured"]["precision"] == "fp32"
        assert json.loads((models / "ddp.int8.json").read_text())["metrics"]["lstm"]["measured"]["precision"] == "int8"

    first, second = rank_logs(ckpt)
    assert (first["rank"], second["rank"], first["processes"]) == (0, 1, 2)
    # both ranks cut the same windows, then each kept its own half: disjoint, equal, covering all but the odd one
    assert first["windows"] == second["windows"] and first["windows_sha256"] == second["windows_sha256"]
    a, b = set(first["shard"]), set(second["shard"])
    assert len(a) == len(b) == first["windows"] // 2 and not a & b
    assert a | b <= set(range(first["windows"])) and len(a | b) == first["windows"] - first["windows"] % 2
    assert first["batches"] == second["batches"] == -(-len(a) // 8)
    # the same figures, the same decisions, the same parameters on both ranks, as on the card
    assert first["history"] == second["history"] == card["metrics"]["lstm"]["history"]
    assert first["lr"] == second["lr"] and first["parameters_sha256"] == second["parameters_sha256"]
    # the validation NLL both ranks decided on is that of all validation pieces, not of one rank's share
    saved = torch.load(ckpt / "ddp.pt", weights_only=False)
    split, _ = load_split(TrainConfig(corpus=[], midi_dir=str(midi_dir)))
    if mode == "plain":
        model = NoteLSTM(32, 1)
        model.load_state_dict(saved["model"])
        valid = evaluate(model, split.valid)
    else:
        from realtime.model import controls as ctl
        from realtime.training.conditioned import evaluate as evaluate_controlled

        model = ControlledNoteLSTM(32, 1, ctl.LOW, ctl.HIGH)
        model.load_state_dict(saved["model"])
        valid = evaluate_controlled(model, split.valid)
    assert abs(valid["nll"] - first["history"][-1]["valid_nll"]) < 1e-9


def test_resuming_under_torchrun_continues_at_the_next_epoch_on_both_ranks(one_epoch, midi_dir, tmp_path):
    done, _ = one_epoch
    shutil.copytree(done / "ckpt", tmp_path / "ckpt")
    before = rank_logs(tmp_path / "ckpt")[0]["history"]
    out = train_under_torchrun(tmp_path, midi_dir, "--epochs", "2")
    assert out.count("resuming after epoch 1 from") == 1 and "epoch 1: train NLL" not in out
    assert out.count("epoch 2: train NLL") == 1
    for log in rank_logs(tmp_path / "ckpt"):
        assert log["resumed_after"] == 1 and log["epoch"] == 2
        assert len(log["history"]) == 2 and log["history"][0] == before[0]
    assert torch.load(tmp_path / "ckpt" / "ddp.pt", weights_only=False)["state"]["epoch"] == 2


def test_ddp_averages_gradients_like_one_process_on_both_batches(tmp_path):
    """Two ranks on batches A and B against one process on the mean of A's and B's gradients."""
    torchrun([str(ROOT / "tests" / "ddp_worker.py"), str(tmp_path)], tmp_path)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    x, y, pieces = fixed_data()

    def gradients(model, rows) -> tuple[list[torch.Tensor], float, int]:
        model.zero_grad()
        loss, n = batch_loss(model, x[rows], y[rows])
        loss.backward()
        return [p.grad.clone() for p in model.parameters()], loss.item(), n

    model = fresh_model()
    halves = [gradients(model, np.arange(r * BATCH, (r + 1) * BATCH))[0] for r in (0, 1)]
    mean = torch.cat([((ga + gb) / 2).reshape(-1) for ga, gb in zip(*halves)])
    for rank in ranks:
        assert np.abs(np.asarray(rank["averaged_grads"]) - mean.numpy()).max() < 1e-6

    # one train_epoch: rank r took every other window of the shared shuffled order; one Adam step
    order = np.random.default_rng(1).permutation(WINDOWS)
    shards = [order[r::2] for r in (0, 1)]
    assert [rank["shard"] for rank in ranks] == [sorted(s.tolist()) for s in shards]
    model = fresh_model()
    parts = [gradients(model, rows) for rows in shards]
    for p, ga, gb in zip(model.parameters(), parts[0][0], parts[1][0]):
        p.grad = (ga + gb) / 2
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    torch.optim.Adam(model.parameters(), lr=1e-2).step()
    expected = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy()
    train_nll = sum(loss * n for _, loss, n in parts) / sum(n for _, _, n in parts)
    valid = evaluate(model, pieces)
    for rank in ranks:
        assert np.abs(np.asarray(rank["parameters"]) - expected).max() < 1e-5
        assert abs(rank["train_nll"] - train_nll) < 1e-5
        assert abs(rank["valid"]["nll"] - valid["nll"]) < 1e-5 and rank["valid"]["notes"] == valid["notes"]


def test_one_process_trains_as_before(monkeypatch):
    """Without torchrun: no process group, every window in the plain shuffled order, the odd batch kept."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    world = join()
    assert not world.active and world.main and not dist.is_initialized()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not join().active and not dist.is_initialized()

    x, y, _ = fixed_data()
    cfg = TrainConfig(batch=3, epochs=1, progress=False)
    ours = fresh_model()
    ours_nll = train_epoch(ours, torch.optim.Adam(ours.parameters(), lr=1e-2), (x,), y, np.random.default_rng(1),
                           cfg, 0, world)
    plain = fresh_model()  # the loop as it was before torchrun support
    optimizer = torch.optim.Adam(plain.parameters(), lr=1e-2)
    order, total, notes = np.random.default_rng(1).permutation(WINDOWS), 0.0, 0
    for b in range(0, WINDOWS, 3):
        loss, n = batch_loss(plain, x[order[b:b + 3]], y[order[b:b + 3]])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(plain.parameters(), 1.0)
        optimizer.step()
        total, notes = total + loss.item() * n, notes + n
    assert ours_nll == total / notes
    assert all(torch.equal(p, q) for p, q in zip(ours.parameters(), plain.parameters()))
    assert world is not SINGLE and world.log == {}  # nothing recorded for a rank log in one process


def test_one_process_run_writes_what_it_wrote_before(monkeypatch, midi_dir, tmp_path, capsys):
    """`realtime train` without torchrun: no rank logs, no `distributed` on the card, every line printed once."""
    from realtime.cli import main

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["train", *TINY, "--midi-dir", str(midi_dir), "--epochs", "1", "--out-dir", "models",
                 "--checkpoint-dir", "ckpt"]) == 0
    out = capsys.readouterr().out
    assert out.count("epoch 1: train NLL") == 1 and out.count("markov: best order") == 1
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["ddp.best.pt", "ddp.pt"]
    card = json.loads((tmp_path / "models" / "ddp.json").read_text())
    assert "distributed" not in card["training"] and len(card["metrics"]["lstm"]["history"]) == 1
    assert not dist.is_initialized()


def test_shards_are_disjoint_with_equal_batch_counts_whatever_the_window_count():
    """A rank with one batch more than the others would wait forever in DDP's all-reduce."""
    for windows in (32, 33, 35):
        order = np.random.default_rng(windows).permutation(windows)
        for size in (2, 3):
            shards = [World(rank=r, size=size).batches(order, 4) for r in range(size)]
            assert len({len(batches) for batches in shards}) == 1, (windows, size)
            ids = [np.concatenate(batches) for batches in shards]
            assert all(len(i) == windows // size for i in ids)
            assert len(set(np.concatenate(ids))) == windows // size * size  # disjoint; fewer than `size` left out
        alone = World().batches(order, 4)
        assert np.array_equal(np.concatenate(alone), order) and len(alone[-1]) == (windows % 4 or 4)


def test_a_half_set_torchrun_environment_is_named(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RealtimeError, match="RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT is not set.*torchrun"):
        join()
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "1")
    with pytest.raises(RealtimeError, match="--backend 'mpi'"):
        join("mpi")
