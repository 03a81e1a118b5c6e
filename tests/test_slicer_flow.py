"""3D Slicer's flow, exactly as its MONAI Label plugin sends it, through the client library the plugin uses
(``monailabel.client.MONAILabelClient``), against this repository's server whose studies are a real DICOMweb
archive (Orthanc, ``tests/orthanc.py``) holding patient B (the shipped 20-slice CT series) and a phantom series.

The flow: ``info`` -> SAT auto-segmentation of a series -> a SAM-Med3D click session (an uploaded volume, as
Slicer makes one, and the series id) -> saving the corrected label (becomes a DICOM-SEG in the archive) ->
``/train`` of every served bundle from that label -> many clicks in a row, each answer file read at once.

The models are tiny with positive mask heads (``tests/live_server.py``): answers show where the pipeline put
its window or slices; what the random weights predict is not tested.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from itertools import product
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest

from bundles.data.examples import EXAMPLES
from tests.needs import require

require(packages=("monailabel", "requests", "dicomweb_client"), programs=("Orthanc",))

import pydicom  # noqa: E402 - after the skip: dependencies of the serve extra
import requests  # noqa: E402
from dicomweb_client.api import DICOMwebClient  # noqa: E402
from monailabel.client import MONAILabelClient  # noqa: E402

from bundles.io.dicom_seg import build_dicom_seg, read_dicom_seg  # noqa: E402
from bundles.io.readers import read_image  # noqa: E402
from bundles.serving.archive import SEG_DESCRIPTION  # noqa: E402
from tests.live_server import running_server, tiny_model_dirs  # noqa: E402
from tests.orthanc import running_orthanc, upload_folder, write_phantom_series  # noqa: E402

PATIENT_B = EXAMPLES["ct_dicom_series"].image  #: the folder of patient B's 20 DICOM slices
MODELS = ("sat_nano", "sam_med3d", "samed_lora", "sam_unet")
LIVER_SCT = ("10200004", "SCT")  #: SNOMED CT code of the liver
B_CLICK, B_SECOND_CLICK = [300, 200, 10], [306, 204, 11]  #: voxel indices of patient B (0.98 x 0.98 x 2 mm)
PHANTOM_CLICK, PHANTOM_BACKGROUND = [24, 20, 10], [30, 26, 11]


@pytest.fixture(scope="module")
def flow(tmp_path_factory, tiny_sat_model):
    """Orthanc with patient B and the phantom, the server serving :data:`MODELS` on it, one client."""
    root = tmp_path_factory.mktemp("slicer_flow")
    phantom_dir = root / "phantom_dicom"
    write_phantom_series(phantom_dir)
    with running_orthanc(root / "orthanc") as archive:
        (b_series,) = upload_folder(archive, PATIENT_B)
        (phantom_series,) = upload_folder(archive, phantom_dir)
        with running_server(root, archive.dicomweb, tiny_model_dirs(root, tiny_sat_model), ["--max_sessions", "4"]) as live:
            (root / "client").mkdir()
            yield SimpleNamespace(url=live.url, root=root, archive=archive, b_series=b_series, phantom_series=phantom_series,
                                  client=MONAILabelClient(live.url, tmpdir=str(root / "client")), process=live.process,
                                  b_grid=read_image(PATIENT_B)[1])


def _corners(shape) -> np.ndarray:
    """Homogeneous voxel indices (4, 8) of the corners of a volume of ``shape``."""
    return np.array([[*c, 1.0] for c in product(*[(0, s - 1) for s in shape])]).T


def _on_series_grid(label: nib.Nifti1Image, grid) -> bool:
    """Same shape, and every voxel at the same world position (RAS mm) within 1e-3 mm: an affine map is fixed by
    its values on the corners, so the corners are compared."""
    corners = _corners(grid.shape)
    return label.shape == grid.shape and np.abs(label.affine @ corners - grid.affine @ corners).max() < 1e-3


@pytest.fixture(scope="module")
def sat_answer(flow):
    """SAT-Nano's answer for liver (the class picker's index) on patient B's series id, as Slicer asks it."""
    labels = flow.client.info()["models"]["sat_nano"]["labels"]
    path, params = flow.client.infer("sat_nano", flow.b_series, {"label_prompt": [labels["liver"]]})
    kept = flow.root / "sat_answer.nii.gz"
    shutil.copy(path, kept)
    return kept, params


