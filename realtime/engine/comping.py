"""What the accompaniment plays on a beat: its patterns, the bass note, and the chord voicing.

Patterns are events in a bar, (first beat, beats long), counted from 0 (beat 1):

- chords: "whole" (one strike a bar), "half" (beat 1 and the bar's middle), "quarter" (every beat),
  "backbeat" (beats 2 and 4: every other beat from the second);
- bass: "whole" (the root, held), "half" (the root, then the fifth in the bar's middle), "quarter"
  (the root on beat 1, then the fifth, the third and the octave, round again in longer bars).

The bass root lies in [lowest, highest - 12] when the register allows (so the octave above it fits),
as near the previous root as it can be; every other bass tone lies above the bar's root, so the root
is the bar's lowest bass note. Chords are close voicings (every note within an octave of the lowest)
of the chord's tones (a seventh chord loses its fifth first when `count` is smaller; with more notes
than tones the stack goes on upward, its lowest tones an octave higher), inside [lowest, highest],
and of those the one that moves least from the previous voicing (or, with none, the one nearest the
middle of the register). Pure functions: a few dozen candidates per chord, microseconds.
"""

from __future__ import annotations

from ..listen.chords import QUALITIES
from .voicing import chord_tones

LEGATO = 0.9  # a note lasts this share of its event, so a re-struck pitch is heard as a new note
BASS_STEPS = ("fifth", "third", "octave")  # the quarter pattern's tones after the root, round again


def pattern_events(name: str, beats_per_bar: int) -> tuple[tuple[int, int], ...]:
    """(first beat, length in beats) of each strike of a pattern in one bar."""
    bar, middle = beats_per_bar, (beats_per_bar + 1) // 2
    if name == "whole":
        return ((0, bar),)
    if name == "half":
        return ((0, middle), (middle, bar - middle)) if bar > 1 else ((0, 1),)
    if name == "quarter":
        return tuple((beat, 1) for beat in range(bar))
    if name == "backbeat":
        return tuple((beat, 1) for beat in range(1, bar, 2)) or ((0, 1),)
    raise ValueError(f"unknown pattern {name!r}")


def covering(events: tuple[tuple[int, int], ...], number: int) -> tuple[int, int] | None:
    """The event of a pattern sounding on this beat of the bar (begun on it or before), or None."""
    for event in events:
        if event[0] <= number < event[0] + event[1]:
            return event
    return None


def bass_step(pattern: str, event_start: int) -> str:
    """Which chord tone the bass plays for the event beginning on this beat of the bar."""
    if event_start == 0:
        return "root"
    if pattern == "half":
        return "fifth"
    return BASS_STEPS[(event_start - 1) % len(BASS_STEPS)]


def place_root(root: int, previous: int | None, lowest: int, highest: int) -> int | None:
    """The bass root: a pitch of this class in the register, room for its octave kept, near the last root."""
    pitches = [p for p in range(lowest, highest + 1) if p % 12 == root]
    roomy = [p for p in pitches if p + 12 <= highest] or pitches
    if not roomy:
        return None
    target = previous if previous is not None else lowest + 7
    return min(roomy, key=lambda p: (abs(p - target), p))


def bass_pitch(root_pitch: int, quality: str, step: str, highest: int) -> int:
    """The bass note of one event: the root, or a tone of the chord above it (the root if it does not fit)."""
    intervals = QUALITIES[quality][0]
    interval = {"root": 0, "third": intervals[1], "fifth": intervals[2], "octave": 12}[step]
    pitch = root_pitch + interval
    return pitch if pitch <= highest else root_pitch


def chord_classes(root: int, quality: str, count: int) -> tuple[int, ...]:
    """The pitch classes to voice, `count` of them (a seventh chord's fifth dropped first; repeats past its tones)."""
    tones = list(chord_tones(root, quality))
    while len(tones) > count:
        tones.pop(2 if len(tones) > 3 else len(tones) - 1)  # the fifth of a seventh chord, then from the top
    doubled = [tones[i % len(tones)] for i in range(count - len(tones))]
    return tuple(tones + doubled)


def close_voicing(classes: tuple[int, ...], previous: tuple[int, ...], lowest: int,
                  highest: int) -> tuple[int, ...]:
    """A close voicing of these classes (bottom to top) in the register, moving least from `previous`."""
    unique = sorted(set(classes), key=classes.index)
    extra = len(classes) - len(unique)
    best: tuple[int, ...] = ()
    best_cost = float("inf")
    middle = (lowest + highest) / 2
    for bottom in range(lowest, highest + 1):
        if bottom % 12 not in unique:
            continue
        offsets = sorted((pc - bottom) % 12 for pc in unique)
        offsets += [12 + offsets[i] for i in range(extra)]  # the stack goes on upward: its lowest tones again
        voicing = tuple(bottom + offset for offset in offsets)
        if voicing[-1] > highest:
            continue
        if len(previous) == len(voicing):
            cost = sum(abs(a - b) for a, b in zip(voicing, previous))
        else:
            cost = abs(sum(voicing) / len(voicing) - middle)
        if cost < best_cost:
            best, best_cost = voicing, cost
    return best
