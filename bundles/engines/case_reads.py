"""Reading the next cases while the model works on the current one.

The per-case job reads (and checks) each image in a ``torch.utils.data.DataLoader`` worker process, so
decoding a DICOM series or a gzip'd NIfTI overlaps with the network's work on the case before; with
``workers=0`` images are read in the job's own process, one after the other. A case whose complete
outputs exist is skipped before it is read; a case that cannot be read comes back with its one-line reason
instead of stopping the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from monai.data import MetaTensor
from torch.utils.data import DataLoader, Dataset

from bundles.errors import find_bundle_error
from bundles.io.cases import Case
from bundles.io.grid import ImageGrid
from bundles.io.modality import normalize_modality
from bundles.io.readers import read_image
from bundles.transforms.intensity_checks import check_ct_intensities

__all__ = ["CaseRead", "read_ahead", "one_line_reason"]


def one_line_reason(error: BaseException) -> str:
    """The first line of the :class:`~bundles.errors.BundleError` behind ``error``, else ``Type: message``."""
    return str(find_bundle_error(error) or f"{type(error).__name__}: {error}").splitlines()[0]


@dataclass
class CaseRead:
    """One case as read: ``image`` ``(1, X, Y, Z)`` on ``grid``, or why not (``error``), or ``skipped``.

    ``index`` is the case's place in the run's case list; ``seconds`` the time spent reading it.
    """

    index: int
    case: Case
    prompts: Any
    image: MetaTensor | None = None
    grid: ImageGrid | None = None
    error: str | None = None
    skipped: bool = False
    seconds: float = 0.0


class _Reads(Dataset):
    def __init__(self, items: Sequence[tuple[int, tuple[Case, Any]]], allow_2d: bool, is_done: Callable[[Case], bool]):
        self.items, self.allow_2d, self.is_done = list(items), allow_2d, is_done

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> CaseRead:
        index, (case, prompts) = self.items[i]
        if self.is_done(case):
            return CaseRead(index, case, prompts, skipped=True)
        start = time.perf_counter()
        try:
            image, grid = read_image(case.image, frame=case.frame, allow_2d=self.allow_2d, series_uid=case.series_uid)
            if case.modality and normalize_modality(case.modality) == "ct":
                check_ct_intensities(image, case.image)
        except Exception as e:  # noqa: BLE001 - an unreadable case is reported and the run goes on
            return CaseRead(index, case, prompts, error=one_line_reason(e), seconds=time.perf_counter() - start)
        return CaseRead(index, case, prompts, image, grid, seconds=time.perf_counter() - start)


def _as_is(read: CaseRead) -> CaseRead:
    return read


def read_ahead(
    items: Sequence[tuple[int, tuple[Case, Any]]], *, workers: int, allow_2d: bool, is_done: Callable[[Case], bool]
) -> Iterator[CaseRead]:
    """Each ``(index, (case, prompts))`` of ``items`` read, in order, by ``workers`` reader processes (0: here).

    ``is_done(case)`` True skips the case without reading it. Each worker keeps up to two cases read ahead.
    """
    reads = _Reads(items, allow_2d, is_done)
    if workers <= 0 or len(reads) <= 1:
        yield from (reads[i] for i in range(len(reads)))
        return
    yield from DataLoader(reads, batch_size=None, shuffle=False, num_workers=int(workers), collate_fn=_as_is)
