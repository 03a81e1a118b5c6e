"""Geometry round trip: read -> MONAI spatial chain -> back onto the input grid -> written with the input's header."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import CropForeground, Orientation, Spacing

from bundles.io.atomic import atomic_write
from bundles.io.grid import ImageGrid
from bundles.io.readers import read_image
from bundles.io.resample import resample_to_grid
from bundles.io.writers import label_map, mask_volumes_ml, write_segmentation

PIXDIM = (0.789062, 0.789062, 2.5)  # non-round float32 pixdims (field report)
SHAPE = (48, 40, 14)
KNOWN_VOXEL = (30, 14, 8)


def _oblique_lps_affine() -> np.ndarray:
    angle = np.deg2rad(12.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ rotation @ np.diag(np.float32(PIXDIM).astype(float))
    affine[:3, 3] = [123.4567, -87.6543, -412.25]
    return affine


@pytest.fixture()
def oblique_nifti(tmp_path):
    rng = np.random.default_rng(0)
    data = np.full(SHAPE, -1000, dtype=np.int16)
    data[6:42, 4:30, 2:13] = rng.integers(0, 200, (36, 26, 11))  # body with uneven air margins
    image = nib.Nifti1Image(data, _oblique_lps_affine())
    image.header.set_qform(_oblique_lps_affine(), code=1)
    image.header.set_sform(_oblique_lps_affine(), code=2)
    path = tmp_path / "oblique.nii.gz"
    nib.save(image, path)
    return path


def test_grid_geometry_from_oblique_lps_file(oblique_nifti):
    image, grid = read_image(oblique_nifti)
    on_disk = nib.load(oblique_nifti)
    assert image.shape == (1, *SHAPE) and image.dtype == torch.float32
    np.testing.assert_array_equal(image[0].numpy(), np.asarray(on_disk.dataobj))
    assert np.array_equal(grid.affine, on_disk.affine)
    assert np.array_equal(image.affine.numpy(), grid.affine) and image.affine.dtype == torch.float64
    assert grid.orientation == "LPS"
    np.testing.assert_allclose(grid.spacing, np.float32(PIXDIM), rtol=1e-6)  # column norms, not the diagonal
    assert abs(grid.affine[0, 0]) < PIXDIM[0] * 0.99
    again = read_image(oblique_nifti)[1]
    assert again == grid and again.same_geometry(grid)
    moved = ImageGrid(grid.shape, grid.affine + np.eye(4) * 1e-9, grid.source, grid.nifti_header)
    assert moved != grid and not moved.same_geometry(grid)


def test_monai_chain_and_back_keeps_header_and_known_voxel(oblique_nifti, tmp_path):
    image, grid = read_image(oblique_nifti)
    world = grid.affine @ np.array([*KNOWN_VOXEL, 1.0])
    chain = Orientation(axcodes="RAS", labels=None)(image)
    chain = Spacing(pixdim=(1.5, 1.5, 3.0), mode="bilinear")(chain)
    chain = CropForeground(select_fn=lambda x: x > -500, margin=1)(chain)
    assert chain.shape[1:] != image.shape[1:]
    # A "prediction" in the processed space: a 5 mm ball around the known voxel's world position.
    processed_affine = chain.affine.numpy()
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in chain.shape[1:]], indexing="ij"), -1).reshape(-1, 3)
    centres = (processed_affine[:3, :3] @ idx.T).T + processed_affine[:3, 3]
    ball = (np.linalg.norm(centres - world[:3], axis=1) <= 5.0).reshape(chain.shape[1:])
    back = resample_to_grid(torch.from_numpy(ball[None].astype(np.float32)), processed_affine, grid, mode="nearest")
    assert back.shape == (1, *SHAPE)
    mask = back[0].numpy() > 0.5
    assert mask[KNOWN_VOXEL]
    centroid_mm = grid.affine[:3, :3] @ np.argwhere(mask).mean(0) + grid.affine[:3, 3]
    assert np.linalg.norm(centroid_mm - world[:3]) < 1.5

    paths = write_segmentation(mask[None], ["lesion"], grid, tmp_path / "out")
    for key in ("seg", "mask:lesion"):
        written = nib.load(paths[key])
        source = nib.load(oblique_nifti)
        assert written.shape == SHAPE
        assert np.array_equal(written.affine, source.affine)
        for field in ("sform_code", "qform_code", "pixdim", "srow_x", "srow_y", "srow_z",
                      "quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z"):
            assert written.header[field].tobytes() == source.header[field].tobytes(), field
        assert written.get_data_dtype() == np.uint8
        data = np.asarray(written.dataobj)
        assert data[KNOWN_VOXEL] == 1 and np.array_equal(data == 1, mask)


def test_resample_exact_when_grids_coincide_and_for_axis_flips():
    rng = np.random.default_rng(1)
    data = rng.normal(size=(2, 6, 5, 4)).astype(np.float32)
    lps = np.diag([-0.8, -0.8, 2.0, 1.0])
    lps[:3, 3] = [10.0, 20.0, -30.0]
    same = resample_to_grid(data, lps, (lps, (6, 5, 4)), mode="bilinear")
    np.testing.assert_array_equal(same.numpy(), data)
    same[0, 0, 0, 0] = 99.0
    assert data[0, 0, 0, 0] != 99.0  # a copy, not a view
    las = lps.copy()  # same voxels with the second axis reversed
    las[:3, 1] *= -1
    las[:3, 3] = lps[:3, :3] @ np.array([0, 4, 0]) + lps[:3, 3]
    flipped = resample_to_grid(data, lps, (las, (6, 5, 4)), mode="nearest")
    np.testing.assert_array_equal(flipped.numpy(), data[:, :, ::-1, :])
    shifted = np.array(lps)
    shifted[:3, 3] += lps[:3, 0] * 2  # two voxels along x: the first two destination columns lie on voxels 2.. of the source
    moved = resample_to_grid(data, lps, (shifted, (6, 5, 4)), mode="nearest").numpy()
    np.testing.assert_array_equal(moved[:, :4], data[:, 2:])
    assert np.all(moved[:, 4:] == 0)  # zero outside the source


def test_overlap_rule_smallest_mask_wins(tmp_path, oblique_nifti):
    _, grid = read_image(oblique_nifti)
    big = np.zeros(SHAPE, bool)
    big[5:40, 5:30, 2:12] = True
    small = np.zeros(SHAPE, bool)
    small[20:24, 10:14, 5:7] = True
    for names, masks in ((["liver", "liver vessel"], [big, small]), (["liver vessel", "liver"], [small, big])):
        out = tmp_path / names[0].replace(" ", "_")
        paths = write_segmentation(np.stack(masks), names, grid, out)
        seg = np.asarray(nib.load(paths["seg"]).dataobj)
        vessel_label = names.index("liver vessel") + 1
        liver_label = names.index("liver") + 1
        assert np.all(seg[small] == vessel_label)
        assert np.all(seg[big & ~small] == liver_label)
        assert np.all(seg[~big] == 0)
        assert np.array_equal(np.asarray(nib.load(paths["mask:liver"]).dataobj).astype(bool), big)
        assert np.array_equal(np.asarray(nib.load(paths["mask:liver vessel"]).dataobj).astype(bool), small)
        legend = json.loads(paths["legend"].read_text())
        assert legend["labels"] == {str(liver_label): "liver", str(vessel_label): "liver vessel"}
        assert legend["files"]["liver vessel"] == "masks/liver_vessel.nii.gz"
        assert "smallest" in legend["overlap_rule"] and legend["source"] == str(oblique_nifti)
    tie = label_map(np.stack([small, small]))
    assert np.all(tie[small] == 1)  # ties go to the earlier name


def test_atomic_write_removes_temp_on_failure(tmp_path):
    target = tmp_path / "file.txt"

    def failing(tmp):
        tmp.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, failing)
    assert list(tmp_path.iterdir()) == []
    atomic_write(target, lambda tmp: tmp.write_text("done"))
    assert target.read_text() == "done" and [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_legend_has_volumes_provenance_and_absolute_source(tmp_path, monkeypatch):
    affine = np.diag([2.0, 1.5, 3.0, 1.0])  # 9 mm^3 per voxel
    affine[:3, 3] = [-40.0, 12.0, 7.5]
    data = np.random.default_rng(2).integers(-1000, 1000, (20, 16, 12)).astype(np.int16)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "case.nii.gz")
    monkeypatch.chdir(tmp_path)
    _, grid = read_image("case.nii.gz")  # a relative path, as a user types it
    assert grid.source == "case.nii.gz"
    masks = np.zeros((3, 20, 16, 12), bool)
    masks[0, 0:10, 0:10, 0:10] = True  # 1000 voxels = 9000 mm^3 = 9 ml
    masks[1, 5, 5, 5] = True  # one voxel = 0.009 ml
    provenance = {"model": "SAT-Nano", "weights": tmp_path / "nano.pth", "weights_sha256": "ab" * 32}
    paths = write_segmentation(masks, ["liver", "lesion", "spleen"], grid, "out", provenance=provenance)
    legend = json.loads(paths["legend"].read_text())
    assert legend["volumes_ml"] == pytest.approx({"liver": 9.0, "lesion": 0.009, "spleen": 0.0}, rel=1e-12)
    assert legend["voxels"] == {"liver": 1000, "lesion": 1, "spleen": 0}
    assert legend["source"] == str(tmp_path / "case.nii.gz")
    assert legend["model"] == "SAT-Nano" and legend["weights"] == str(tmp_path / "nano.pth")
    assert legend["weights_sha256"] == "ab" * 32
    assert "dicom_seg" not in legend and "dicom_seg_error" not in legend
    # a sheared grid: the voxel volume is |det|, not the product of the column norms
    sheared = ImageGrid((20, 16, 12), np.array([[2.0, 1.0, 0, 0], [0, 1.5, 0, 0], [0, 0, 3.0, 0], [0, 0, 0, 1]]), "x")
    assert mask_volumes_ml(masks[:1], ["liver"], sheared) == pytest.approx({"liver": 9.0})
    with pytest.raises(ValueError, match="provenance key 'labels'"):
        write_segmentation(masks, ["liver", "lesion", "spleen"], grid, "refused", provenance={"labels": "x"})
    with pytest.raises(ValueError, match="cannot be written to legend.json"):
        write_segmentation(masks, ["liver", "lesion", "spleen"], grid, "refused", provenance={"when": object()})
    assert not (tmp_path / "refused").exists()


def test_a_rerun_into_the_same_case_folder_leaves_only_its_own_outputs(tmp_path):
    """Outputs of an earlier run with other prompts are removed, so the folder matches its legend."""
    import json

    from bundles.data.phantom import make_ct_phantom
    from bundles.io.readers import read_image
    from bundles.io.writers import write_segmentation

    phantom = make_ct_phantom(2, shape=(40, 32, 16), spacing=(2.0, 2.0, 6.0))
    nib.save(nib.Nifti1Image(phantom.image, phantom.affine), tmp_path / "ct.nii.gz")
    _, grid = read_image(tmp_path / "ct.nii.gz")
    masks = np.stack([phantom.labels == 1, phantom.labels == 2, phantom.labels == 5])
    write_segmentation(masks, ["liver", "spleen", "aorta"], grid, tmp_path / "case")
    write_segmentation(masks[:1], ["liver"], grid, tmp_path / "case")
    legend = json.loads((tmp_path / "case" / "legend.json").read_text())
    assert sorted(p.name for p in (tmp_path / "case" / "masks").iterdir()) == ["liver.nii.gz"]
    assert legend["files"] == {"liver": "masks/liver.nii.gz"}
