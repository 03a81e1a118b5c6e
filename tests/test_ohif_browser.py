"""OHIF v3 in a real browser against the server, whose studies are a real Orthanc DICOMweb archive.

Debian's chromium, driven by Playwright (``tests/browser.py``), opens the OHIF build that ships inside the
monailabel wheel at ``<server>/ohif/``, opens patient B's study (the shipped 20-slice CT series, uploaded to
Orthanc with a phantom beside it) from OHIF's study list in the MONAI Label mode, connects the MONAI Label
panel, runs SAT-Nano from the Class Prompts tab (class picker: liver) and SAM-Med3D from the Point Prompts tab
(one click, run first), and checks what the viewer then holds: its segmentation state (the label map the plugin writes
answers into, read through ``window.services.segmentationService``). The label map is then saved through
the plugin's own client (``PUT /datastore/label``) and comes back from Orthanc as a DICOM-SEG.

The models are the tiny ones of ``tests/live_server.py`` (every logit positive: SAT's answer is its whole
window, SAM-Med3D's its 32-voxel window of 1.5 mm around the click), so what is checked is the geometry of the
whole path, browser included. Screenshots go to the module's temporary folder (printed); with
``MEDSEG_WRITE_SCREENSHOTS=1`` the SAT one is also written to ``docs/images/ohif_sat_liver.png``, and
``MEDSEG_OHIF_SAT_MODEL=<folder>`` serves that SAT-Nano model instead of the tiny one (the README's screenshot
shows the demo model of README command 1, ``demo_output/ct/model``).

What the bundled plugin cannot do with this server (see ``tests/browser.py`` for what it does):

- it has no save action: ``MonaiLabelClient.save_label`` exists but no button calls it (MONAILabel issue
  #1805), so the test calls that client method itself, from the page, with OHIF's label map;
- its Auto-Segmentation tab sends no prompt, which SAT refuses (422): SAT is run from Class Prompts;
- its label map is uint8 and holds one segment per label of every model, numbered by name: SAT classes whose
  ``labels`` index or whose rank by name is above 255 (spleen: index 275, rank 410) cannot come back to it;
  the server refuses the first kind with a 422 saying so;
- SAM-UNet's box prompt has no tool in it: SAM-UNet is driven by its clicks only.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from bundles.data.examples import EXAMPLES
from tests.needs import require

require(packages=("monailabel", "playwright"), programs=("chromium", "Orthanc"))

import pydicom  # noqa: E402 - after the skip: dependencies of the extras
import requests  # noqa: E402

from tests.browser import OhifViewer, launched_chromium  # noqa: E402
from tests.live_server import REPO, running_server, tiny_model_dirs  # noqa: E402
from tests.orthanc import read_dicom_headers, running_orthanc, upload_folder, write_phantom_series  # noqa: E402

PATIENT_B = EXAMPLES["ct_dicom_series"].image
CLICK = (150, 250)  #: in-plane voxel (column i, row j) of patient B clicked in the axial viewport: in the liver
SAM_WINDOW_MM = 48.0  #: SAM-Med3D's window: 32 voxels of 1.5 mm
DOCS_SCREENSHOT = REPO / "docs" / "images" / "ohif_sat_liver.png"


@pytest.fixture(scope="module")
def ohif(tmp_path_factory, tiny_sat_model):
    """Orthanc (patient B + a phantom), the server on its DICOMweb root, and OHIF in chromium showing patient
    B's study in the MONAI Label mode with the panel connected."""
    root = tmp_path_factory.mktemp("ohif_browser")
    shots = root / "screenshots"
    shots.mkdir()
    print(f"\nscreenshots: {shots}")
    write_phantom_series(root / "phantom_dicom", patient_id="ORTHANC_PHANTOM")
    patient_id = str(read_dicom_headers(PATIENT_B)[0][1].PatientID)
    with running_orthanc(root / "orthanc") as archive:
        (b_series,) = upload_folder(archive, PATIENT_B)
        upload_folder(archive, root / "phantom_dicom")
        (root / "server").mkdir()
        model_dirs = tiny_model_dirs(root / "server", tiny_sat_model)
        if os.environ.get("MEDSEG_OHIF_SAT_MODEL"):
            model_dirs["sat_nano"] = str(Path(os.environ["MEDSEG_OHIF_SAT_MODEL"]).resolve())
        with running_server(root / "server", archive.dicomweb, model_dirs) as server, \
                launched_chromium() as browser:
            viewer = OhifViewer.open(browser, server.url, shots)
            viewer.open_study(patient_id)
            viewer.connect()
            viewer.screenshot("02_connected")
            labels = requests.get(f"{server.url}/info/", timeout=30).json()["models"]["sat_nano"]["labels"]
            yield SimpleNamespace(viewer=viewer, archive=archive, server=server, b_series=b_series, sat_labels=labels, shots=shots)


def _nrrd_header(body: bytes) -> dict[str, str]:
    head = body.split(b"\n\n", 1)[0].decode("ascii").splitlines()
    assert head[0].startswith("NRRD"), head[:3]
    return dict(line.split(": ", 1) for line in head[1:] if ": " in line)


def _vectors(text: str) -> np.ndarray:
    return np.array([[float(v) for v in part.strip("()").split(",")] for part in text.split()])


@pytest.fixture(scope="module")
def sam(ohif):
    """One SAM-Med3D click (label gallbladder) from the Point Prompts tab."""
    viewer = ohif.viewer
    params, body = viewer.run_point_prompt("sam_med3d", "gallbladder", CLICK)
    value = viewer.segment_indices()["gallbladder"]
    viewer.wait_for_voxels(value)
    viewer.screenshot("03_sam_med3d_click")
    return SimpleNamespace(params=params, body=body, value=value, counts=viewer.labelmap_counts())


