"""`realtime run` as a separate process over real OSC: a patch reloaded (SIGHUP) mid-answer ends every
note of the old patch before the new one starts; a broken reload is refused and the old patch plays on."""

from __future__ import annotations

import signal
import time

from pythonosc.udp_client import SimpleUDPClient
from test_run_osc import Listener, _free_port, _start


def _play_phrase(player, pitches=(67, 71, 74, 72, 71)):
    for pitch in pitches:
        player.send_message("/note/on", [pitch, 90])
        time.sleep(0.1)
        player.send_message("/note/off", [pitch])


def _wait(predicate, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def _stderr_line(proc, needle, timeout_s=10.0):
    """Read the process's stderr until a line containing needle (the status line goes to stdout)."""
    deadline = time.monotonic() + timeout_s
    lines = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return line
    raise AssertionError(f"no {needle!r} on stderr: {lines}")


def _stdout_line(proc, needle, timeout_s=15.0):
    deadline = time.monotonic() + timeout_s
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
        if needle in line:
            return line
    raise AssertionError(f"no {needle!r} on stdout: {seen[-2000:]}")


def test_reloading_the_patch_mid_answer_ends_every_note_and_the_new_patch_answers(tmp_path):
    listener, osc_in = Listener(), _free_port()
    proc = _start(tmp_path, listener, osc_in)
    try:
        player = SimpleUDPClient("127.0.0.1", osc_in)
        _play_phrase(player)
        assert _wait(lambda: len(listener.ons()) >= 3 and listener.held()), "answering, a note sounding"
        patch = tmp_path / "osc.toml"
        patch.write_text(patch.read_text().replace("[engine]\n", "[engine]\nseed = 11\n"))
        proc.send_signal(signal.SIGHUP)
        _stdout_line(proc, "reloaded")
        assert listener.held() == set(), "every note of the old patch was ended before the new one started"
        reloaded_at = time.monotonic()
        _play_phrase(player, (60, 64, 67))
        assert _wait(lambda: listener.ons(after=reloaded_at + 0.3)), "the reloaded patch answers"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    time.sleep(0.1)
    assert listener.held() == set()
    listener.server.shutdown()


def test_a_broken_reload_is_refused_in_one_line_and_the_old_patch_plays_on(tmp_path):
    listener, osc_in = Listener(), _free_port()
    proc = _start(tmp_path, listener, osc_in)
    try:
        patch = tmp_path / "osc.toml"
        patch.write_text(patch.read_text() + "\n[engine\n")
        proc.send_signal(signal.SIGHUP)
        line = _stderr_line(proc, "reload refused")
        assert str(patch) in line and "TOML syntax error" in line
        player = SimpleUDPClient("127.0.0.1", osc_in)
        _play_phrase(player)
        assert _wait(lambda: len(listener.ons()) >= 2), "the previous patch still answers"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err
    time.sleep(0.1)
    assert listener.held() == set()
    listener.server.shutdown()
