"""session.mid of a recorded or replayed session: a tempo map, the player, one track per engine voice.

Notes are (ns, pitch, velocity, channel) on the engine's clock; the file's tick 0 is the session's
origin. The tempo track follows the engine's tempo changes (a game's sections, /transport/tempo, a
MIDI clock it follows), so a DAW shows the music at its own tempo; each note's tick is computed from
the tempo map as a reader walks it, so onsets stay within half a tick (under 0.05 ms at 132 BPM)
however many tempo changes come before them.
"""

from __future__ import annotations

from pathlib import Path

import mido

TICKS_PER_BEAT = 9600  # a tick is under 0.32 ms at 20 BPM: MIDI onsets keep sub-millisecond timing


class TempoMap:
    """ns <-> file ticks through piecewise-constant tempos, each as the integer µs per beat a file holds."""

    def __init__(self, origin_ns: int, tempo_bpm: float, changes: list[tuple[int, float]] = ()) -> None:
        self.origin_ns = origin_ns
        tempo = mido.bpm2tempo(tempo_bpm)
        self.segments = [(0, 0.0, tempo)]  # (first tick, its time in ns after the origin, µs per beat)
        for at_ns, bpm in sorted((max(origin_ns, at), bpm) for at, bpm in changes):
            tempo = mido.bpm2tempo(bpm)
            if tempo == self.segments[-1][2]:
                continue
            tick = self.tick_at(at_ns)
            start_tick, start_ns, previous = self.segments[-1]
            at = start_ns + (tick - start_tick) * previous * 1000 / TICKS_PER_BEAT
            if tick == start_tick:
                self.segments[-1] = (tick, at, tempo)
            else:
                self.segments.append((tick, at, tempo))

    def tick_at(self, ns: int) -> int:
        """The tick a reader of the file places nearest to a moment."""
        elapsed = ns - self.origin_ns
        tick, start_ns, tempo = self.segments[0]
        for segment in self.segments:
            if segment[1] > elapsed:
                break
            tick, start_ns, tempo = segment
        return max(0, tick + round((elapsed - start_ns) * TICKS_PER_BEAT / (tempo * 1000)))


def voice_labels(patch) -> dict[int, str]:
    """Channel (0-based) -> what plays on it: a game's voice names and "stingers"; nothing for a duet."""
    if patch.engine.mode != "game":
        return {}
    labels: dict[int, list[str]] = {}
    for voice in patch.game.voices:
        labels.setdefault(voice.channel - 1, []).append(voice.name)
    for event in patch.game.events:
        names = labels.setdefault(event.channel - 1, [])
        if "stingers" not in names:
            names.append("stingers")
    return {channel: "+".join(names) for channel, names in labels.items()}


def engine_tracks(notes: list, labels: dict[int, str]) -> list[tuple[str, list]]:
    """One ("engine chN label", notes) per channel the engine played on, in channel order."""
    channels = sorted({n[3] for n in notes})
    return [(f"engine ch{c + 1}" + (f" {labels[c]}" if c in labels else ""), [n for n in notes if n[3] == c])
            for c in channels]


def write_session_midi(path: Path, patch, notes: list, origin_ns: int, end_ns: int, player: list = (),
                       tempo_changes: list[tuple[int, float]] = (), markers: list[tuple[int, str]] = (),
                       panics: list[int] = ()) -> None:
    """The tempo map (with `markers`, the game's messages), the player (continuation), each engine voice.

    Every note still held at a panic (a cancel: all notes off) ends there, as it did at the output."""
    game = patch.engine.mode == "game"
    tracks = ([] if game else [("player", list(player))]) + engine_tracks(notes, voice_labels(patch))
    tempo = TempoMap(origin_ns, patch.engine.tempo_bpm, list(tempo_changes))
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    conductor = [(0, mido.MetaMessage("track_name", name="tempo")),
                 (0, mido.MetaMessage("time_signature", numerator=patch.game.beats_per_bar if game else 4,
                                      denominator=4))]
    conductor += [(tick, mido.MetaMessage("set_tempo", tempo=us)) for tick, _, us in tempo.segments]
    # a parameter moves many times a second: a text event, kept out of a DAW's marker lane
    conductor += [(tempo.tick_at(at_ns), mido.MetaMessage("text" if text.startswith("param ") else "marker", text=text))
                  for at_ns, text in markers]
    mid.tracks.append(_track(sorted(conductor, key=lambda item: item[0])))
    last = tempo.tick_at(end_ns)
    for name, track_notes in tracks:
        cuts = () if name == "player" else panics  # a cancel silences the engine, not the player's keys
        timeline = sorted([(n[0], 0, n) for n in track_notes] + [(at_ns, 1, None) for at_ns in cuts],
                          key=lambda item: item[:2])  # at the same moment, a panic comes after the notes
        events, held = [], set()
        for at_ns, _, note in timeline:
            tick = tempo.tick_at(at_ns)
            if note is None:
                events += [(tick, mido.Message("note_off", note=p, channel=c)) for c, p in sorted(held)]
                held.clear()
                continue
            _, pitch, velocity, channel = note
            if velocity > 0:
                held.add((channel, pitch))
            elif (channel, pitch) not in held:
                continue
            else:
                held.discard((channel, pitch))
            kind = "note_on" if velocity > 0 else "note_off"
            events.append((tick, mido.Message(kind, note=pitch, velocity=velocity, channel=channel)))
        end = max([last] + [tick for tick, _ in events[-1:]])
        events += [(end, mido.Message("note_off", note=p, channel=c)) for c, p in sorted(held)]
        mid.tracks.append(_track([(0, mido.MetaMessage("track_name", name=name))] + events))
    mid.save(path)


def _track(timed: list[tuple[int, object]]) -> mido.MidiTrack:
    """A track from (absolute tick, message) in order: delta times as the file stores them."""
    track, now = mido.MidiTrack(), 0
    for tick, message in timed:
        track.append(message.copy(time=tick - now))
        now = tick
    return track
