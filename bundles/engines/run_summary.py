"""What a run of the per-case job did with each case, and the summary printed at its end.

Every case gets a :class:`CaseRecord` (done, skipped or failed, on which rank, seconds spent reading,
in the model and writing). Rank 0 writes them all to ``timings.csv`` and prints the summary: counts,
seconds per case, cases per hour, and (for runs of up to :data:`TABLE_MAX_CASES` cases) the per-case table.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from bundles.io.atomic import atomic_write

__all__ = ["CaseRecord", "write_timings", "format_summary", "TABLE_MAX_CASES"]

TABLE_MAX_CASES = 40
"""Longer runs print only the summary; their per-case table is in ``timings.csv``."""


@dataclass(frozen=True)
class CaseRecord:
    """One case of a run. ``status``: ``done``, ``skipped`` (complete outputs existed) or ``failed``
    (``reason`` says why). Seconds: ``read_s`` (in a reader process, overlapping the model's work on the
    case before), ``model_s`` (the family's predictor: preprocessing, network, back onto the input grid),
    ``write_s`` (NIfTI, legend, DICOM-SEG); ``total_s`` = the three. ``stages``: the parts of ``model_s``
    the family timed (:mod:`bundles.engines.stage_times`; SAT: queries, preprocess, network, resample)."""

    index: int
    case: str
    image: str
    status: str
    rank: int = 0
    read_s: float = 0.0
    model_s: float = 0.0
    write_s: float = 0.0
    reason: str = ""
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return self.read_s + self.model_s + self.write_s


def stage_names(records: Sequence[CaseRecord]) -> list[str]:
    """The timed stages of ``records``, in the order they first appear."""
    return list(dict.fromkeys(name for r in records for name in r.stages))


def write_timings(records: Sequence[CaseRecord], path: Path) -> Path:
    """``timings.csv``: one row per case, in case-list order, a ``<stage>_s`` column per timed stage (atomic)."""
    names = [f.name for f in fields(CaseRecord) if f.name != "stages"]
    stages = stage_names(records)

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, [*names, "total_s", *(f"{s}_s" for s in stages)])
            writer.writeheader()
            for r in sorted(records, key=lambda r: r.index):
                row = {k: v for k, v in asdict(r).items() if k != "stages"}
                row.update({k: f"{row[k]:.2f}" for k in ("read_s", "model_s", "write_s")}, total_s=f"{r.total_s:.2f}")
                row.update({f"{s}_s": f"{r.stages[s]:.2f}" for s in stages if s in r.stages})
                writer.writerow(row)

    return atomic_write(path, write)


def format_summary(records: Sequence[CaseRecord], wall_s: float, processes: int) -> str:
    """Counts, mean seconds per segmented case (read / model / write), cases per hour over the run's wall
    time, and the per-case table when there are at most :data:`TABLE_MAX_CASES` cases."""
    done = [r for r in records if r.status == "done"]
    counts = {s: sum(r.status == s for r in records) for s in ("done", "skipped", "failed")}
    lines = [f"cases: {counts['done']} done, {counts['skipped']} skipped (outputs existed), {counts['failed']} failed;"
             f" {processes} process(es), {wall_s:.1f} s wall"]
    if done:
        mean = {k: sum(getattr(r, k) for r in done) / len(done) for k in ("read_s", "model_s", "write_s")}
        split = "".join(f", {s} {sum(r.stages.get(s, 0.0) for r in done) / len(done):.1f}" for s in stage_names(done))
        lines.append(f"per segmented case: {sum(mean.values()):.1f} s (read {mean['read_s']:.1f}, model {mean['model_s']:.1f}"
                     f"{f' [{split[2:]}]' if split else ''}, write {mean['write_s']:.1f});"
                     f" {3600 * len(done) / max(wall_s, 1e-9):.0f} cases per hour")
    if 0 < len(records) <= TABLE_MAX_CASES:
        width = max(len(r.case) for r in records)
        lines.append(f"{'case':<{width}}  rank  status   read s  model s  write s  total s")
        for r in sorted(records, key=lambda r: r.index):
            lines.append(f"{r.case:<{width}}  {r.rank:>4}  {r.status:<7}  {r.read_s:>6.1f}  {r.model_s:>7.1f}  {r.write_s:>7.1f}"
                         f"  {r.total_s:>7.1f}" + (f"  {r.reason}" if r.reason else ""))
    return "\n".join(lines)
