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
    def query(self):
        return {"inst": 1, "pitch": 60, "time": 0.1, "vel": 80.0}
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
