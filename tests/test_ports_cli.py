"""`realtime ports` as a user runs it, against a private JACK server."""

import subprocess
import sys


def jack_client(name: str, port: str, output: bool):
    import jack

    from jackclients import closed_if_setup_fails

    client = jack.Client(name, no_start_server=True)
    with closed_if_setup_fails(client):
        (client.midi_outports if output else client.midi_inports).register(port)
        client.activate()
    return client


def test_ports_lists_other_clients_per_backend(jack) -> None:
    # the other programs are JACK-Client clients: deleting a python-rtmidi JACK input races its own
    # process callback (rtmidi unregisters the port while JACK's thread may be reading it) and crashed
    # a full run here once with a segfault
    keyboard = jack_client("stage keyboard", "out", output=True)
    synth = jack_client("stage synth", "in", output=False)
    try:
        done = subprocess.run([sys.executable, "-m", "realtime.cli", "ports"], capture_output=True, text=True,
                              timeout=60)
    finally:
        for client in (keyboard, synth):
            client.deactivate()
            client.close()
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    jack_at = lines.index("jack:")
    assert lines[jack_at + 1] == "  inputs: 'stage keyboard:out'", "what the engine can listen to"
    assert lines[jack_at + 2] == "  outputs: 'stage synth:in'", "what it can play to"
    assert "coremidi" not in done.stdout and "winmm" not in done.stdout, "only backends built in here"
