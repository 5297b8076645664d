"""`/style` live: `realtime run` as a user runs it, a stage model's graph (conftest's `stage_model`), real OSC
over UDP on loopback: a bad style refused in one line, a good one waiting for the next answer, then playing."""

from __future__ import annotations

import signal
import time

from pythonosc.udp_client import SimpleUDPClient
from test_run_osc import Listener as OscListener
from test_run_osc import _free_port, _phrase, _start


def test_slash_style_over_udp_into_realtime_run(stage_model, tmp_path):
    osc_in, heard = _free_port(), OscListener()
    proc = _start(tmp_path, heard, osc_in, f'style = "chorale"\n[model]\nname = "{stage_model}"')
    try:
        player = SimpleUDPClient("127.0.0.1", osc_in)
        player.send_message("/style", ["jazz"])  # refused in one line, chorale plays on
        player.send_message("/style", ["irish"])  # no tempo heard yet: no bar to wait for, the next answer
        time.sleep(1.2)  # two status lines (every 0.5 s) while it waits
        _phrase(player, (67, 71, 74, 72, 71, 69, 67), 90, 0.12)
        deadline = time.monotonic() + 8
        while len(heard.ons()) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(heard.ons()) >= 4, "the stage model answered over OSC"
        time.sleep(0.6)  # a status line after the answer began
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    assert "/style 'jazz': not a style of this model (its styles: chorale, irish, fiddle, folk)" in err
    lines = out.replace("\r", "\n").splitlines()
    assert any("style chorale -> irish at the bar" in line for line in lines), "waiting for the next answer"
    assert "style irish" in lines[-1] and "style chorale" not in lines[-1], lines[-1]
