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
import time

import pytest

from realtime.childproc import interruptible
from realtime.model.modelfile import models_dir

# A suite started in the background (`./dev test &`, nohup, a CI runner's job) has SIGINT ignored, and
# every `realtime run` a test starts and stops with Ctrl-C would inherit that and hang until killed
interruptible()

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
    """A stage model's graph and card (all 49 controls), untrained: ControlledNoteLSTM(32, 1) as torch makes it;
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
    """A private JACK dummy server (256 frames a period) for one test; $JACK_DEFAULT_SERVER points clients at it."""
    yield from _private_server(monkeypatch, "jackd", "jack_wait")


@pytest.fixture
def jack256(monkeypatch: pytest.MonkeyPatch):
    """The same, for tests that also run JACK's example clients (timing at a receiver is measured at 256
    frames: the dummy driver keeps poor time at 64)."""
    yield from _private_server(monkeypatch, "jackd", "jack_wait", "jack_midi_dump", "jack_midiseq")


@contextlib.contextmanager
def private_jack(*tools: str):
    """The same server as a block, for a module-scoped fixture that needs JACK only while it records
    (tests/test_record.py: one live session, several offline checks of it). The environment it sets is
    undone when the block ends."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield from _private_server(monkeypatch, "jackd", "jack_wait", *tools)


LIBJACK_SAID: list[str] = []  # what the JACK-Client side's libjack printed (rtmidi's goes to jackwatch)


def libjack_cleaned_up_after_us() -> list[str]:
    """libjack's own clean-up of clients whose server died: it frees them, so whoever holds one (rtmidi,
    JACK-Client) later closes freed memory. It happens only when a client of a dead server was still open
    as a new one opened in the same process: a bug of ours, and the crash of issue 11. What libjack said
    since the last call is looked at once: the lists are emptied."""
    from realtime.io import jackwatch

    said = list(jackwatch._JACK_MESSAGES) + LIBJACK_SAID
    jackwatch._JACK_MESSAGES.clear()
    LIBJACK_SAID.clear()
    return [line for line in said if "still allocated" in line or "Cleanup client" in line]


def _private_server(monkeypatch: pytest.MonkeyPatch, *tools: str):
    import gc

    import jack as jack_client
    from jackserver import JackServer

    from realtime.io.jackwatch import release_dead_clients
    from realtime.io.midi import jack_watch

    require_tools(*tools, package="jackd2")
    jack_client.set_error_function(LIBJACK_SAID.append)
    with JackServer(period=256) as server, as_the_engine_process():
        for key, value in server.environ().items():
            monkeypatch.setenv(key, value)
        watch = jack_watch()
        if not watch.poll():  # closes its client of the last test's server before this test opens any
            pytest.fail(f"the JACK watch cannot connect to a fresh server {server.name}: "
                        f"libjack said {list(watch.messages)[-6:]} {LIBJACK_SAID[-6:]}", pytrace=False)
        with clients_closed_while_the_server_lives(monkeypatch):
            yield server
            gc.collect()  # a client held by a reference cycle closes now, while its server lives
    deadline = time.monotonic() + 2.0
    while watch.alive and time.monotonic() < deadline:
        time.sleep(0.005)  # the watch hears the shutdown on libjack's thread
    release_dead_clients()  # the server is gone: close what this process still holds of it, at once
    cleaned = libjack_cleaned_up_after_us()
    if cleaned:
        pytest.fail(f"libjack closed clients of ours itself (one of a dead server was still open): {cleaned}",
                    pytrace=False)


LEFT_OPEN: list[str] = []  # "test: client" for each JACK client a test left open (see below)


