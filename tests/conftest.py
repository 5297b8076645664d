"""Shared fixtures: the shipped model, and a fake-clock engine wired to memory ports."""

from __future__ import annotations

import sys

import pytest

from realtime.model.runner import models_dir

SHIPPED = "bach-folk-lstm.int8"


@pytest.fixture(scope="session")
def shipped_model():
    path = models_dir() / f"{SHIPPED}.onnx"
    assert path.exists(), f"the shipped model {path} is missing"
    return path


@pytest.fixture
def jack(monkeypatch: pytest.MonkeyPatch):
    """A private JACK dummy server (-p 64) for one test; $JACK_DEFAULT_SERVER points clients at it."""
    from jackserver import JackServer

    reason = JackServer.available()
    if reason:
        pytest.skip(reason)
    old_switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)  # as `realtime run` does: JACK callbacks in Python wait less for the GIL
    with JackServer() as server:
        for key, value in server.environ().items():
            monkeypatch.setenv(key, value)
        from realtime.io.midi import jack_watch

        jack_watch().poll()  # closes its client of the last test's server before this test opens any
        yield server
    from realtime.io.jackmidi import release_dead_clients

    release_dead_clients()  # the server is gone: close what this process still holds of it, at once
    sys.setswitchinterval(old_switch)


@pytest.fixture
def jack256(monkeypatch: pytest.MonkeyPatch):
    """A private JACK server at 256 frames a period: the dummy driver keeps poor time at 64, so timing
    at a receiver is measured at 256."""
    from jackserver import JackServer

    reason = JackServer.available()
    if reason:
        pytest.skip(reason)
    with JackServer(period=256) as server:
        for key, value in server.environ().items():
            monkeypatch.setenv(key, value)
        yield server
    from realtime.io.jackmidi import release_dead_clients

    release_dead_clients()
