"""Shared fixtures: the shipped model, and a fake-clock engine wired to memory ports."""

from __future__ import annotations

import pytest

from realtime.model.runner import models_dir

SHIPPED = "bach-folk-lstm.int8"


@pytest.fixture(scope="session")
def shipped_model():
    path = models_dir() / f"{SHIPPED}.onnx"
    assert path.exists(), f"the shipped model {path} is missing"
    return path