@contextlib.contextmanager
def clients_closed_while_the_server_lives(monkeypatch: pytest.MonkeyPatch):
    """Every jack.Client made in the block (by a test, a test client, the engine in this process) is closed
    before the block's server stops. One left open (a test that failed holds its clients in its traceback)
    was closed by the garbage collector inside a later test, after its server had gone, and that crashed the
    whole run (a segfault in jack.py's __del__ -> close, beside two CPU burners). The engine's own ports close
    the way they always do (JackPort.close); any other client is deactivated and closed here. A client a
    passing test left open is named in the run's summary (LEFT_OPEN), so the test can be mended."""
    import weakref

    import jack as jack_client
    from realtime.io import jackwatch

    made: weakref.WeakSet = weakref.WeakSet()
    opened = jack_client.Client.__init__

    def tracked(client, *args, **kwargs):
        opened(client, *args, **kwargs)
        made.add(client)

    monkeypatch.setattr(jack_client.Client, "__init__", tracked)
    try:
        yield
    finally:
        monkeypatch.setattr(jack_client.Client, "__init__", opened)
        for port in list(jackwatch._HELD):
            port.close()
        for client in list(made):
            if client._ptr:
                LEFT_OPEN.append(f"{os.environ.get('PYTEST_CURRENT_TEST', '?').split(' ')[0]}: {client.name}")
                client.deactivate()
                client.close()


LEFT_REGISTERED: list[str] = []  # "test: server" for each dead JACK server a test left in the registry


@pytest.fixture(autouse=True)
def _no_dead_server_left_registered(request):
    """A jackd that dies without leaving (killed: JackServer.stop's SIGKILL after 5 s, or a crash) keeps one
    of the registry's 8 slots; the run names the tests that left one (they are reclaimed when a start
    fails, at ~0.5 s each)."""
    from realtime.bench.jackd import stale_servers

    before = set(stale_servers())
    yield
    LEFT_REGISTERED.extend(f"{request.node.nodeid}: {name}" for name in set(stale_servers()) - before)


def pytest_terminal_summary(terminalreporter) -> None:
    if LEFT_REGISTERED:
        terminalreporter.write_line(f"dead JACK servers left in the registry: {', '.join(LEFT_REGISTERED)}")
    if RERUN:
        terminalreporter.write_line(f"run again after their own clients lost a period: {', '.join(RERUN)}")
    if LEFT_OPEN:
        terminalreporter.write_line(f"JACK clients left open by a test (closed by the fixture): {', '.join(LEFT_OPEN)}")


JACK_FIXTURES = {"jack", "jack256"}
RERUN: list[str] = []  # "test: what its clients lost" for each JACK test run again


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """A JACK test that fails while one of its own clients proves it lost a period (jackclients.HARNESS_MISSED:
    a receiver's frame count jumped, the dump's frames slipped) is run once more, and the second run's
    result stands; the summary names it. The proof is the harness's, never the engine's: a failure with no
    period lost, or the same failure again, is reported as it is."""
    if not JACK_FIXTURES & set(getattr(item, "fixturenames", ())):
        return None
    from _pytest.runner import runtestprotocol
    from jackclients import HARNESS_MISSED

    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    HARNESS_MISSED.clear()
    reports = runtestprotocol(item, nextitem=nextitem, log=False)
    if any(r.failed for r in reports) and HARNESS_MISSED:
        RERUN.append(f"{item.nodeid} ({'; '.join(HARNESS_MISSED[:2])})")
        HARNESS_MISSED.clear()
        item._initrequest()
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
    for report in reports:
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def pytest_runtest_logreport(report) -> None:
    """Name a failure the moment it happens, not only in the summary at the end: a run that dies (a
    segfault, CI's time limit) never prints its summary, and `-q` alone says only "F"."""
    if report.failed:
        reporter = _CONFIG[0].pluginmanager.get_plugin("terminalreporter") if _CONFIG else None
        lines = report.longreprtext.strip().splitlines() or ["?"]
        if reporter is not None:
            reporter.write_line(f"\nFAILED {report.nodeid} ({report.when}): {lines[-1][:200]}", red=True)


_CONFIG: list = []


def pytest_configure(config) -> None:
    _CONFIG.append(config)
