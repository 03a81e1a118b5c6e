"""The per-case segmentation job every family runs: cases in, files on disk out.

For each case of an ``input_dict`` or cohort folder (:mod:`bundles.io.cases`): read and check the image
(in a reader process ahead of the model, :mod:`bundles.engines.case_reads`), hand it with the case's
prompts (already validated by the family's prompt check, before any model was loaded) to the family's
predictor, write the multi-label NIfTI, one file per mask, the legend (and DICOM-SEG for DICOM input) under
``<output_dir>/<case id>/``. Cases that carry a reference ``mask`` are scored (Dice, NSD, HD95) and a report
is written to ``output_dir``. A case that fails is reported in one line and in ``failures.csv``; the other
cases still run, and the job raises :class:`CaseFailures` at the end. A case whose outputs exist is skipped
with ``skip_existing``; ``timings.csv`` and a printed summary say what each case cost. Under torchrun, or
with ``shard``, each process segments its share of the cases (:mod:`bundles.engines.case_shares`) and rank
0 writes the run's files.

A family plugs in with two small objects (see :class:`PromptCheck` and :class:`Predictor`): SAT checks text
terms against its vocabulary and runs its text-prompted inferer; a prompt-free model checks that no prompts
were given and runs its network slice by slice; a click model checks clicks against the image.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from os import PathLike
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from monai.data import MetaTensor
from tqdm.auto import tqdm

from bundles.engines.case_reads import CaseRead, one_line_reason, read_ahead
from bundles.engines.case_shares import CaseShare
from bundles.engines.provenance import weights_id
from bundles.engines.run_summary import CaseRecord, format_summary, write_timings
from bundles.engines.stage_times import recording
from bundles.errors import BundleError, BundleInputError
from bundles.io.atomic import atomic_write
from bundles.io.cases import Case, parse_cases
from bundles.io.formats import check_image_path
from bundles.io.grid import ImageGrid
from bundles.io.modality import normalize_modality
from bundles.io.reference_masks import load_reference_masks
from bundles.io.validation import check_exists
from bundles.io.writers import write_segmentation
from bundles.metrics.report import format_table, write_report
from bundles.metrics.segmentation import evaluate_case
from bundles.progress import show_progress

__all__ = ["PromptCheck", "Predictor", "SegmentationJob", "CaseFailures", "prepare_cases"]

logger = logging.getLogger(__name__)


class PromptCheck(Protocol):
    """A family's validation of one case's prompts, run for every case before any model is loaded."""

    def __call__(self, case: Case) -> Any:
        """The case's prompts in the form the family's predictor takes (SAT: modality + vocabulary terms).

        Raises:
            PromptError: naming the offending value (an unknown term, a click outside the image, prompts
                given to a prompt-free model).
        """

    def report_columns(self, name: str, prompts: Any) -> dict[str, Any]:
        """Extra columns of the evaluation rows of mask ``name`` (SAT: the body region); may be ``{}``."""


class Predictor(Protocol):
    """A family's model work on one image."""

    def __call__(self, image: MetaTensor, grid: ImageGrid, case: Case, prompts: Any) -> tuple[np.ndarray, list[str]]:
        """Masks ``(K, *grid.shape)`` (bool, on the input grid) and their K names, for ``image`` ``(1, X, Y, Z)``
        read on ``grid`` and the prompts :class:`PromptCheck` returned for ``case``."""


def prepare_cases(
    input_dict: Mapping[str, Any], prompt_check: PromptCheck, dicom_seg: bool | None = None, input_dir: str | PathLike | None = None
) -> list[tuple[Case, Any]]:
    """Parse the cases (of ``input_dict``, or of the folder ``input_dir`` with ``input_dict`` as the fields
    every case shares), check that every image can be one (a supported file or a folder of DICOM images) and
    every reference mask exists, and check every case's prompts.

    Runs before any model is loaded, so a typo in a prompt or a path fails in a second.

    Raises:
        ConfigurationError, BundleInputError, PromptError: with the case and what to fix (also when
            ``dicom_seg`` is True and an image is not a DICOM series, which DICOM-SEG must reference).
    """
    prepared = []
    for case in parse_cases(input_dict, input_dir):
        check_image_path(case.image)
        if dicom_seg and not case.image.is_dir():
            raise BundleInputError(
                case.image, "--dicom_seg True needs a DICOM series folder as input (a DICOM-SEG references the source "
                "slices); this is a file: drop --dicom_seg (NIfTI outputs are always written) or pass the series folder"
            )
        if case.mask is not None:
            check_exists(case.mask)
        prepared.append((case, prompt_check(case)))
    return prepared


class CaseFailures(BundleError):
    """Some cases of a run failed; names how many, how many others were written now, the first reason and
    the list."""

    def __init__(self, failures: Sequence[tuple[Case, str]], listing: Path, total: int, written: int):
        self.failures = list(failures)
        first_case, first_reason = failures[0]
        others = f"; the outputs of the {written} other case(s) were written" if written else ""
        super().__init__(f"{len(failures)} of {total} cases failed (listed in {listing}{others}); first: {first_case.id}: {first_reason}")


