"""The targets of the issue's table, each checked on the figures of one `python -m bench` run."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bench.results import Measure


@dataclass(frozen=True)
class Summary:
    """One figure over the repeats of a run: median, spread, and its ratio to the baseline."""

    key: str
    label: str
    unit: str
    values: tuple[float, ...]
    baselines: tuple[float, ...]
    baseline_label: str

    @classmethod
    def of(cls, measures: list[Measure]) -> Summary:
        """The summary of one figure's measures (one per repeat)."""
        first = measures[0]
        return cls(
            first.key,
            first.label,
            first.unit,
            tuple(m.value for m in measures),
            tuple(m.baseline for m in measures if m.baseline is not None),
            first.baseline_label,
        )

    @property
    def median(self) -> float:
        """Median over the repeats."""
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        """Smallest over the repeats."""
        return min(self.values)

    @property
    def high(self) -> float:
        """Largest over the repeats."""
        return max(self.values)

    @property
    def baseline(self) -> float | None:
        """Median baseline over the repeats."""
        return statistics.median(self.baselines) if self.baselines else None

    @property
    def ratios(self) -> tuple[float, ...]:
        """Each repeat's value over the baseline measured in the same repeat."""
        return tuple(v / b for v, b in zip(self.values, self.baselines, strict=False) if b)

    @property
    def ratio(self) -> float | None:
        """Median of the per-repeat ratios."""
        return statistics.median(self.ratios) if self.ratios else None


@dataclass(frozen=True)
class Verdict:
    """Whether a target is met, and by how much (in words)."""

    met: bool
    how: str


Check = Callable[[Mapping[str, Summary]], Verdict]


@dataclass(frozen=True)
class Target:
    """A target of the issue's table, on one figure."""

    key: str
    text: str
    check: Check


def _kib(n: float) -> str:
    return f"{n / 1024:.1f} KiB"


def _p50(s: Mapping[str, Summary]) -> Verdict:
    m = s["ack_p50_c1"].median
    if m <= 2.0:
        return Verdict(True, f"{m:.2f} ms <= 2 ms")
    return Verdict(False, f"{m:.2f} ms: {m / 2.0:.2f}x the 2 ms target")


def _p99(s: Mapping[str, Summary]) -> Verdict:
    f = s["ack_p99_c20"]
    r = f.ratio or 0.0
    how = f"one process {f.median:.1f} ms, {r:.2f}x the bare app's {f.baseline:.1f} ms"
    met = r <= 1.0
    for key, g in s.items():
        if key.startswith("ack_p99_c20_p"):
            gr = g.ratio or 0.0
            n = key.rsplit("_p", 1)[1]
            how += f"; --processes {n} {g.median:.1f} ms, {gr:.2f}x the bare app's"
            met = met or gr <= 1.0
    return Verdict(met, how)


def _alerts(s: Mapping[str, Summary]) -> Verdict:
    f = s["alerts_rate"]
    r = f.ratio or 0.0
    ok = f.median >= 2000 and r >= 0.5
    how = f"{f.median:,.0f}/s, {r:.2f} of the bare handler's {f.baseline or 0:,.0f}/s"
    if not ok:
        short = []
        if f.median < 2000:
            short.append(f"{2000 / f.median:.2f}x short of 2,000/s")
        if r < 0.5:
            short.append(f"{0.5 / r:.2f}x short of 0.5 of the bare handler")
        how += " (" + "; ".join(short) + ")"
    for key, g in s.items():
        if key.startswith("alerts_rate_p"):
            n = key.rsplit("_p", 1)[1]
            how += f"; --processes {n}: {g.median:,.0f}/s, {g.ratio or 0:.2f} of the bare handler"
    return Verdict(ok, how)


def _diagnosis(s: Mapping[str, Summary]) -> Verdict:
    f = s["diagnosis_time"]
    r = f.ratio or 0.0
    how = f"{f.median:,.0f} ms, {r:.2f}x the raw search's {f.baseline or 0:,.0f} ms"
    return Verdict(r <= 2.0, how if r <= 2.0 else f"{how}: {r / 2.0:.2f}x the 2x target")


def _queries(s: Mapping[str, Summary]) -> Verdict:
    f = s["diagnosis_queries"]
    same = all(v == b for v, b in zip(f.values, f.baselines, strict=True))
    return Verdict(same, f"{f.median:.0f} queries with the phantoms, {f.baseline:.0f} without")


def _trips(s: Mapping[str, Summary]) -> Verdict:
    f = s["procedure_trips"]
    exact = f.low == f.high == 1.0
    return Verdict(exact, f"{f.median:.2f} (every steady-state transition: {f.low:g}..{f.high:g})")


def _click_trips(s: Mapping[str, Summary]) -> Verdict:
    f = s["click_trips"]
    exact = f.low == f.high == 1.0
    how = f"{f.median:.2f} per click on state serve made (the most: {f.high:g})"
    return Verdict(exact, how)


def _memory(s: Mapping[str, Summary]) -> Verdict:
    small = s["procedure_memory_1k"].median
    sizes = sorted(
        (int(k.removeprefix("procedure_memory_").removesuffix("k")), v)
        for k, v in s.items()
        if k.startswith("procedure_memory_")
    )
    biggest, at_cap = sizes[-1][1].median, s.get("procedure_memory_64k")
    bounded = at_cap is None or biggest <= at_cap.median * 1.05
    how = (
        f"{_kib(small)} at 1 KiB of output per run ({small / 32768:.2f}x 32 KiB); "
        f"{_kib(biggest)} at {sizes[-1][0]:,} KiB per run: "
        + ("bounded (outputs are capped)" if bounded else "NOT bounded")
    )
    return Verdict(small < 32768 and bounded, how)


TARGETS: tuple[Target, ...] = (
    Target("ack_p50_c1", "<= 2 ms", _p50),
    Target("ack_p99_c20", "<= the bare default Bolt app's p99", _p99),
    Target("alerts_rate", ">= 2,000/s and >= 0.5 of the bare handler", _alerts),
    Target("diagnosis_time", "<= 2x the raw search", _diagnosis),
    Target("diagnosis_queries", "constant (the same as with 2 DCs)", _queries),
    Target("procedure_trips", "exactly 1", _trips),
    Target("click_trips", "exactly 1 (the transition's commit)", _click_trips),
    Target("procedure_memory_1k", "< 32 KB, bounded whatever the output size", _memory),
)
