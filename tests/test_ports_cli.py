"""`realtime ports` as a user runs it, against a private JACK server."""

import subprocess
import sys

import rtmidi


def test_ports_lists_other_clients_per_backend(jack) -> None:
    keyboard = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "stage keyboard")
    keyboard.open_virtual_port("out")
    synth = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "stage synth")
    synth.open_virtual_port("in")
    try:
        done = subprocess.run([sys.executable, "-m", "realtime.cli", "ports"], capture_output=True, text=True,
                              timeout=60)
    finally:
        keyboard.delete()
        synth.delete()
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    jack_at = lines.index("jack:")
    assert lines[jack_at + 1] == "  inputs: 'stage keyboard:out'", "what the engine can listen to"
    assert lines[jack_at + 2] == "  outputs: 'stage synth:in'", "what it can play to"
    assert "coremidi" not in done.stdout and "winmm" not in done.stdout, "only backends built in here"
