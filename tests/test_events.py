import mido
import pytest

from realtime.errors import InputError
from realtime.events import Note, NoteSequence, read_midi, write_midi, write_midi_tracks


def _absolute(seq):
    return [(round(o, 6), round(n.duration, 6), n.pitch, n.velocity) for o, n in zip(seq.onsets(), seq.notes)]


def test_midi_file_round_trip_keeps_every_note(tmp_path):
    notes = [(0, 1, 60, 80), (0, 1, 64, 81), (0, 1, 67, 82), (1, 0.5, 72, 100), (1.5, 0.25, 71, 30),
             (1.75, 2, 69, 127), (4, 0.125, 21, 1), (4.5, 3, 108, 64)]
    seq = NoteSequence.from_absolute(notes, "beats", 93.0)
    write_midi(seq, tmp_path / "a.mid")
    back = read_midi(tmp_path / "a.mid")
    assert _absolute(back) == _absolute(seq)
    assert back.tempo_bpm == pytest.approx(93.0, abs=0.01)
    write_midi(back, tmp_path / "b.mid")
    assert _absolute(read_midi(tmp_path / "b.mid")) == _absolute(seq)


def test_reads_running_velocity_zero_offs_and_several_tracks(tmp_path):
    midi = mido.MidiFile(type=1, ticks_per_beat=96)
    for channel, pitch in ((0, 60), (9, 36)):
        track = mido.MidiTrack()
        track.append(mido.Message("note_on", note=pitch, velocity=90, channel=channel, time=96))
        track.append(mido.Message("note_on", note=pitch, velocity=0, channel=channel, time=48))
        midi.tracks.append(track)
    midi.save(tmp_path / "x.mid")
    seq = read_midi(tmp_path / "x.mid")
    assert _absolute(seq) == [(1.0, 0.5, 36, 90), (1.0, 0.5, 60, 90)]


def test_ms_and_beats_convert_both_ways():
    seq = NoteSequence([Note(60, 80, 0.0, 1.0), Note(62, 80, 0.5, 0.5)], "beats", 120.0)
    ms = seq.to_ms()
    assert [(n.ioi, n.duration) for n in ms.notes] == [(0.0, 500.0), (250.0, 250.0)]
    assert _absolute(ms.to_beats()) == _absolute(seq)


def test_multitrack_file_keeps_channels(tmp_path):
    a = NoteSequence.from_absolute([(0, 1, 60, 80)])
    b = NoteSequence.from_absolute([(2, 1, 67, 70)])
    write_midi_tracks([(a, 0), (b, 1)], tmp_path / "t.mid", 120.0)
    msgs = [m for m in mido.MidiFile(tmp_path / "t.mid") if m.type == "note_on"]
    assert [(m.channel, m.note) for m in msgs] == [(0, 60), (1, 67)]


@pytest.mark.parametrize("bad", [dict(pitch=128), dict(velocity=0), dict(duration=0.0), dict(ioi=-1.0)])
def test_out_of_range_notes_are_refused(bad):
    fields = dict(pitch=60, velocity=64, ioi=0.0, duration=1.0) | bad
    with pytest.raises(InputError):
        Note(**fields)


def test_unreadable_midi_names_the_file(tmp_path):
    path = tmp_path / "broken.mid"
    path.write_bytes(b"MThd\x00\x00garbage")
    with pytest.raises(InputError, match="broken.mid"):
        read_midi(path)
