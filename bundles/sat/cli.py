"""``medseg``: the console command (``[project.scripts]``) over the bundles' own jobs.

    medseg segment ct.nii.gz -o out --prompts liver spleen "left kidney"
    medseg segment dicom_folder/ -o out --prompts liver --model runs/train/model --dicom-seg
    medseg vocabulary --modality mri --search kidney

``segment`` runs :func:`bundles.sat.api.segment_to_folder` (the bundle's ``configs/inference.json``); prompts and paths are
checked before torch and MONAI are imported, so a typo costs a second, not a model load. Every error is one
line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _segment(args: argparse.Namespace) -> None:
    from bundles.errors import BundleInputError
    from bundles.sat.vocabulary import load_sat_vocabulary

    for image in args.images:
        if not Path(image).exists():
            raise BundleInputError(image, "no such file or folder")
    load_sat_vocabulary().match(args.prompts, args.modality, allow_free_text=args.free_text)  # fails fast on typos

    from bundles.sat.api import segment_to_folder

    # only the flags given: anything else keeps the value of the model's own configs (e.g. configs/demo.json)
    flags = {"dicom_seg": args.dicom_seg, "skip_existing": args.skip_existing,
             "keep_largest_component": args.largest_component, "allow_free_text": args.free_text}
    options = {key: True for key, given in flags.items() if given}
    images = args.images if len(args.images) > 1 else args.images[0]
    out = segment_to_folder(images, args.output, args.prompts, modality=args.modality, bundle=args.bundle, model_dir=args.model,
                  device=args.device, **options)
    print(f"outputs: {Path(out).resolve()}")


def _vocabulary(args: argparse.Namespace) -> None:
    from bundles.io.modality import normalize_modality
    from bundles.sat.vocabulary import load_sat_vocabulary

    vocabulary = load_sat_vocabulary()
    modalities = [normalize_modality(args.modality)] if args.modality else ["ct", "mri", "pet"]
    for modality in modalities:
        terms = [t for t in vocabulary.terms(modality) if not args.search or args.search.lower() in t]
        print(f"# {modality}: {len(terms)} terms" + (f" containing {args.search!r}" if args.search else ""))
        for term in terms:
            print(term)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medseg", description="Segment CT/MR/PET scans with the medseg bundles.")
    commands = parser.add_subparsers(dest="command", required=True)

    seg = commands.add_parser(
        "segment", help="segment scans with text prompts (SAT)",
        description="Segment one or more scans; outputs land on each input's own grid under OUTPUT/<case id>/.",
    )
    seg.add_argument("images", nargs="+", help="NIfTI/NRRD/MHA files, DICOM series folders, or folders of image files")
    seg.add_argument("-o", "--output", required=True, help="output folder (one sub-folder per case)")
    seg.add_argument("-p", "--prompts", nargs="+", required=True,
                     help="structures to segment: SAT terms ('liver', 'left kidney'), TotalSegmentator names "
                          "('kidney_left') or abbreviations ('IVC'); list them with `medseg vocabulary`")
    seg.add_argument("-m", "--modality", default="ct", help="ct, mri or pet (default: ct)")
    seg.add_argument("--bundle", default="sat_nano", help="sat_nano (default) or sat_pro")
    seg.add_argument("--model", default=None,
                     help="weights folder (default: the bundle's models/ with converted official weights); a folder "
                          "trained here runs with the configs named in its training.json")
    seg.add_argument("--device", default="auto", help="auto (CUDA if present, default), cpu or cuda:N")
    seg.add_argument("--dicom-seg", action="store_true", help="require DICOM-SEG output (refused for non-DICOM input); "
                     "without this flag a DICOM-SEG is written whenever the input is a DICOM series")
    seg.add_argument("--skip-existing", action="store_true", help="skip cases whose complete outputs already exist")
    seg.add_argument("--largest-component", action="store_true", help="keep only the largest connected part of each mask (default: the model's configs decide)")
    seg.add_argument("--free-text", action="store_true", help="let prompts outside the vocabulary through")
    seg.set_defaults(handler=_segment)

    voc = commands.add_parser("vocabulary", help="list the prompt terms per modality",
                              description="Print the terms the SAT models know, per modality.")
    voc.add_argument("-m", "--modality", default=None, help="ct, mri or pet (default: all three)")
    voc.add_argument("-s", "--search", default=None, help="only terms containing this text")
    voc.set_defaults(handler=_vocabulary)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``medseg``; returns the exit status (errors: one line on stderr, status 1)."""
    from bundles.errors import BundleError, find_bundle_error, install_excepthook

    args = _parser().parse_args(argv)
    install_excepthook(getattr(args, "output", None))
    try:
        args.handler(args)
    except BundleError as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - bundle runs wrap errors; unwrap, or hand over to the excepthook
        found = find_bundle_error(error)
        if found is None:
            raise
        print(f"error: {type(found).__name__}: {found}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