@pytest.fixture(scope="module")
def saved_label(flow, sat_answer):
    """A corrected label saved as final through the client: the SAT answer cut to an off-centre box (so a
    flipped or shifted read-back cannot pass), on the series' grid; returns (server answer, mask, label file)."""
    answer = nib.load(sat_answer[0])
    mask = np.asarray(answer.dataobj) > 0
    box = np.zeros_like(mask)
    box[100:260, 150:420, 3:14] = True
    mask &= box
    assert mask.any()
    path = flow.root / "corrected_liver.nii.gz"
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), answer.affine), path)
    saved = flow.client.save_label(flow.b_series, str(path), tag="final", params={"label_info": [{"name": "liver", "idx": 1}]})
    return saved, mask, path


def test_info_lists_the_four_models_with_their_types(flow):
    models = flow.client.info()["models"]
    assert set(models) == set(MODELS)
    assert models["sat_nano"]["type"] == "segmentation" and models["sat_nano"]["labels"]["liver"] >= 1
    assert models["sam_med3d"]["type"] == "deepgrow" and models["sam_unet"]["type"] == "deepgrow"
    assert models["samed_lora"]["type"] == "segmentation" and models["samed_lora"]["labels"] == {"liver": 1, "spleen": 2}


def test_sat_segments_the_archive_series_on_its_own_grid(flow, sat_answer):
    path, params = sat_answer
    assert path.is_file()
    label = nib.load(path)
    assert label.shape == flow.b_grid.shape == (512, 512, 20)
    assert _on_series_grid(label, flow.b_grid), (label.affine, flow.b_grid.affine)
    assert params["label_names"] == {"liver": 1}
    values = np.asarray(label.dataobj)
    assert set(np.unique(values).tolist()) <= {0, 1} and values.any(), "threshold 0 here: the prompted class has a mask"


def _click(flow, image_id: str, clicks: list[list[int]], session_id: str | None = None) -> tuple[nib.Nifti1Image, dict, float]:
    started = time.perf_counter()
    path, params = flow.client.infer("sam_med3d", image_id, {"foreground": clicks, "label": "liver"}, session_id=session_id)
    seconds = time.perf_counter() - started
    label = nib.load(path)
    label = nib.Nifti1Image(np.asarray(label.dataobj), label.affine)  # read now: later calls must not touch it
    return label, params, seconds


def test_sam_med3d_session_second_click_uses_the_cached_embedding(flow):
    image, grid = read_image(PATIENT_B)  # Slicer uploads its volume node as a NIfTI
    volume = flow.root / "patient_b_slicer.nii.gz"
    nib.save(nib.Nifti1Image(image[0].numpy().round().astype(np.int16), grid.affine), volume)
    session = flow.client.create_session(str(volume))
    session_id = session["session_id"]
    assert session_id

    first, first_params, first_s = _click(flow, "", [B_CLICK], session_id)
    second, second_params, second_s = _click(flow, "", [B_CLICK, B_SECOND_CLICK], session_id)
    print(f"SAM-Med3D via session: first click {first_s:.2f} s, second click {second_s:.2f} s")
    assert first_params["session"] == {"new": True, "clicks_added": 1, "replayed": False, "encodings": 1}
    assert second_params["session"] == {"new": False, "clicks_added": 1, "replayed": False, "encodings": 1}
    assert second_s < first_s
    for label in (first, second):
        assert _on_series_grid(label, grid)
        assert np.asarray(label.dataobj)[tuple(B_CLICK)] > 0, "the window holds the click"

    # the same clicks on the archive's series id (MONAI Label's own conversion of the series)
    by_id, by_id_params, by_id_first_s = _click(flow, flow.b_series, [B_CLICK])
    by_id_second, by_id_second_params, by_id_second_s = _click(flow, flow.b_series, [B_CLICK, B_SECOND_CLICK])
    print(f"SAM-Med3D via series id: first click {by_id_first_s:.2f} s, second click {by_id_second_s:.2f} s")
    assert by_id_params["session"] == {"new": True, "clicks_added": 1, "replayed": False, "encodings": 1}
    assert by_id_second_params["session"] == {"new": False, "clicks_added": 1, "replayed": False, "encodings": 1}
    assert by_id_second_s < by_id_first_s
    assert _on_series_grid(by_id, flow.b_grid) and _on_series_grid(by_id_second, flow.b_grid)
    # the uploaded volume and the archive's series are the same voxels on the same grid: the same answers
    assert np.array_equal(np.asarray(by_id.dataobj), np.asarray(first.dataobj))
    assert np.array_equal(np.asarray(by_id_second.dataobj), np.asarray(second.dataobj))
    flow.client.remove_session(session_id)


