"""How the game mode's voices choose their notes: each playing voice's next notes up to a horizon.

Part of `GameMode` (its base class; game.py decides sections, layers, stingers and the transport,
this file turns them into notes). A voice's next note is sampled from its row of the VoiceBank
under its controls (its settings, the section's key, the mapped game parameters), scheduled on
absolute deadlines, and fed back with every other voice that played in one batched model call
per pass. Same contract as `GameMode.tick`: no logging, no locks, no waiting.

A stage model also hears each voice's role and the style (engine/stagecontrols.py), written when a
section begins (a state naming a style plays in it; the others in the session's, `[engine] style` or the
last `/style`), never per note.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..clock import TempoClock
from ..events import NoteMessage
from ..model import controls as ctl
from ..model.tokens import DURATION_BEATS, IOI_BEATS, VELOCITY_LEVELS, ioi_bucket
from ..scheduler import Scheduler
from .stagecontrols import StageControls, voice_role
from .voices import VoiceBank

if TYPE_CHECKING:
    from .gameparts import SmoothedParam, Voice

MAX_PASSES = 64  # note choices per voice per tick, at most (a model stuck on chord tones cannot loop forever)


class VoiceNotes:
    """GameMode's note choosing; the attributes below are GameMode's."""

    bank: VoiceBank
    scheduler: Scheduler
    tempo: TempoClock
    voices: list[Voice]
    params: dict[str, SmoothedParam]
    control_index: dict[str, int]
    notes_out: int
    _key_histogram: np.ndarray  # the section's key, as the model's pitch-class controls
    _base_inv_temperature: np.ndarray  # each voice's 1 / temperature before any mapped parameter
    _covered_ns: int  # notes with onsets up to here have been chosen and handed to the output
    stage: StageControls  # the style playing and pending, and how to write style and role into a row

    def _write_stage(self, section_style: str | None) -> None:
        """Every voice's role and the style (the section's, else the session's) into its control row."""
        rows = self.bank.controls
        if rows is None or not self.stage.active:
            return
        for voice in self.voices:
            s = voice.settings
            self.stage.write_style(rows[voice.index], section_style or self.stage.style)
            self.stage.write_role(rows[voice.index], voice_role(s.role, s.polyphony, s.max_polyphony, s.register))

    def _set_controls(self, voice: Voice, at_ns: int) -> None:
        """The voice's control row for its next step: its own settings, the key, then the mapped params."""
        row, s, index = self.bank.controls, voice.settings, self.control_index
        voice.gain = s.gain
        self.bank.inv_temperature[voice.index] = self._base_inv_temperature[voice.index]
        if row is not None:
            r = row[voice.index]
            r[index["density"]], r[index["polyphony"]] = s.density, s.polyphony
            r[index["register"]], r[index["dynamics"]] = s.register, s.dynamics
            r[ctl.PITCH_CLASS_SLICE] = self._key_histogram
        for m in voice.maps:
            value = m.value(self.params[m.param].normalized_at(at_ns))
            if m.control == "temperature":
                self.bank.inv_temperature[voice.index] = 1.0 / value
            elif m.control == "gain":
                voice.gain = value
            elif row is not None:
                row[voice.index, index[m.control]] = value

    def _choose(self, voice: Voice) -> tuple[tuple[int, int, int, int], float]:
        if voice.forced_onset_beats is not None:  # the first note of a section: on the bar line
            onset = voice.forced_onset_beats
            gap = onset - voice.last_onset_beats if voice.last_onset_beats is not None else 1.0
            fixed = ioi_bucket(max(gap, 1 / 8))
            note = self.bank.sample(voice.index, onset - IOI_BEATS[fixed], fixed)
            return note, onset
        last = voice.last_onset_beats
        note = self.bank.sample(voice.index, last, earliest_beats=self.tempo.beat_at(self._covered_ns))
        return note, last + IOI_BEATS[note[1]]

    def _generate(self, until_ns: int, stop_beats: float | None) -> None:
        """Schedule every voice's notes with onsets up to `until_ns` (and before `stop_beats`), batched."""
        tempo, bank = self.tempo, self.bank
        for _ in range(MAX_PASSES):
            played = False
            for voice in self.voices:
                if not voice.active:
                    continue
                if voice.next is None:
                    voice.next = self._choose(voice)
                note, onset = voice.next
                if stop_beats is not None and onset >= stop_beats - 1e-9:
                    continue  # waits for the next section
                onset_ns = tempo.ns_at(onset)
                if onset_ns > until_ns:
                    continue
                end = onset + DURATION_BEATS[note[2]]
                if stop_beats is not None and end > stop_beats:
                    end = stop_beats  # a section change cuts every note at its bar line
                velocity = min(127, max(1, round(VELOCITY_LEVELS[note[3]] * voice.gain)))
                channel = voice.settings.channel
                self.scheduler.push(NoteMessage(note[0], velocity, channel), onset_ns)
                self.scheduler.push(NoteMessage(note[0], 0, channel), tempo.ns_at(end))
                bank.accept(voice.index, note, onset, end)
                voice.last_onset_beats, voice.next, voice.forced_onset_beats = onset, None, None
                voice.notes_played += 1
                self.notes_out += 1
                self._set_controls(voice, onset_ns)
                played = True
            if not played:
                break
            bank.step()
        self._covered_ns = max(self._covered_ns, until_ns)  # music up to here is chosen and handed out
