"""``medseg``: the console command of every bundle (``[project.scripts]``).

    medseg bundles                                          the bundles, their prompts, whether weights are in place
    medseg segment IMAGE... -o OUT --bundle B [prompts]     segment scans (``medseg segment --help``: one example per bundle)
    medseg vocabulary [--bundle B] [--modality ct] [--search kidney]
    medseg convert B ARGS...                                prepare B's weights (its declared converter)
    medseg serve ARGS...                                    the MONAI Label server (``python -m tools.serve``)

Nothing here names a bundle or a family: the bundles are the folders found by
:func:`bundles.bundle_configs.bundle_folders` (the repository's, and those of ``MEDSEG_BUNDLE_PATH``), each read through its declared ids
(:mod:`bundles.bundle_declarations`). Every error is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from collections.abc import Sequence

__all__ = ["main"]

EPILOG_HEAD = "examples (one per bundle; `medseg bundles` shows which have weights in place):"


def _examples() -> str:
    from bundles.bundle_configs import bundle_names
    from bundles.bundle_declarations import declaration

    return "\n".join([EPILOG_HEAD, *(f"  {declaration(b).example}" for b in bundle_names())])


def _bundles(args: argparse.Namespace) -> None:
    from bundles.bundle_configs import bundle_names
    from bundles.bundle_declarations import declaration
    from bundles.console.prompt_flags import FLAG_OF_KIND

    for name in bundle_names():
        declared = declaration(name)
        prompts = " / ".join(FLAG_OF_KIND[k] for k in declared.prompt_kinds) or "none (segments its own classes)"
        missing = declared.missing_weights(None)
        weights = f"in place ({declared.folder / 'models'})" if not missing else f"missing: {declared.how_to_get_weights}"
        print(f"{name}\n  prompts: {prompts}\n  weights: {weights}\n  example: {declared.example}")


def _vocabulary(args: argparse.Namespace) -> None:
    from bundles.bundle_configs import bundle_names
    from bundles.bundle_declarations import declaration, load_vocabulary
    from bundles.errors import ConfigurationError
    from bundles.io.modality import MODALITIES, normalize_modality

    text_bundles = [b for b in bundle_names() if "text" in declaration(b).prompt_kinds]
    if not text_bundles:
        raise ConfigurationError("no bundle takes text prompts")
    vocabulary = load_vocabulary(declaration(args.bundle or text_bundles[0]))
    modalities = [normalize_modality(args.modality)] if args.modality else [m for m in MODALITIES if vocabulary.terms(m)]
    for modality in modalities:
        terms = [t for t in vocabulary.terms(modality) if not args.search or args.search.lower() in t]
        print(f"# {modality}: {len(terms)} terms" + (f" containing {args.search!r}" if args.search else ""))
        for term in terms:
            print(term)


def _run_module(module: str, argv: Sequence[str]) -> None:
    """``python -m module *argv`` in this process (the module reads ``sys.argv``)."""
    sys.argv = [module, *argv]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def _serve(args: argparse.Namespace) -> None:
    _run_module("tools.serve", args.args)


def _convert(args: argparse.Namespace) -> None:
    from bundles.bundle_declarations import declaration

    _run_module(declaration(args.bundle).converter, args.args)


def _segment_parser(commands: argparse._SubParsersAction) -> None:
    from bundles.console.segment import segment_command

    seg = commands.add_parser(
        "segment", help="segment scans with any bundle", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Segment one or more scans; outputs land on each input's own grid under OUTPUT/<case id>/ (seg.nii.gz, "
                    "masks/<name>.nii.gz, legend.json, and seg.dcm (DICOM-SEG) for a DICOM series). Paths, prompts and "
                    "weights are checked before any model library loads.",
        epilog=_examples())
    seg.add_argument("images", nargs="+", help="NIfTI (.nii, .nii.gz), NRRD or MHA/MHD files, DICOM series folders, or folders of image files")
    seg.add_argument("-o", "--output", required=True, help="output folder (one sub-folder per case)")
    seg.add_argument("-b", "--bundle", required=True, help="the bundle to run (`medseg bundles` lists them and their prompts)")
    prompts = seg.add_argument_group("prompts (which ones a bundle takes: `medseg bundles`)")
    prompts.add_argument("-p", "--prompts", nargs="+", metavar="TERM",
                         help="text bundles: structures to segment, vocabulary terms ('liver', 'left kidney'), TotalSegmentator "
                              "names ('kidney_left', 'vena_cava_inferior') or abbreviations ('IVC'); `medseg vocabulary` lists them")
    prompts.add_argument("--clicks", nargs="+", metavar="I,J,K[,L]",
                         help="click bundles: clicks on one object, in order; I,J,K voxel indices of the input (or RAS mm with "
                              "--world); L=1 inside (default), 0 outside; e.g. --clicks 156,303,10 200,280,12,0")
    prompts.add_argument("--boxes", nargs="+", metavar="I0,J0,K0,I1,J1,K1",
                         help="box bundles: one object per box, inclusive voxel corners (or RAS mm with --world); with one box, "
                              "--clicks refine that same object")
    prompts.add_argument("--name", default=None, help="name of the clicked or boxed object (default 'object'; several boxes: NAME_1, NAME_2, ...)")
    prompts.add_argument("--objects", default=None, metavar="FILE",
                         help="click and box bundles: a JSON file with a list of objects, e.g. "
                              "[{\"name\": \"liver\", \"points\": [[156, 303, 10]], \"point_labels\": [1]}, {\"name\": \"spleen\", \"box\": [...]}]")
    prompts.add_argument("--world", action="store_true", help="coordinates of --clicks, --boxes and --objects are RAS millimetres, not voxel indices")
    prompts.add_argument("-m", "--modality", default=None, help="ct, mri or pet (text bundles: default ct; others use it where they window intensities)")
    seg.add_argument("--model", default=None,
                     help="weights folder (default: the bundle's models/, where converted official weights go); a folder "
                          "trained here runs with the configs named in its training.json")
    seg.add_argument("--device", default="auto", help="auto (CUDA if present, default), cpu or cuda:N")
    seg.add_argument("--dicom-seg", dest="dicom_seg", action="store_true",
                     help="require DICOM-SEG output (refused for non-DICOM input); without it a DICOM-SEG is written whenever the input is a DICOM series")
    seg.add_argument("--skip-existing", dest="skip_existing", action="store_true", help="skip cases whose complete outputs already exist")
    seg.add_argument("--largest-component", dest="largest_component", action="store_true",
                     help="keep only the largest connected part of each mask (bundles that have the setting; default: the model's configs decide)")
    seg.add_argument("--free-text", dest="free_text", action="store_true", help="text bundles: let prompts outside the vocabulary through")
    seg.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="any other setting: a config id of the bundle's configs/inference.json, the value as JSON or text, "
                          "e.g. --set tiling=fit (text bundles: fewer, larger windows; see the SAT-Nano docs) --set threshold=0.4; repeatable")
    seg.add_argument("-v", "--verbose", action="store_true", help="show the libraries' INFO lines too (MONAI's run summary, highdicom)")
    seg.set_defaults(handler=segment_command)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medseg", description="Segment CT/MR/PET scans with the medseg bundles.")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("bundles", help="list the bundles, their prompts and whether their weights are in place")
    listing.set_defaults(handler=_bundles)
    _segment_parser(commands)
    voc = commands.add_parser("vocabulary", help="list the prompt terms of a text bundle, per modality",
                              description="Print the terms a text-prompted bundle knows, per modality.")
    voc.add_argument("-b", "--bundle", default=None, help="a text bundle (default: the first one `medseg bundles` lists)")
    voc.add_argument("-m", "--modality", default=None, help="ct, mri or pet (default: every modality)")
    voc.add_argument("-s", "--search", default=None, help="only terms containing this text")
    voc.set_defaults(handler=_vocabulary)
    # these two hand every further argument to the tool they run (see main)
    convert = commands.add_parser("convert", add_help=False, help="prepare a bundle's weights: `medseg convert BUNDLE --help`")
    convert.add_argument("bundle")
    convert.set_defaults(handler=_convert, passes_arguments=True)
    serve = commands.add_parser("serve", add_help=False, help="the MONAI Label server: `medseg serve --help`")
    serve.set_defaults(handler=_serve, passes_arguments=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``medseg``; returns the exit status (errors: one line on stderr, status 1)."""
    from bundles.errors import BundleError, find_bundle_error, install_excepthook

    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "passes_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.args = rest
    install_excepthook(getattr(args, "output", None))
    try:
        args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, where it is handled, not at exit
    except BrokenPipeError:  # the reader stopped early (`medseg bundles | head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
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