def _value(item: dict, tag: str) -> str:
    return str(item[tag]["Value"][0])


def test_a_saved_final_label_becomes_a_dicom_seg_in_the_archive(flow, saved_label, tmp_path):
    saved, mask, _ = saved_label
    assert saved.get("label") == flow.b_series, saved
    found = requests.get(f"{flow.archive.dicomweb}/series", params={"Modality": "SEG"},
                         headers={"Accept": "application/dicom+json"}, timeout=30).json()
    assert len(found) == 1, found
    study, seg_series = _value(found[0], "0020000D"), _value(found[0], "0020000E")
    assert _value(found[0], "0008103E") == SEG_DESCRIPTION
    (seg,) = DICOMwebClient(url=flow.archive.dicomweb).retrieve_series(study, seg_series)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == flow.b_series
    assert str(seg.PatientID) == str(pydicom.dcmread(flow.b_grid.dicom_files[0]).PatientID)
    (segment,) = seg.SegmentSequence
    assert segment.SegmentLabel == "liver"
    code = segment.SegmentedPropertyTypeCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == LIVER_SCT
    path = tmp_path / "seg.dcm"
    seg.save_as(path, write_like_original=False)
    masks, names = read_dicom_seg(path, flow.b_grid)
    assert names == ["liver"] and masks.shape == (1, 512, 512, 20)
    assert np.array_equal(masks[0], mask), "the archive's SEG read back onto the series is the saved label"
    # the SEG the bundles write themselves (--output_format dicom_seg) holds the same frames
    ours = build_dicom_seg(mask[None], ["liver"], flow.b_grid, series_description=SEG_DESCRIPTION)
    assert np.array_equal(np.asarray(ours.pixel_array), np.asarray(seg.pixel_array))


@pytest.mark.parametrize("model", MODELS)
def test_train_runs_one_step_from_the_saved_label(flow, saved_label, model):
    answer = requests.post(f"{flow.url}/train/{model}", params={"run_sync": "true"},
                           json={"max_steps": 1, "device": "cpu"}, timeout=600)
    assert answer.status_code == 200, answer.text[:2000]
    result = answer.json()
    assert result["model"] == model and result["cases"] == 1 and result["max_steps"] == 1
    assert (Path(result["model_dir"]) / "model.pt").is_file()
    print(f"/train/{model}: {result['seconds']} s")


def test_fifty_clicks_in_a_row_each_answer_readable_at_once(flow):
    client = MONAILabelClient(flow.url)  # the system temp folder, as the plugin: where client and server met
    files = []
    started = time.perf_counter()
    try:
        for i in range(50):
            params = {"foreground": [PHANTOM_CLICK], "background": [PHANTOM_BACKGROUND] if i % 2 else [], "label": "blob"}
            path, answer = client.infer("sam_med3d", flow.phantom_series, params)
            files.append(path)
            assert path and os.path.isfile(path), f"call {i}: the answer file {path} is gone"
            assert nib.load(path).get_fdata().shape == (80, 64, 20), f"call {i}"
            assert answer["label_names"] == {"blob": 1}
        seconds = time.perf_counter() - started
        print(f"50 SAM-Med3D calls: {seconds:.1f} s")
        assert seconds < 60
        assert len(set(files)) == 50 and all(os.path.isfile(f) for f in files), "no answer removed afterwards either"
    finally:
        for f in files:
            if f and os.path.isfile(f):
                os.unlink(f)
    assert flow.process.poll() is None


@pytest.mark.parametrize(("method", "path", "query"), [
    ("POST", "/infer/sat_nano", {"image": "1.2.826.0.1.3680043.8.498.1", "output": "image"}),
    ("GET", "/datastore/image", {"image": "1.2.826.0.1.3680043.8.498.1"}),
    ("GET", "/datastore/label", {"label": "1.2.826.0.1.3680043.8.498.1", "tag": "final"}),
])
def test_a_series_the_archive_does_not_hold_is_a_4xx(flow, method, path, query):
    answer = requests.request(method, f"{flow.url}{path}", params=query, files={"params": (None, json.dumps({"prompts": ["liver"]}))}
                              if method == "POST" else None, timeout=120)
    assert 400 <= answer.status_code < 500, answer.text[:300]
    assert requests.get(f"{flow.url}/info/", timeout=30).status_code == 200
