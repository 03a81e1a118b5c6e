"""A real local DICOMweb archive (Orthanc + its DICOMweb plugin, tests/orthanc.py) holding patient B and a phantom:
QIDO-RS lists both series, WADO-RS (through dicomweb-client, as MONAI Label does) returns patient B's pixels
unchanged, STOW-RS (the path MONAI Label saves a DICOM-SEG by) stores a new instance that QIDO then finds."""

from __future__ import annotations

import copy
import socket
from types import SimpleNamespace

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from bundles.data.examples import EXAMPLES
from tests.needs import require

require(packages=("requests", "dicomweb_client"), programs=("Orthanc",))

import requests  # noqa: E402 - after the skip: a dependency of the serve extra
from dicomweb_client.api import DICOMwebClient  # noqa: E402

from tests import orthanc  # noqa: E402
from tests.orthanc import (  # noqa: E402
    OrthancNotInstalledError,
    read_dicom_headers,
    running_orthanc,
    upload_folder,
    write_phantom_series,
)

PATIENT_B = EXAMPLES["ct_dicom_series"].image
PHANTOM_PATIENT = "ORTHANC_PHANTOM"
SERIES_UID, PATIENT_ID, MODALITY, SOP_UID, N_INSTANCES = "0020000E", "00100020", "00080060", "00080018", "00201209"


def _value(item: dict, tag: str) -> str:
    """The first value of ``tag`` in a DICOM JSON (PS3.18 F.2) dataset."""
    return str(item[tag]["Value"][0])


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Orthanc in a temp folder holding patient B (20 shipped slices) and a 20-slice phantom of its own patient."""
    phantom_dir = tmp_path_factory.mktemp("phantom_dicom")
    phantom_files = write_phantom_series(phantom_dir, patient_id=PHANTOM_PATIENT)
    with running_orthanc(tmp_path_factory.mktemp("orthanc")) as running:
        b_series = upload_folder(running, PATIENT_B)
        phantom_series = upload_folder(running, phantom_dir)
        assert len(b_series) == 1 and len(phantom_series) == 1 and b_series != phantom_series
        yield SimpleNamespace(archive=running, b_series=b_series[0], phantom_series=phantom_series[0],
                              phantom_files=phantom_files, b_headers=read_dicom_headers(PATIENT_B))


def test_qido_lists_exactly_the_two_ct_series(archive):
    answer = requests.get(f"{archive.archive.dicomweb}/series", params={"Modality": "CT"},
                          headers={"Accept": "application/dicom+json"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("application/dicom+json")
    found = {_value(item, SERIES_UID): item for item in answer.json()}
    assert sorted(found) == sorted([archive.b_series, archive.phantom_series])
    assert _value(found[archive.b_series], PATIENT_ID) == archive.b_headers[0][1].PatientID
    assert _value(found[archive.phantom_series], PATIENT_ID) == PHANTOM_PATIENT
    assert {_value(item, MODALITY) for item in found.values()} == {"CT"}
    assert int(_value(found[archive.b_series], N_INSTANCES)) == 20
    # a filter that matches nothing really filters
    none = requests.get(f"{archive.archive.dicomweb}/series", params={"Modality": "MR"}, timeout=30)
    assert none.status_code in (200, 204) and (none.status_code == 204 or none.json() == [])


def test_wado_rs_returns_patient_b_pixels_unchanged(archive):
    study = str(archive.b_headers[0][1].StudyInstanceUID)
    retrieved = DICOMwebClient(url=archive.archive.dicomweb).retrieve_series(study, archive.b_series)
    assert len(retrieved) == len(archive.b_headers) == 20
    by_uid = {str(ds.SOPInstanceUID): ds for ds in retrieved}
    assert len(by_uid) == 20
    for path, header in archive.b_headers:
        shipped = pydicom.dcmread(path)
        got = by_uid[str(header.SOPInstanceUID)]
        assert got.SeriesInstanceUID == archive.b_series and got.PatientID == shipped.PatientID
        assert got.pixel_array.shape == shipped.pixel_array.shape == (512, 512)
        np.testing.assert_array_equal(got.pixel_array, shipped.pixel_array, err_msg=path.name)


def test_stow_rs_stores_a_new_instance_that_qido_finds(archive):
    source = pydicom.dcmread(archive.phantom_files[3])
    copy_ds = copy.deepcopy(source)
    new_uid = generate_uid()
    copy_ds.SOPInstanceUID = copy_ds.file_meta.MediaStorageSOPInstanceUID = new_uid
    copy_ds.InstanceNumber = 1000
    client = DICOMwebClient(url=archive.archive.dicomweb)
    study = str(source.StudyInstanceUID)
    assert not client.search_for_instances(study, archive.phantom_series, search_filters={"SOPInstanceUID": new_uid})

    client.store_instances([copy_ds])

    found = client.search_for_instances(study, archive.phantom_series, search_filters={"SOPInstanceUID": new_uid})
    assert [_value(item, SOP_UID) for item in found] == [new_uid]
    back = client.retrieve_instance(study, archive.phantom_series, new_uid)
    assert back.InstanceNumber == 1000
    np.testing.assert_array_equal(back.pixel_array, source.pixel_array)
    # the phantom series now holds its 20 slices and the copy; the original slice is untouched
    assert len(client.search_for_instances(study, archive.phantom_series)) == 21


def test_archive_stops_and_frees_its_port(tmp_path):
    with running_orthanc(tmp_path / "orthanc") as running:
        assert requests.get(f"{running.url}/system", timeout=10).json()["DicomPort"] == running.dicom_port
        assert (tmp_path / "orthanc" / "orthanc.log").read_text().strip()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{running.url}/system", timeout=5)
    with socket.socket() as sock:  # nothing listens on the DICOM port any more either
        assert sock.connect_ex(("127.0.0.1", running.dicom_port)) != 0


def test_remote_clients_are_refused(archive):
    """Orthanc 1.10 binds every interface; RemoteAccessAllowed=false must turn away a non-loopback client."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            address = probe.getsockname()[0]
        except OSError:
            address = "127.0.0.1"
    if address.startswith("127."):
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    answer = requests.get(f"http://{address}:{archive.archive.http_port}/system", timeout=10)
    assert answer.status_code in (401, 403), answer.text[:200]


def test_missing_orthanc_names_the_apt_packages(tmp_path, monkeypatch):
    monkeypatch.setattr(orthanc.shutil, "which", lambda name: None)  # no Orthanc on PATH, no dpkg to ask
    monkeypatch.setattr(orthanc, "ORTHANC_BINARY_PATH", tmp_path / "no-such-Orthanc")
    with pytest.raises(OrthancNotInstalledError, match="apt-get install orthanc orthanc-dicomweb"):
        with running_orthanc(tmp_path / "orthanc"):
            pass
    monkeypatch.setattr(orthanc, "DICOMWEB_PLUGIN_PATH", tmp_path / "no-such-plugin.so")
    with pytest.raises(OrthancNotInstalledError, match="apt-get install orthanc orthanc-dicomweb"):
        orthanc.find_dicomweb_plugin()
