"""A value a patch or a message may set: its bounds, default, unit and meaning (realtime/settings.py
holds the tables; realtime/stagesettings.py the stage modes').
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Range:
    """A value a patch or a message may set: inclusive bounds, the default a patch gets, what it means."""

    name: str
    low: float
    high: float
    default: float | None  # None: see `doc` (resolved elsewhere, e.g. from the model card)
    unit: str
    doc: str
    where: str = ""  # the patch keys and messages that set it, for the README

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high

    def span(self) -> str:
        return f"{self.low:g}-{self.high:g}"
