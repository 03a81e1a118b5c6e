"""Write demo datasets (synthetic CT phantoms, the MNI152 brain case); see :class:`DemoData`."""

from __future__ import annotations

import json
from os import PathLike
from pathlib import Path

import fire
import nibabel as nib
import numpy as np

from bundles.errors import ConfigurationError, install_excepthook
from bundles.io.atomic import atomic_write, atomic_write_json

__all__ = ["DemoData", "phantoms", "mni"]


def _write_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    image = nib.Nifti1Image(array, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    return atomic_write(path, lambda tmp: nib.save(image, tmp))


def _write_case(
    case_dir: Path, image: np.ndarray, labels: np.ndarray, affine: np.ndarray, legend: dict[int, str], **meta: str
) -> dict:
    """Write one case folder; return its ``dataset.jsonl`` entry."""
    image_path = _write_nifti(case_dir / "image.nii.gz", image, affine)
    mask_path = _write_nifti(case_dir / "label.nii.gz", labels, affine)
    legend_json = {str(value): name for value, name in sorted(legend.items())}
    atomic_write_json(case_dir / "legend.json", legend_json)
    present = [name for value, name in sorted(legend.items()) if (labels == value).any()]
    print(f"wrote {image_path}, {mask_path}, {case_dir / 'legend.json'} ({len(present)} labels)")
    return {
        "image": str(image_path.resolve()),
        "mask": str(mask_path.resolve()),
        "label": present,
        **meta,
        "legend": legend_json,
    }


def _write_jsonl(output_dir: Path, entries: list[dict]) -> Path:
    text = "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries)
    path = atomic_write(output_dir / "dataset.jsonl", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    print(f"wrote {path} ({len(entries)} cases)")
    return path


def phantoms(output_dir: str | PathLike, n: int = 4, seed: int = 0, dicom: bool = False) -> str:
    """Write n synthetic abdominal CT phantoms with organ labels and a dataset.jsonl.

    Args:
        output_dir: folder for phantom_000/, phantom_001/, ... and dataset.jsonl (created if missing).
        n: number of phantoms (at least 1).
        seed: seed of the first phantom; phantom k uses seed + k, so a run is reproducible.
        dicom: also write each image as a DICOM CT series in phantom_XXX/dicom/.

    Returns:
        The path of dataset.jsonl.
    """
    from bundles.data.phantom import make_ct_phantom

    if not isinstance(n, int) or n < 1 or not isinstance(seed, int):
        raise ConfigurationError(f"--n {n!r} must be an integer >= 1 and --seed {seed!r} an integer")
    if dicom:  # imported before any work, so a missing DICOM writer fails fast
        from bundles.io.dicom_series import write_dicom_series
    output = Path(output_dir)
    entries = []
    for k in range(n):
        phantom = make_ct_phantom(seed + k)
        case_dir = output / f"phantom_{k:03d}"
        arrays = (phantom.image, phantom.labels, phantom.affine, phantom.legend)
        entries.append(_write_case(case_dir, *arrays, modality="ct", dataset="phantom"))
        if dicom:
            write_dicom_series(
                phantom.image,
                phantom.affine,
                case_dir / "dicom",
                patient_id=f"PHANTOM{seed + k:03d}",
                series_description=f"synthetic abdominal CT phantom, seed {seed + k}",
            )
            print(f"wrote {case_dir / 'dicom'}")
    return str(_write_jsonl(output, entries))


def mni(output_dir: str | PathLike, resolution: int = 1) -> str:
    """Write the MNI152 2009 T1 template with grey/white-matter labels and a dataset.jsonl.

    Args:
        output_dir: folder for mni152/ and dataset.jsonl (created if missing).
        resolution: voxel size in mm; 1 is the grid nilearn ships, other values are resampled by nilearn.

    Returns:
        The path of dataset.jsonl.
    """
    from bundles.data.mni import make_mni_case

    case = make_mni_case(resolution=resolution)
    output = Path(output_dir)
    entry = _write_case(
        output / "mni152", case.image, case.labels, case.affine, case.legend, modality="mri", dataset="mni152"
    )
    return str(_write_jsonl(output, [entry]))


class DemoData:
    """Write demo datasets: synthetic CT phantoms and the MNI152 brain case, each with a ``dataset.jsonl``.

    Commands (``python -m tools.make_demo_data <command> --help`` shows each command's options):

      phantoms --output_dir DIR [--n 4] [--seed 0] [--dicom False]
          ``n`` abdominal CT phantoms (bundles.data.phantom); case ``k`` uses seed ``seed + k``.
          ``--dicom True`` also writes each image as a DICOM CT series in ``phantom_XXX/dicom/``.
      mni --output_dir DIR [--resolution 1]
          the MNI152 2009 T1 template with grey/white-matter labels (bundles.data.mni), from nilearn's copy.

    Each case folder holds ``image.nii.gz``, ``label.nii.gz`` (uint8 label map) and ``legend.json``
    (``{"<value>": "<SAT term>"}``). ``DIR/dataset.jsonl`` gets one line per case in the SAT-DS style:
    ``{"image", "mask", "label": [terms present], "modality", "dataset", "legend"}`` with absolute paths; an
    existing ``dataset.jsonl`` in ``DIR`` is replaced, so give each command its own ``--output_dir``. Every file
    is written atomically (temporary file, then rename).
    """

    phantoms = staticmethod(phantoms)
    mni = staticmethod(mni)


def main() -> None:
    """Command-line entry point (python-fire)."""
    install_excepthook()
    fire.Fire(DemoData)


if __name__ == "__main__":
    main()
