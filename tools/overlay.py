"""Draw the overlay figure of one segmented case: your own scan, not only the main job's.

    python -m tools.overlay --case_dir output/case_1        # the image is the source legend.json records
    python -m tools.overlay --image scan.nii.gz --case_dir output/case_1
    python -m tools.overlay --image dicom_series/ --case_dir output/case_1 --output case_1.png \\
        --reference labels.nii.gz --reference_legend legend.json --window percentile
    python -m tools.overlay --image scan.nii.gz --case_dir output/case_1 --reference labels.nii.gz \\
        --reference_legend='{1: "liver", 2: "spleen"}' --window='[-1000,400]'

``case_dir`` is a folder the bundle wrote for one case (``<output_dir>/<case id>/`` with ``seg.nii.gz``,
``masks/<term>.nii.gz`` and ``legend.json``). The figure shows an axial and a coronal slice through the centre
of the largest predicted mask, in radiological convention (patient's right on the viewer's left), with the
predicted contours solid and, with ``--reference``, the reference contours dashed.
"""

from __future__ import annotations

import fire

from bundles.errors import install_excepthook
from bundles.visualize.case_overlay import save_case_overlay


def overlay(
    case_dir: str,
    image: str | None = None,
    output: str | None = None,
    reference: str | None = None,
    reference_legend: str | dict | None = None,
    window: str | tuple = "ct",
    title: str | None = None,
    show_empty: bool = False,
) -> None:
    """Write an overlay PNG of a case folder's predicted masks on the image they were segmented from.

    Args:
        case_dir: the case folder written by the bundle, <output_dir>/<case id>/, holding legend.json and
            the masks/<term>.nii.gz files it lists.
        image: the scan the case was segmented from: a .nii/.nii.gz/.nrrd/.mha file or a folder holding
            one DICOM series (default: the source path legend.json records). The masks must lie on its grid.
        output: PNG file to write (atomically); default <case_dir>/overlay.png.
        reference: optional reference label map (NIfTI/NRRD/MHA or DICOM folder) drawn dashed; it may lie on
            another grid, it is resampled onto the image in world coordinates (nearest neighbour).
        reference_legend: label value -> class name of the reference, as a JSON file holding that mapping
            or as an inline dict literal (example at the top of tools/overlay.py). Default the case's
            legend.json labels (a reference numbered like seg.nii.gz). Classes it does not name get no
            reference contour.
        window: grey-level display range: "ct" (soft-tissue window -160..240 HU, default), "percentile"
            (1st to 99th percentile of the image, for MR) or two numbers, e.g. --window='[-1000,400]'.
        title: figure title; default "<case id>: prediction (solid)[ vs reference (dashed)]".
        show_empty: also list classes whose masks are empty; by default only classes with a contour to draw
            are listed (all of them when every mask is empty).

    Prints the written path.
    """
    path = save_case_overlay(
        image, case_dir, output, reference=reference, reference_legend=reference_legend, window=window,
        title=title, show_empty=show_empty,
    )
    print(f"wrote {path}")


def main() -> None:
    install_excepthook()
    fire.Fire(overlay)


if __name__ == "__main__":
    main()
