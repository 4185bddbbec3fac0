"""What one benchmark run measures: figures with the baseline measured in the same run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Measure:
    """One figure of one run, and its baseline from the same run (None: no baseline)."""

    key: str
    label: str
    unit: str
    value: float
    baseline: float | None
    baseline_label: str
    lower_is_better: bool = True

    @property
    def ratio(self) -> float | None:
        """value / baseline, when there is a baseline."""
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline


@dataclass
class RunResult:
    """One run of one benchmark: its measures, and its own tables (markdown lines)."""

    measures: list[Measure]
    table: list[str]
