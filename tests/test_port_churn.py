"""Inputs opened and closed while a keyboard floods them: no crash, whatever the backend.

Deleting a python-rtmidi input whose callback was set crashed whole test runs twice on a loaded machine
(`Fatal Python error: Segmentation fault` in `MidiIn.delete()`): JACK's thread was inside, or about to
enter, the callback while the object was freed. The engine's inputs no longer give rtmidi a callback
(rtmidi) or let JACK stop the callback before closing (JACK-Client). The churn runs in a child process,
so a crash shows as its exit status instead of killing the suite.

Each round's input gets a client name of its own. With three names taken in turn, a name came back about
0.5 s after its client closed, and twice in full runs beside CPU burners the child hung for 180 s in
libjack's jack_activate (its stack dump: the main thread in jack.Client.activate, the flood thread
sending). JACK2 keeps a semaphore per client name (/dev/shm/jack_sem.UID_SERVER_CLIENT), made and
removed with the client: a name taken again while the server still tears the old one down is the
suspected race (not reproduced in 20 runs of the churn alone beside two burners). The engine takes
a name again only when it reconnects after a port or server loss, seconds later.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHURN = textwrap.dedent("""
    import faulthandler, sys, threading, time
    faulthandler.dump_traceback_later(180, exit=True)  # a hang shows every thread's stack, not a bare timeout
    sys.path.insert(0, "tests")
    from jackclients import Keyboard
    from realtime.clock import SystemClock
    from realtime.io.midibackend import open_input

    backend, rounds = sys.argv[1], int(sys.argv[2])
    keys = Keyboard("flood")
    heard = [0]
    stop = threading.Event()

    def flood():
        pitch = 0
        while not stop.is_set():
            keys.send([0x90, 36 + pitch % 48, 100])
            keys.send([0x80, 36 + pitch % 48, 0])
            pitch += 1
            time.sleep(0.0002)

    for round_number in range(rounds):
        port = open_input(SystemClock(), None, backend, client_name=f"churn{round_number}")
        port.set_listener(lambda message, at: heard.__setitem__(0, heard[0] + 1))
        if round_number == 0:
            threading.Thread(target=flood, daemon=True).start()
        keys.play_into(port.name)
        time.sleep(0.02)
        port.close()
        keys.port.close_port()
    stop.set()
    print("heard", heard[0])
""")


@pytest.mark.parametrize("backend", ["jack", "jack-rtmidi"])
def test_inputs_close_under_a_flood_without_crashing(jack, backend: str) -> None:
    done = subprocess.run([sys.executable, "-c", CHURN, backend, "60"], cwd=ROOT, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-1500:]}"
    heard = int(done.stdout.split()[-1])
    assert heard > 60, "the flood reached the inputs while they were being closed"