@dataclass(frozen=True)
class _OutputsExist:
    """Whether a case's complete outputs are in ``output_dir`` (``legend.json`` is written after its NIfTI
    files, each write atomic, so its presence means the case finished)."""

    output_dir: Path
    enabled: bool

    def __call__(self, case: Case) -> bool:
        return self.enabled and (self.output_dir / case.id / "legend.json").is_file()


class SegmentationJob:
    """Segment every case of ``input_dict`` with a family's predictor and write the outputs.

    Args:
        predictor: the family's model work (:class:`Predictor`).
        prompt_check: the family's prompt validation (:class:`PromptCheck`).
        input_dict: the cases (``{'image': ..., 'prompts': [...], 'modality': 'ct'}`` or ``{'cases': ...}``).
        output_dir: folder receiving one sub-folder per case, plus the evaluation report.
        dicom_seg: write DICOM-SEG; ``None`` = exactly when the input is a DICOM series.
        tolerance_mm: NSD tolerance for evaluation (SAT: 1 mm).
        progress: show a progress bar over cases.
        skip_existing: skip a case whose complete outputs exist (``legend.json`` is written after its NIfTI
            files, so its presence means the case finished).
        input_dir: a cohort folder (every image file and DICOM series below it, :mod:`bundles.io.case_folder`)
            instead of ``input_dict``'s ``image``/``cases``; ``input_dict`` then holds what every case shares.
        shard: ``"i/n"``: only cases ``i, i+n, ...`` (independent scheduler jobs, :mod:`bundles.engines.case_shares`);
            the run files (report, ``failures.csv``, ``timings.csv``) then go to ``output_dir/shard-i-of-n/``.
        read_workers: processes reading the next cases while the model works (0: read in this process).
        provenance: model, weights, configs and date (:func:`bundles.engines.provenance.model_provenance`),
            recorded in every legend, DICOM-SEG and report.
        allow_2d: accept 2D images as one-slice volumes (models that work on slices).
        cases: the run's cases as :func:`prepare_cases` returns them for these arguments, when the caller made
            them already (the configs' ``initialize`` does, to refuse bad input before a model loads; a cohort
            folder is then searched once); ``None``: prepared by :meth:`run`.
    """

    def __init__(
        self,
        predictor: Predictor,
        prompt_check: PromptCheck,
        input_dict: Mapping[str, Any],
        output_dir: str | PathLike,
        *,
        dicom_seg: bool | None = None,
        tolerance_mm: float = 1.0,
        progress: bool = True,
        skip_existing: bool = False,
        provenance: Mapping[str, Any] | None = None,
        allow_2d: bool = False,
        input_dir: str | PathLike | None = None,
        shard: str | None = None,
        read_workers: int = 0,
        cases: Sequence[tuple[Case, Any]] | None = None,
    ):
        self.predictor = predictor
        self.prompt_check = prompt_check
        self.input_dict = input_dict
        self.output_dir = Path(output_dir)
        self.dicom_seg = dicom_seg
        self.tolerance_mm = tolerance_mm
        self.progress = progress
        self.skip_existing = skip_existing
        self.provenance = dict(provenance or {})
        self.allow_2d = allow_2d
        self.input_dir = input_dir or None
        self.shard = shard
        self.read_workers = int(read_workers)
        self.cases = None if cases is None else list(cases)

    def run(self) -> list[dict[str, Any]]:
        """Process this process's cases; return the metric rows of the whole run (empty when no case has a
        reference mask). Under torchrun every rank gets the rows of all ranks.

        Raises:
            CaseFailures: after all other cases ran, when at least one case of the run failed (on every rank).
        """
        start = time.perf_counter()
        self._report_columns: dict[str, None] = {}  # the family's extra columns (SAT: region), grouped in the report
        prepared = self.cases if self.cases is not None else prepare_cases(self.input_dict, self.prompt_check, self.dicom_seg, self.input_dir)
        share = CaseShare.current(self.shard)
        mine = share.select(prepared)
        if not mine:
            logger.warning("no case of the %d falls to this process (shard %d/%d, rank %d of %d)", len(prepared),
                           share.shard, share.shards, share.rank, share.world)
        rows: list[dict[str, Any]] = []
        records: list[CaseRecord] = []
        desc = "cases" if share.world == 1 else f"rank {share.rank}"
        bar = tqdm(total=len(mine), desc=desc, unit="case", position=share.rank, disable=not show_progress(self.progress))
        for read in read_ahead(mine, workers=self.read_workers, allow_2d=self.allow_2d, is_done=_OutputsExist(self.output_dir, self.skip_existing)):
            records.append(self._process(read, share.rank, rows))
            bar.update()
        bar.close()
        records, rows = share.gather(records), share.gather(rows)
        self._report_columns = dict.fromkeys(share.gather(list(self._report_columns)))
        failures = [r for r in records if r.status == "failed"]
        run_dir = self.output_dir / share.label
        if share.writes_run_files:
            self._write_run_files(records, rows, failures, run_dir, time.perf_counter() - start, share.world)
        if failures:
            raise CaseFailures([(prepared[r.index][0], r.reason) for r in failures], run_dir / "failures.csv", len(prepared),
                               written=sum(r.status == "done" for r in records))
        return rows

    def _process(self, read: CaseRead, rank: int, rows: list[dict[str, Any]]) -> CaseRecord:
        """Segment, write and score one case read by :func:`read_ahead`; its record (failures caught)."""
        case = read.case
        record = CaseRecord(read.index, case.id, str(case.image), "done", rank, read.seconds)
        if read.skipped:
            logger.info("%s: complete outputs exist in %s, skipped", case.id, self.output_dir / case.id)
            return replace(record, status="skipped")
        if read.error is not None:
            logger.error("%s failed: %s", case.id, read.error)
            return replace(record, status="failed", reason=read.error)
        try:
            started = time.perf_counter()
            with recording() as stages:
                masks, names = self.predictor(read.image, read.grid, case, read.prompts)
            model_s, started = time.perf_counter() - started, time.perf_counter()
            self._write(case, masks, names, read.grid)
            record = replace(record, model_s=model_s, write_s=time.perf_counter() - started, stages=dict(stages))
            if case.mask is not None:
                rows.extend(self._score(case, read.prompts, names, masks, read.grid))
        except Exception as e:  # noqa: BLE001 - one bad case must not stop the others; reported at the end
            reason = one_line_reason(e)
            logger.error("%s failed: %s", case.id, reason)
            return replace(record, status="failed", reason=reason)
        voxels = {t: int(m.sum()) for t, m in zip(names, masks)}
        logger.info("%s: %.1f s (read %.1f, model %.1f, write %.1f), voxels per mask %s", case.id, record.total_s,
                    record.read_s, record.model_s, record.write_s, voxels)
        return record

    def _write(self, case: Case, masks: np.ndarray, names: list[str], grid: ImageGrid) -> None:
        files = write_segmentation(
            masks, names, grid, self.output_dir / case.id, dicom_seg=self.dicom_seg, provenance=self.provenance,
            algorithm_name=self.provenance.get("model", "medseg-bundles"), algorithm_version=weights_id(self.provenance) or None,
        )
        if "dicom_seg_error" in files:
            logger.warning("%s: NIfTI outputs written, DICOM-SEG not: %s", case.id, files["dicom_seg_error"])

    def _write_run_files(self, records: list[CaseRecord], rows: list[dict[str, Any]], failures: list[CaseRecord],
                         run_dir: Path, wall_s: float, processes: int) -> None:
        """Report (with reference masks), ``failures.csv`` (removed when a rerun has none left),
        ``timings.csv`` and the printed summary, in ``run_dir``."""
        if rows:
            report = write_report(rows, run_dir, group_by=("class", "dataset", *self._report_columns),
                                  provenance=self.provenance or None)
            print(format_table(rows))
            logger.info("evaluation report: %s", {k: str(v) for k, v in report.items()})
        if failures:
            self._write_failures(failures, run_dir / "failures.csv")
        else:
            (run_dir / "failures.csv").unlink(missing_ok=True)  # an earlier run's, whose cases are now done
        if len(records) > 1 or self.input_dir:  # a cohort run (a folder, or several cases), not one image
            write_timings(records, run_dir / "timings.csv")
            print(format_summary(records, wall_s, processes))

    @staticmethod
    def _write_failures(failures: list[CaseRecord], path: Path) -> Path:
        def write(tmp: Path) -> None:
            with tmp.open("w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(["case", "image", "reason"])
                writer.writerows([r.case, r.image, r.reason] for r in sorted(failures, key=lambda r: r.index))

        return atomic_write(path, write)

    def _score(self, case: Case, prompts: Any, names: list[str], masks: np.ndarray, grid: ImageGrid) -> list[dict[str, Any]]:
        scored = [t for t in names if t in case.legend.values()]
        if not scored:
            return []
        refs = load_reference_masks(case.mask, case.legend, scored, grid)
        preds = {t: masks[names.index(t)] for t in scored}
        modality = normalize_modality(case.modality) if case.modality else "-"
        rows = evaluate_case(
            preds, dict(zip(scored, refs)), grid.spacing, case_id=case.id, tolerance_mm=self.tolerance_mm,
            extra={"dataset": case.dataset or "-", "modality": modality},
        )
        for row in rows:
            columns = self.prompt_check.report_columns(row["class"], prompts)
            self._report_columns.update(dict.fromkeys(columns))
            row.update(columns)
        return rows
