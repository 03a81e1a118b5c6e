"""``medseg segment``: scans through any bundle's own ``configs/inference.json`` job, checked first in well
under a second.

Before torch or MONAI load: the bundle's declared prompt kinds against the flags given, text prompts against
the bundle's vocabulary, every input (a supported file or a folder of DICOM images), the output folder, the
model folder, its weights files and the configs its model card names. Then the job itself runs, which checks
each case's prompts against its image with the bundle's own prompt check before any model loads, and writes
the usual files (``<output>/<case>/seg.nii.gz`` on the input grid, ``masks/``, ``legend.json``, DICOM-SEG for
DICOM input).
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import warnings
from pathlib import Path
from typing import Any

from bundles.bundle_configs import model_overlay_files
from bundles.bundle_declarations import BundleDeclaration, declaration, load_vocabulary
from bundles.console.prompt_flags import prompt_fields
from bundles.errors import BundleInputError, CheckpointError, ConfigurationError
from bundles.io.cases import parse_cases
from bundles.io.formats import check_image_path
from bundles.io.output_folder import check_output_dir

__all__ = ["SETTING_FLAGS", "check_command", "segment_command", "quiet_libraries"]

#: ``medseg segment`` switches -> the config id each sets to true (only when given: otherwise the model's own
#: configs decide, e.g. a demo model's ``configs/demo.json``).
SETTING_FLAGS = {"dicom_seg": "dicom_seg", "skip_existing": "skip_existing", "largest_component": "keep_largest_component",
                 "free_text": "allow_free_text"}

#: Loggers whose INFO lines say nothing a user acts on (MONAI's run summary, highdicom's copied attributes).
CHATTY_LOGGERS = ("monai.bundle.scripts", "monai.bundle.workflows", "highdicom")


def quiet_libraries() -> None:
    """Third-party INFO lines and MONAI's warning about parsing configs off (the configs run are this package's
    own); ``--verbose`` skips this."""
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="parsing config_file")


def _set_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` of ``--set``: the value as JSON (``0.4``, ``true``, ``[1, 2]``), else as the string given."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigurationError(f"--set {text!r}: expected KEY=VALUE (a config id of the bundle's configs/inference.json)")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def _settings(args: argparse.Namespace, declared: BundleDeclaration) -> dict[str, Any]:
    ids = json.loads((declared.folder / "configs" / "inference.json").read_text(encoding="utf-8"))
    settings = {}
    for flag, key in SETTING_FLAGS.items():
        if getattr(args, flag):
            if key not in ids:
                raise ConfigurationError(f"--{flag.replace('_', '-')}: the {declared.name} bundle has no such setting")
            settings[key] = True
    for text in args.set or []:
        key, value = _set_value(text)
        if key.split("#")[0] not in ids:
            close = difflib.get_close_matches(key, list(ids), n=3)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise ConfigurationError(f"--set {key}: not a setting of the {declared.name} bundle (its configs/inference.json){hint}")
        settings[key] = value
    return settings


def _check_model(declared: BundleDeclaration, model: str | None) -> None:
    if model is not None and not Path(model).is_dir():
        raise BundleInputError(model, "no such model folder (--model)")
    missing = declared.missing_weights(model)
    if missing:
        raise CheckpointError(f"missing model files: {', '.join(map(str, missing))}; {declared.how_to_get_weights}, or point "
                              "--model to the folder that holds them (`medseg bundles` shows where weights are in place)")
    model_overlay_files(declared.name, model)


def check_command(args: argparse.Namespace) -> tuple[BundleDeclaration, dict[str, Any], dict[str, Any]]:
    """Every check that needs no model library (module docstring); returns the bundle's declaration, the
    ``input_dict`` and the config settings of the run.

    Raises:
        BundleError: the first problem found, naming the flag, file or value.
    """
    declared = declaration(args.bundle)
    settings = _settings(args, declared)
    fields = prompt_fields(args, declared)
    if "prompts" in fields:
        load_vocabulary(declared).match(fields["prompts"], fields["modality"], allow_free_text=args.free_text)
    images = [str(p) for p in args.images]
    input_dict = {"image": images if len(images) > 1 else images[0], **fields}
    for case in parse_cases(input_dict):
        check_image_path(case.image)
        if args.dicom_seg and not case.image.is_dir():
            raise BundleInputError(case.image, "--dicom-seg needs a DICOM series folder as input (a DICOM-SEG references the "
                                   "source slices); this is a file: drop --dicom-seg (NIfTI outputs are always written)")
    check_output_dir(args.output)
    _check_model(declared, args.model)
    return declared, input_dict, settings


def segment_command(args: argparse.Namespace) -> None:
    """Check, then run the bundle's job; print where the outputs are.

    Raises:
        BundleError: bad flags, inputs, prompts or weights (before any model loads), or failed cases.
    """
    declared, input_dict, settings = check_command(args)
    if not args.verbose:
        quiet_libraries()
    from bundles.bundle_configs import run_inference

    run_inference(declared.name, args.model, input_dict=input_dict, output_dir=str(args.output), device=args.device, **settings)
    print(f"outputs: {Path(args.output).resolve()}")
