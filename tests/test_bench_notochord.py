"""Notochord's side of the comparison: its environment is built apart, and failure to build it is one line."""

from __future__ import annotations

import os
import textwrap

import pytest
from conftest import require_module

from realtime.bench.notochord_env import READY, NotochordUnavailable, NotochordWorker, ensure_env


def test_an_environment_that_cannot_be_built_says_why_in_one_line(tmp_path, monkeypatch):
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no index, no local wheels: pip must fail at once
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    folder = tmp_path / "notochord-venv"
    with pytest.raises(NotochordUnavailable) as caught:
        ensure_env(folder, timeout_s=120)
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert "pip install torch==2.13.0" in message and "failed" in message
    assert not (folder / READY).exists()  # never mistaken for a finished environment


FAKE_NOTOCHORD = '''
import torch
from torch import nn

class Notochord(nn.Module):
    """Stands in for the real model: same calls, a small GRU, counts what it is fed."""
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(8, 16, 2)
        self.fed = 0
    def reset(self):
        self.state = torch.zeros(2, 1, 16)
    def feed(self, inst, pitch, time, vel):
        x = torch.full((1, 1, 8), float(pitch))
        _, self.state = self.rnn(x, self.state)
        self.fed += 1
    def query(self, next_inst=None):
        return {"inst": next_inst or 1, "pitch": 60, "time": 0.1, "vel": 80.0}
'''


def test_the_worker_times_feed_then_query_events_on_request(tmp_path, monkeypatch):
    require_module("torch", "the fake Notochord needs the train extra: pip install -e '.[train]'")
    import sys

    (tmp_path / "notochord.py").write_text(textwrap.dedent(FAKE_NOTOCHORD))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with NotochordWorker(sys.executable, threads=1) as worker:
        assert worker.info["ready"] and worker.info["threads"] == 1
        assert worker.info["rnn_parameters"] == sum(p.numel() for p in __import__("torch").nn.GRU(8, 16, 2).parameters())
        first, second = worker.run(5), worker.run(3)
        assert len(first) == 5 and len(second) == 3 and all(ns > 0 for ns in first + second)
    assert worker.proc.returncode == 0


def test_without_notochord_the_benchmark_is_skipped_not_ok_with_nothing_in_it(tmp_path, monkeypatch):
    from pathlib import Path

    from realtime.bench.runner import run_script

    empty = tmp_path / "no-wheels"
    empty.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    monkeypatch.setenv("REALTIME_BENCH_CACHE", str(tmp_path / "cache"))
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "notochord.py"
    entry = run_script(script, tmp_path / "out", quick=True, timeout_s=240)
    assert entry["status"] == "skipped", entry
    assert entry["reason"].startswith("Notochord not timed: pip install torch==2.13.0") and "failed" in entry["reason"]
    assert entry["results"]["notochord_speedup"] is None and "engine" not in entry["results"]


MAC_MODEL = '''
import torch
from torch import nn

class Notochord(nn.Module):
    """A GRU called through .forward (as Notochord's GenericRNN does) and one linear head."""
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(8, 16, 2, batch_first=True)
        self.head = nn.Linear(16, 5)
    def reset(self):
        self.state = torch.zeros(2, 1, 16)
    def feed(self, inst, pitch, time, vel):
        out, self.state = self.rnn.forward(torch.full((1, 1, 8), float(pitch)), self.state)
        self.out = out
    def query(self, next_inst=None):
        assert next_inst == 1  # the player's instrument, fixed
        self.head(self.out)
        return {"inst": next_inst, "pitch": 60, "time": 0.1, "vel": 80.0}
'''


@pytest.mark.parametrize("int8", [False, True])
def test_the_worker_counts_multiply_adds_and_runs_torch_int8(tmp_path, monkeypatch, int8):
    require_module("torch", "the fake Notochord needs the train extra: pip install -e '.[train]'")
    import sys

    (tmp_path / "notochord.py").write_text(textwrap.dedent(MAC_MODEL))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with NotochordWorker(sys.executable, threads=1, int8=int8) as worker:
        gru = 3 * 16 * (8 + 16) + 3 * 16 * (16 + 16)
        assert worker.info["multiply_adds_per_event"] == gru + 16 * 5
        assert worker.info["query"] == "query(next_inst=1)"
        assert worker.info["precision"].startswith("int8" if int8 else "fp32")
        assert len(worker.run(4)) == 4
