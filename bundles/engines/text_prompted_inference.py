"""The inference (and evaluation) job of the text-prompted bundles: cases in, files on disk out.

For each case: read and check the image, match the prompts to the vocabulary (all cases are checked before
any model work), take the query embeddings from the cache, segment on the input's own grid, write the
multi-label NIfTI, one file per prompt, the legend (and DICOM-SEG for DICOM input) under
``<output_dir>/<case id>/``. Cases that carry a reference ``mask`` are scored (Dice, NSD, HD95) and a report
is written to ``output_dir``.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from bundles.engines.cases import Case, parse_cases
from bundles.engines.provenance import weights_id
from bundles.inferers.text_prompted import TextPromptedInferer
from bundles.checkpoints.loading import load_weights
from bundles.errors import BundleError, BundleInputError, CheckpointError, find_bundle_error
from bundles.checkpoints.release import check_release_pair
from bundles.io.atomic import atomic_write, folder_write_problem
from bundles.io.readers import read_image
from bundles.io.validation import check_exists
from bundles.prompts.embedding_cache import QueryEmbeddingCache, encoder_id_from_file
from bundles.io.reference_masks import load_reference_masks
from bundles.io.writers import write_segmentation
from bundles.metrics.report import format_table, write_report
from bundles.metrics.segmentation import evaluate_case
from bundles.prompts.vocabulary import SATVocabulary, normalize_modality
from bundles.transforms.intensity_checks import check_ct_intensities
from bundles.progress import show_progress

__all__ = ["TextPromptedSegmentation", "CachedQueries", "CaseFailures", "prepare_cases", "check_model_files", "check_output_dir"]

logger = logging.getLogger(__name__)

QueryProvider = Callable[[Sequence[str], str], torch.Tensor]


def prepare_cases(
    input_dict: Mapping[str, Any], vocabulary: SATVocabulary, allow_free_text: bool = False, dicom_seg: bool | None = None
) -> list[tuple[Case, str, list[str]]]:
    """Parse the cases, check that every image exists, and match every prompt to the vocabulary.

    Runs before any model is loaded, so a typo in a prompt or a path fails in a second.

    Raises:
        ConfigurationError, BundleInputError, PromptError: with the case and what to fix (also when
            ``dicom_seg`` is True and an image is not a DICOM series, which DICOM-SEG must reference).
    """
    prepared = []
    for case in parse_cases(input_dict):
        check_exists(case.image)
        if dicom_seg and not case.image.is_dir():
            raise BundleInputError(
                case.image, "--dicom_seg True needs a DICOM series folder as input (a DICOM-SEG references the source "
                "slices); this is a file: drop --dicom_seg (NIfTI outputs are always written) or pass the series folder"
            )
        if case.mask is not None:
            check_exists(case.mask)
        modality = normalize_modality(case.modality)
        terms = vocabulary.match(case.prompts, modality, allow_free_text=allow_free_text)
        prepared.append((case, modality, terms))
    return prepared


def check_model_files(files: Sequence[str | PathLike], model_dir: str | PathLike) -> None:
    """Before anything is loaded: list every missing weights file in one error, and refuse a segmentation
    checkpoint and text encoder from different releases (``release.json`` in ``model_dir``, written by the
    converters; absent for models trained here, whose pair is written together).

    Raises:
        CheckpointError: naming all missing files and how to get them.
    """
    missing = [str(f) for f in files if not Path(f).is_file()]
    if missing:
        raise CheckpointError(
            f"missing model files: {', '.join(missing)}; convert the official weights with `python -m tools.convert_sat` "
            "(see README) or train them with configs/train.json, or point --model_dir to the folder that holds them"
        )
    if (Path(model_dir) / "release.json").is_file():
        check_release_pair(model_dir)


def check_output_dir(output_dir: str | PathLike) -> None:
    """Refuse an output folder that cannot be created or written, before any model work.

    Raises:
        BundleInputError: naming the folder (or the file in its way).
    """
    problem = folder_write_problem(output_dir)
    if problem is not None:
        existing, what = problem
        path = Path(output_dir).resolve()
        raise BundleInputError(existing, f"{what}, so the output folder {path} cannot be created; choose another --output_dir")


class CaseFailures(BundleError):
    """Some cases of a run failed (the others were written); names how many, the first reason and the list."""

    def __init__(self, failures: Sequence[tuple[Case, str]], listing: Path, total: int):
        self.failures = list(failures)
        first_case, first_reason = failures[0]
        super().__init__(
            f"{len(failures)} of {total} cases failed (listed in {listing}; the other cases' outputs were written); "
            f"first: {first_case.id}: {first_reason}"
        )


class CachedQueries:
    """Query embeddings from the on-disk cache; the text encoder is built only for terms not cached yet.

    Args:
        cache_dir: folder of the cache files.
        encoder_checkpoint: the text encoder's weights file; its hash names the cache, so other weights
            never reuse stale embeddings.
        encoder_factory: zero-argument callable building the (weightless) text encoder.
        encoder_kind: the encoder kind, part of the cache name with the weights' hash (a different tower or
            tokenizer with the same weights file must not reuse embeddings).
    """

    def __init__(
        self,
        cache_dir: str | PathLike,
        encoder_checkpoint: str | PathLike,
        encoder_factory: Callable[[], torch.nn.Module],
        encoder_kind: str = "",
    ):
        self.encoder_checkpoint = Path(encoder_checkpoint)
        encoder_id = encoder_id_from_file(self.encoder_checkpoint)
        self.cache = QueryEmbeddingCache(cache_dir, f"{encoder_kind}-{encoder_id}" if encoder_kind else encoder_id)
        self.encoder_factory = encoder_factory
        self._encoder: torch.nn.Module | None = None

    def encoder(self) -> torch.nn.Module:
        """The text encoder with its weights, built on first use."""
        if self._encoder is None:
            self._encoder = load_weights(self.encoder_factory(), self.encoder_checkpoint).eval()
        return self._encoder

    def __call__(self, terms: Sequence[str], modality: str) -> torch.Tensor:
        if self.cache.has(terms, modality):
            return self.cache.lookup(terms, modality)
        return self.cache.get(self.encoder(), terms, modality)


class TextPromptedSegmentation:
    """Segment every case of ``input_dict`` (see :mod:`bundles.engines.cases`) and write the outputs.

    Args:
        inferer: whole-image inferer returning masks on the input grid.
        query_provider: ``(terms, modality) -> (Q, D)`` query embeddings (normally the embedding cache).
        vocabulary: prompt vocabulary used to validate terms before any model work.
        input_dict: the cases (``{'image': ..., 'prompts': [...], 'modality': 'ct'}`` or ``{'cases': ...}``).
        output_dir: folder receiving one sub-folder per case, plus the evaluation report.
        allow_free_text: let prompts outside the vocabulary through (for encoders that generalise).
        dicom_seg: write DICOM-SEG; ``None`` = exactly when the input is a DICOM series.
        tolerance_mm: NSD tolerance for evaluation (SAT: 1 mm).
        progress: show a progress bar over cases.
        skip_existing: skip a case whose complete outputs exist (``legend.json`` is written after its NIfTI
            files, so its presence means the case finished).
        provenance: model, weights, configs and date (:func:`bundles.engines.provenance.model_provenance`),
            recorded in every legend, DICOM-SEG and report.

    A case that fails (unreadable image, ...) is reported in one line and in ``failures.csv``; the other cases
    still run, and :meth:`run` raises :class:`CaseFailures` at the end, so the command exits non-zero.
    """

    def __init__(
        self,
        inferer: TextPromptedInferer,
        query_provider: QueryProvider,
        vocabulary: SATVocabulary,
        input_dict: Mapping[str, Any],
        output_dir: str | PathLike,
        *,
        allow_free_text: bool = False,
        dicom_seg: bool | None = None,
        tolerance_mm: float = 1.0,
        progress: bool = True,
        skip_existing: bool = False,
        provenance: Mapping[str, Any] | None = None,
    ):
        self.inferer = inferer
        self.query_provider = query_provider
        self.vocabulary = vocabulary
        self.input_dict = input_dict
        self.output_dir = Path(output_dir)
        self.allow_free_text = allow_free_text
        self.dicom_seg = dicom_seg
        self.tolerance_mm = tolerance_mm
        self.progress = progress
        self.skip_existing = skip_existing
        self.provenance = dict(provenance or {})

    def run(self) -> list[dict[str, Any]]:
        """Process all cases; return the metric rows (empty when no case has a reference mask).

        Raises:
            CaseFailures: after all other cases ran, when at least one case failed.
        """
        rows: list[dict[str, Any]] = []
        failures: list[tuple[Case, str]] = []
        prepared = prepare_cases(self.input_dict, self.vocabulary, self.allow_free_text, self.dicom_seg)
        for case, modality, terms in tqdm(prepared, desc="cases", unit="case", disable=not show_progress(self.progress)):
            if self.skip_existing and (self.output_dir / case.id / "legend.json").is_file():
                logger.info("%s: complete outputs exist in %s, skipped", case.id, self.output_dir / case.id)
                continue
            try:
                rows.extend(self._segment(case, modality, terms))
            except Exception as e:  # noqa: BLE001 - one bad case must not stop the others; reported below
                reason = str(find_bundle_error(e) or f"{type(e).__name__}: {e}").splitlines()[0]
                logger.error("%s failed: %s", case.id, reason)
                failures.append((case, reason))
        if rows:
            report = write_report(rows, self.output_dir, group_by=("class", "dataset", "region"), provenance=self.provenance or None)
            print(format_table(rows))
            logger.info("evaluation report: %s", {k: str(v) for k, v in report.items()})
        if failures:
            raise CaseFailures(failures, self._write_failures(failures), len(prepared))
        return rows

    def _segment(self, case: Case, modality: str, terms: list[str]) -> list[dict[str, Any]]:
        """Read, segment, write and (with a reference mask) score one case; return its metric rows."""
        start = time.perf_counter()
        image, grid = read_image(case.image, frame=case.frame)
        if modality == "ct":
            check_ct_intensities(image, case.image)
        queries = self.query_provider(terms, modality)
        masks = self.inferer(image, grid, queries, modality)
        files = write_segmentation(
            masks, terms, grid, self.output_dir / case.id, dicom_seg=self.dicom_seg, provenance=self.provenance,
            algorithm_name=self.provenance.get("model", "medseg-bundles"), algorithm_version=weights_id(self.provenance) or None,
        )
        if "dicom_seg_error" in files:
            logger.warning("%s: NIfTI outputs written, DICOM-SEG not: %s", case.id, files["dicom_seg_error"])
        voxels = {t: int(m.sum()) for t, m in zip(terms, masks)}
        logger.info("%s: %.1f s, voxels per prompt %s, wrote %s", case.id, time.perf_counter() - start, voxels,
                    files.get("seg", self.output_dir / case.id))
        return self._score(case, modality, terms, masks, grid) if case.mask is not None else []

    def _write_failures(self, failures: list[tuple[Case, str]]) -> Path:
        path = self.output_dir / "failures.csv"

        def write(tmp: Path) -> None:
            with tmp.open("w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(["case", "image", "reason"])
                writer.writerows([c.id, str(c.image), reason] for c, reason in failures)

        return atomic_write(path, write)

    def _score(self, case: Case, modality: str, terms: list[str], masks, grid) -> list[dict[str, Any]]:
        scored = [t for t in terms if t in case.legend.values()]
        if not scored:
            return []
        refs = load_reference_masks(case.mask, case.legend, scored, grid)
        preds = {t: masks[terms.index(t)] for t in scored}
        rows = evaluate_case(
            preds,
            dict(zip(scored, refs)),
            grid.spacing,
            case_id=case.id,
            tolerance_mm=self.tolerance_mm,
            extra={"dataset": case.dataset or "-", "modality": modality},
        )
        for row in rows:
            row["region"] = self.vocabulary.region_of(row["class"], modality)
        return rows