@pytest.fixture(scope="module")
def sat(ohif, sam):
    """SAT-Nano run from the Class Prompts tab with liver ticked, after the click (the plugin writes an answer
    only over background and the answer's own segment, so the click's segment stays whole)."""
    viewer = ohif.viewer
    params, body = viewer.run_class_prompts("sat_nano", ["liver"])
    liver = viewer.segment_indices()["liver"]
    viewer.wait_for_voxels(liver)
    viewer.screenshot("04_sat_liver")
    viewer.one_up()
    shot = viewer.screenshot("05_sat_liver_axial")
    if os.environ.get("MEDSEG_WRITE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, DOCS_SCREENSHOT)
    return SimpleNamespace(params=params, body=body, liver=liver, counts=viewer.labelmap_counts())


def test_one_sam_med3d_click_becomes_a_segment_of_its_window_around_the_click(ohif, sam):
    viewer = ohif.viewer
    (click,) = sam.params["foreground"]
    assert sam.params["background"] == [] and np.abs(np.subtract(click[:2], CLICK)).max() <= 1, click
    assert set(sam.counts) == {sam.value}, f"only the click's segment has voxels: {sam.counts}\n{viewer.log()}"
    assert viewer.voxel_value(click) == sam.value, "the window holds the clicked voxel"
    lo, hi = viewer.segment_box(sam.value)
    size = np.subtract(hi, lo) + 1
    assert sam.counts[sam.value] == size.prod(), "a whole box (every logit positive)"
    extent_mm = size * np.array(viewer.displayed_grid()["spacing"])
    assert np.all(np.abs(extent_mm[:2] - SAM_WINDOW_MM) <= 3), extent_mm
    assert (lo[2], hi[2]) == (0, 19), "48 mm across 2 mm slices: every one of the 20"


def test_sat_liver_from_the_class_picker_becomes_a_liver_segment_with_voxels(ohif, sam, sat):
    assert sat.params["label_prompt"] == [ohif.sat_labels["liver"]]
    assert sat.counts.get(sat.liver, 0) > 0, f"no liver voxels in OHIF's label map: {sat.counts}\n{ohif.viewer.log()}"
    assert set(sat.counts) == {sat.liver, sam.value} and sat.counts[sam.value] == sam.counts[sam.value], \
        "the click's segment stays whole beside SAT's liver"
    # the answer OHIF read is an NRRD on exactly the grid it shows (so its raw voxels land where they belong)
    header, grid = _nrrd_header(sat.body), ohif.viewer.displayed_grid()
    assert header["type"] == "uint8" and header["encoding"] == "raw"
    assert [int(s) for s in header["sizes"].split()] == grid["dimensions"] == [512, 512, 20]
    assert np.allclose(_vectors(header["space origin"])[0], grid["origin"], atol=1e-3)
    axes = np.array(grid["direction"]).reshape(3, 3) * np.array(grid["spacing"])[:, None]
    assert np.allclose(_vectors(header["space directions"]), axes, atol=1e-4)


def test_saving_sends_the_label_map_to_the_server_and_a_dicom_seg_appears_in_orthanc(ohif, sat, sam):
    viewer = ohif.viewer
    names = {"liver": sat.liver, "gallbladder": sam.value}
    saved = viewer.save_through_plugin_client(names)
    assert saved["status"] == 200, f"{saved}\n{viewer.log()}"
    assert ("PUT", "/datastore/label", 200) in viewer.answers
    assert saved["series"] == ohif.b_series
    found = requests.get(f"{ohif.archive.dicomweb}/series", params={"Modality": "SEG"}, timeout=30).json()
    assert len(found) == 1, found
    seg_uid = found[0]["0020000E"]["Value"][0]
    (orthanc_id,) = requests.post(f"{ohif.archive.url}/tools/lookup", data=seg_uid, timeout=30).json()
    (instance,) = requests.get(f"{ohif.archive.url}/series/{orthanc_id['ID']}/instances", timeout=30).json()
    seg = pydicom.dcmread(io.BytesIO(requests.get(f"{ohif.archive.url}/instances/{instance['ID']}/file", timeout=60).content))
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == ohif.b_series
    labels = {s.SegmentNumber: s.SegmentLabel for s in seg.SegmentSequence}
    assert sorted(labels.values()) == ["gallbladder", "liver"]
    frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    segment_of = [labels[f.SegmentIdentificationSequence[0].ReferencedSegmentNumber] for f in seg.PerFrameFunctionalGroupsSequence]
    voxels = {name: int(sum(frames[n].sum() for n, s in enumerate(segment_of) if s == name)) for name in labels.values()}
    assert voxels == {"liver": sat.counts[sat.liver], "gallbladder": sat.counts[sam.value]}, "every voxel OHIF held, no more"
    # the clicked voxel, found again in the SEG frame at its slice's position: no flip or shift on the way
    grid = viewer.displayed_grid()
    (click,) = sam.params["foreground"]
    z = grid["origin"][2] + click[2] * grid["spacing"][2]
    (frame,) = [n for n, f in enumerate(seg.PerFrameFunctionalGroupsSequence) if segment_of[n] == "gallbladder"
                and abs(float(f.PlanePositionSequence[0].ImagePositionPatient[2]) - z) < 1e-3]
    assert frames[frame][click[1], click[0]] == 1
    viewer.screenshot("06_saved")
