"""JACK's shared-memory registry holds 8 servers. A server that dies without leaving (killed, or its
parent crashed) keeps its slot, and once all 8 are held no jackd starts. The slots are reclaimed the way
jackd itself does it, by starting a server of each dead one's name, never by removing the registry
file: a process that has libjack loaded keeps its mapping of the file, and the last CI run failed every
in-process JACK test from the first removal on (JackOpenError 0x21 server_error, rtmidi "JACK server
not running?"). The scenario runs in a child process, so the suite's own libjack is not the one at stake."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import require_tools

ROOT = Path(__file__).resolve().parents[1]

SCENARIO = textwrap.dedent("""
    import os, signal, subprocess
    import jack, rtmidi
    from realtime.bench.jackd import JackServer, registered_servers, stale_servers

    def clients_open(server):
        os.environ.update(server.environ())
        client = jack.Client("probe", no_start_server=True)
        client.close()
        midi = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "probe-rtmidi")
        midi.delete()

    first = JackServer(period=256).start()
    clients_open(first)  # this process now has the registry mapped, as a test run has
    first.stop()
    # fill every free slot with a server that dies without leaving
    killed = []
    while len(registered_servers()) < 8:
        server = JackServer(period=256).start()
        server._process.send_signal(signal.SIGKILL)
        server._process.wait()
        killed.append(server.name)
    stale = set(stale_servers())
    assert set(killed) <= stale, (killed, stale)
    print("stale", len(stale))
    full = subprocess.run(["jackd", "-n", "one-too-many", "-d", "dummy", "-p", "256"], capture_output=True,
                          text=True, timeout=20)
    assert full.returncode != 0, "with every slot held no server starts"
    print("refused", full.returncode)
    last = JackServer(period=256).start()  # reclaims the dead servers' slots, then starts
    try:
        assert not set(killed) & set(stale_servers()), stale_servers()
        clients_open(last)  # the registry this process mapped is still the live one
        print("clients ok")
    finally:
        last.stop()
""")


def test_a_full_registry_is_reclaimed_and_this_process_can_still_open_clients() -> None:
    require_tools("jackd", "jack_wait", package="jackd2")
    done = subprocess.run([sys.executable, "-c", SCENARIO], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stdout[-800:]} {done.stderr[-1500:]}"
    lines = done.stdout.split("\n")
    assert "clients ok" in lines and any(line.startswith("refused") for line in lines), done.stdout
