"""Shared fixtures: the shipped model, a private JACK server, and the one way a test says it cannot run.

A test that needs something outside Python (a Debian package: jackd2, fluidsynth, liblo-tools, Pure
Data, PortAudio) or a package `./dev test` installs calls `require_tools` / `require_module` /
`missing`. On a developer's machine a missing piece skips the test with its reason. With
REALTIME_REQUIRE_SYSTEM=1 (set by .ci/run, where `./dev test` ran as root and installed everything)
it is a failure instead: a skip there would hide a broken set-up.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import sys

import pytest

from realtime.model.modelfile import models_dir

SHIPPED = "bach-folk-lstm.int8"
REQUIRE_VARIABLE = "REALTIME_REQUIRE_SYSTEM"


def required() -> bool:
    """Is every system and Python package the suite uses meant to be installed here (CI)?"""
    return os.environ.get(REQUIRE_VARIABLE, "") not in ("", "0")


def missing(reason: str) -> None:
    """Skip with `reason`, or fail with it when REALTIME_REQUIRE_SYSTEM is set."""
    if required():
        pytest.fail(f"{reason} ({REQUIRE_VARIABLE} is set, so a missing package is a failure)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require_tools(*tools: str, package: str) -> None:
    """The programs a test runs, from the Debian package named in the message when one is missing."""
    absent = [tool for tool in tools if shutil.which(tool) is None]
    if absent:
        missing(f"{', '.join(absent)} not installed (Debian package {package})")


def require_module(name: str, hint: str):
    """Import a Python package a test needs (`hint` says how to get it); returns the module."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"{name} not installed ({hint})")
    except OSError as err:  # the package is there but a system library it loads is not (PortAudio...)
        missing(f"{name} cannot load a system library: {err}")


@pytest.fixture(scope="session")
def shipped_model():
    path = models_dir() / f"{SHIPPED}.onnx"
    assert path.exists(), f"the shipped model {path} is missing"
    return path


@pytest.fixture(scope="session")
def stage_model(tmp_path_factory):
    """A stage model's graph and card (all 48 controls), untrained: ControlledNoteLSTM(32, 1) as torch makes it;
    what tests/test_styles*.py play until models/stage-lstm ships (plumbing, not music)."""
    torch = require_module("torch", "the train extra: pip install -e .[train]")
    from realtime.model import controls as ctl
    from realtime.training.export import export_all
    from realtime.training.lstm import ControlledNoteLSTM

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("stage")
    export_all(ControlledNoteLSTM(32, 1, ctl.LOW, ctl.HIGH).eval(), folder, "stage-test", {})
    return folder / "stage-test.int8.onnx"


@contextlib.contextmanager
def as_the_engine_process():
    """The test's main thread as `realtime run`'s: a short GIL switch interval, and SCHED_FIFO at the
    lowest priority, so no busy program preempts it while it holds the lock that the JACK callbacks of
    the engine and of the foreign clients in this process wait for (under two CPU burners they missed
    periods: events lost or read twice, a clock master's pulses late)."""
    from realtime import priority

    old_switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        with priority.raised("the test", priority.MAIN_PRIORITY, inherit=False):
            yield
    finally:
        sys.setswitchinterval(old_switch)


@pytest.fixture
def jack(monkeypatch: pytest.MonkeyPatch):
    """A private JACK dummy server (-p 64) for one test; $JACK_DEFAULT_SERVER points clients at it."""
    from jackserver import JackServer

    require_tools("jackd", "jack_wait", package="jackd2")
    with JackServer(period=256) as server, as_the_engine_process():
        for key, value in server.environ().items():
            monkeypatch.setenv(key, value)
        from realtime.io.midi import jack_watch

        jack_watch().poll()  # closes its client of the last test's server before this test opens any
        yield server
        _collect_while_the_server_lives()
    from realtime.io.jackwatch import release_dead_clients

    release_dead_clients()  # the server is gone: close what this process still holds of it, at once


@pytest.fixture
def jack256(monkeypatch: pytest.MonkeyPatch):
    """A private JACK server at 256 frames a period: the dummy driver keeps poor time at 64, so timing
    at a receiver is measured at 256."""
    from jackserver import JackServer

    require_tools("jackd", "jack_wait", "jack_midi_dump", "jack_midiseq", package="jackd2")
    with JackServer(period=256) as server, as_the_engine_process():
        for key, value in server.environ().items():
            monkeypatch.setenv(key, value)
        yield server
        _collect_while_the_server_lives()
    from realtime.io.jackwatch import release_dead_clients

    release_dead_clients()


def _collect_while_the_server_lives() -> None:
    """A jack.Client a test dropped without close() is closed by the garbage collector, whenever it runs: once
    that was inside a later test, after the client's server had stopped, and closing it there crashed the whole
    run (a segfault in jack.py's __del__ -> close, beside two CPU burners). Collect now, while the server runs."""
    import gc

    gc.collect()
