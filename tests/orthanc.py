"""A real, throw-away DICOMweb archive for the tests: Debian's Orthanc with its DICOMweb plugin.

:func:`running_orthanc` starts ``Orthanc <folder>/orthanc.json`` as a subprocess with its own configuration,
storage, index and log in ``folder``; :func:`upload_folder` fills it with a DICOM folder through Orthanc's own
REST API; :func:`write_phantom_series` writes a small synthetic CT series (the project's writer and phantom) to
upload next to the shipped patient B (``data/examples/ct_dicom_series/dicom``).

Addresses: the REST API answers on ``http://127.0.0.1:<HttpPort>``, DICOMweb (QIDO-RS, WADO-RS, STOW-RS) under
``http://127.0.0.1:<HttpPort>/dicom-web``; DIMSE (C-STORE, C-FIND ...) on ``<DicomPort>`` with AE title
``MEDSEGTEST``. Both ports are free ports picked by the OS (binding port 0) at start-up. Orthanc 1.10 has no
option to choose the interface it binds: it listens on all interfaces, but ``RemoteAccessAllowed: false``
makes its HTTP server refuse every client that is not on the loopback interface.

Needs the Debian packages ``orthanc`` and ``orthanc-dicomweb`` (``apt-get install orthanc orthanc-dicomweb``;
``.ci/run`` installs them), plus ``requests`` and ``pydicom`` (via the serve extra).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import pydicom
import requests
from pydicom.errors import InvalidDicomError

__all__ = [
    "APT_PACKAGES",
    "DICOMWEB_PLUGIN_PATH",
    "OrthancArchive",
    "OrthancError",
    "OrthancNotInstalledError",
    "find_dicomweb_plugin",
    "find_orthanc",
    "free_port",
    "read_dicom_headers",
    "running_orthanc",
    "upload_folder",
    "write_phantom_series",
]

APT_PACKAGES = ("orthanc", "orthanc-dicomweb")
"""The Debian packages that provide the Orthanc binary and its DICOMweb plugin."""

ORTHANC_BINARY_PATH = Path("/usr/sbin/Orthanc")
"""Where Debian's ``orthanc`` package installs the server (used when ``Orthanc`` is not on ``PATH``)."""

DICOMWEB_PLUGIN_PATH = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
"""Where Debian's ``orthanc-dicomweb`` package links the plugin (used when ``dpkg -L`` cannot tell)."""

AE_TITLE = "MEDSEGTEST"
"""The archive's DICOM application entity title."""

START_TIMEOUT_S = 60.0
"""How long :func:`running_orthanc` waits for ``GET /system`` to answer before it gives up."""

STOP_TIMEOUT_S = 20.0
"""How long Orthanc gets to stop after SIGTERM (it takes ~3 s here) before it is killed."""

_PORT_ATTEMPTS = 3
"""Start-ups tried when Orthanc dies at once (a free port taken by someone else between pick and bind)."""

_INSTALL_HINT = "install it with `apt-get install orthanc orthanc-dicomweb` (Debian/Ubuntu; .ci/run does this)"


class OrthancError(RuntimeError):
    """Orthanc did not start, stopped answering, or refused an upload."""


class OrthancNotInstalledError(OrthancError):
    """The Orthanc binary or its DICOMweb plugin is not installed; the message names the apt packages."""


@dataclass(frozen=True)
class OrthancArchive:
    """A running Orthanc, as :func:`running_orthanc` yields it.

    Attributes:
        url: the REST API root, ``http://127.0.0.1:<http_port>`` (no trailing slash).
        http_port: the HTTP port (REST API and DICOMweb).
        dicom_port: the DICOM (DIMSE) port; AE title :data:`AE_TITLE`.
        folder: the folder holding ``orthanc.json``, ``orthanc.log`` and ``storage/``.
        log: the Orthanc log file (stdout and stderr of the process).
    """

    url: str
    http_port: int
    dicom_port: int
    folder: Path
    log: Path

    @property
    def dicomweb(self) -> str:
        """The DICOMweb root, ``<url>/dicom-web`` (no trailing slash; QIDO ``/series``, WADO ``/studies/..``)."""
        return f"{self.url}/dicom-web"

    @property
    def aet(self) -> str:
        """The archive's DICOM AE title."""
        return AE_TITLE


def find_orthanc() -> Path:
    """The Orthanc server binary: ``Orthanc`` on ``PATH``, else :data:`ORTHANC_BINARY_PATH`.

    Raises:
        OrthancNotInstalledError: neither exists; the message names the apt packages.
    """
    found = shutil.which("Orthanc")
    if found:
        return Path(found)
    if ORTHANC_BINARY_PATH.is_file() and os.access(ORTHANC_BINARY_PATH, os.X_OK):
        return ORTHANC_BINARY_PATH
    raise OrthancNotInstalledError(f"the Orthanc binary is not on PATH nor at {ORTHANC_BINARY_PATH}; {_INSTALL_HINT}")


def find_dicomweb_plugin() -> Path:
    """The Orthanc DICOMweb plugin (``libOrthancDicomWeb.so``).

    The path listed by ``dpkg -L orthanc-dicomweb`` under ``/usr/share/orthanc/plugins/`` when dpkg knows the
    package, else :data:`DICOMWEB_PLUGIN_PATH`.

    Raises:
        OrthancNotInstalledError: the plugin file does not exist; the message names the apt packages.
    """
    candidates = []
    if shutil.which("dpkg"):
        listed = subprocess.run(["dpkg", "-L", "orthanc-dicomweb"], capture_output=True, text=True, check=False)
        if listed.returncode == 0:
            candidates = [Path(line.strip()) for line in listed.stdout.splitlines()
                          if line.strip().endswith("/libOrthancDicomWeb.so") and "/plugins/" in line]
    candidates.append(DICOMWEB_PLUGIN_PATH)
    for path in candidates:
        if path.is_file():
            return path
    raise OrthancNotInstalledError(f"the Orthanc DICOMweb plugin is not at {DICOMWEB_PLUGIN_PATH}; {_INSTALL_HINT}")


def free_port() -> int:
    """A TCP port that is free right now on every interface (bind ``("", 0)``, read it, release it).

    Orthanc binds all interfaces, hence the check on all of them rather than on 127.0.0.1 alone. Another
    process may still take the port before Orthanc binds it; :func:`running_orthanc` then retries.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def _write_config(folder: Path, http_port: int, dicom_port: int, plugin: Path) -> Path:
    """Write ``folder/orthanc.json`` for one archive and return its path."""
    storage = folder / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = {
        "Name": "medseg-bundles-test",
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": AE_TITLE,
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        # Orthanc 1.10 has no bind-address option (an unknown key such as "HttpBindAddress" is silently
        # ignored): it listens on 0.0.0.0, and RemoteAccessAllowed=false refuses every non-loopback client.
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [str(plugin)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        # a small machine shared with others: few threads, nothing kept between runs
        "HttpThreadsCount": 8,
        "DicomThreadsCount": 1,
        "ConcurrentJobs": 1,
        "SaveJobs": False,
    }
    path = folder / "orthanc.json"
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM ``process``, wait up to :data:`STOP_TIMEOUT_S`, then SIGKILL it and reap it."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


def _log_tail(log: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of the Orthanc log (or a note that there is none)."""
    try:
        return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log written)"


def _wait_until_up(process: subprocess.Popen, url: str, deadline: float) -> bool:
    """Poll ``GET url/system`` until it answers 200 (True) or the process exits / the deadline passes (False)."""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if requests.get(f"{url}/system", timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.1)
    return False


@contextmanager
def running_orthanc(folder: str | PathLike, *, timeout: float = START_TIMEOUT_S) -> Iterator[OrthancArchive]:
    """Start Orthanc with the DICOMweb plugin, storing everything in ``folder``; stop it on leaving the block.

    Writes ``folder/orthanc.json`` (HTTP and DICOM on free ports, storage and SQLite index in
    ``folder/storage``, no authentication, loopback clients only, DICOMweb at ``/dicom-web/``), runs
    ``Orthanc --no-jobs folder/orthanc.json`` with its output in ``folder/orthanc.log`` and waits until
    ``GET http://127.0.0.1:<port>/system`` answers. On leaving the block, normally or by an exception, the
    process gets SIGTERM and is killed if it has not stopped after :data:`STOP_TIMEOUT_S`.

    Args:
        folder: an empty (temporary) folder for the configuration, storage and log; created if missing.
        timeout: seconds to wait for ``/system`` (start-up takes well under a second here).

    Yields:
        The :class:`OrthancArchive` (``.url``, ``.dicomweb``, ports, log path).

    Raises:
        OrthancNotInstalledError: the ``Orthanc`` binary or the DICOMweb plugin is missing (names the apt packages).
        OrthancError: Orthanc exited or did not answer within ``timeout`` (the message holds its log's tail).
    """
    binary, plugin = find_orthanc(), find_dicomweb_plugin()
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "orthanc.log"
    deadline = time.monotonic() + timeout
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        http_port, dicom_port = free_port(), free_port()
        while dicom_port == http_port:
            dicom_port = free_port()
        config = _write_config(folder, http_port, dicom_port, plugin)
        archive = OrthancArchive(f"http://127.0.0.1:{http_port}", http_port, dicom_port, folder, log)
        with open(log, "ab") as log_file:
            log_file.write(f"== attempt {attempt}: {binary} --no-jobs {config}\n".encode())
            log_file.flush()
            process = subprocess.Popen([str(binary), "--no-jobs", str(config)], cwd=folder, stdin=subprocess.DEVNULL,
                                       stdout=log_file, stderr=subprocess.STDOUT)
        try:
            up = _wait_until_up(process, archive.url, deadline)
            if not up:
                exited = process.poll() is not None
                _stop(process)
                if exited and attempt < _PORT_ATTEMPTS and time.monotonic() < deadline:
                    continue  # most likely a port taken between free_port() and Orthanc's bind: new ports
                why = f"exited with status {process.returncode}" if exited else f"did not answer within {timeout:.0f} s"
                raise OrthancError(f"Orthanc ({binary}, config {config}) {why} on {archive.url}/system;"
                                   f" log {log}:\n{_log_tail(log)}")
            yield archive
            return
        finally:
            _stop(process)


def read_dicom_headers(folder: str | PathLike) -> list[tuple[Path, pydicom.Dataset]]:
    """``(path, header)`` of every DICOM file directly in ``folder`` (sorted by name, hidden files skipped),
    read without pixel data; files that are not DICOM are left out."""
    found = []
    for path in sorted(Path(folder).iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        try:
            found.append((path, pydicom.dcmread(path, stop_before_pixels=True)))
        except InvalidDicomError:
            continue
    return found


def upload_folder(archive: OrthancArchive, folder: str | PathLike) -> list[str]:
    """POST every DICOM file directly in ``folder`` (raw bytes) to ``<archive.url>/instances``.

    Returns:
        The SeriesInstanceUIDs of the uploaded files (from their headers), each once, in file-name order.

    Raises:
        OrthancError: ``folder`` holds no DICOM file, or Orthanc answered an upload with anything but HTTP 200
            and status ``Success`` / ``AlreadyStored``, or stored it under another SOPInstanceUID.
    """
    headers = read_dicom_headers(folder)
    if not headers:
        raise OrthancError(f"no DICOM file in {folder}")
    series: list[str] = []
    with requests.Session() as session:
        for path, header in headers:
            answer = session.post(f"{archive.url}/instances", data=path.read_bytes(),
                                  headers={"Content-Type": "application/dicom"}, timeout=60)
            if answer.status_code != 200:
                raise OrthancError(f"uploading {path} to {archive.url}/instances: HTTP {answer.status_code} {answer.text[:500]}")
            status = answer.json().get("Status")
            if status not in ("Success", "AlreadyStored"):
                raise OrthancError(f"uploading {path} to {archive.url}/instances: status {status!r} ({answer.text[:500]})")
            stored = session.get(f"{archive.url}/instances/{answer.json()['ID']}", timeout=30).json()
            if stored["MainDicomTags"]["SOPInstanceUID"] != header.SOPInstanceUID:
                raise OrthancError(f"{path} was stored as SOPInstanceUID {stored['MainDicomTags']['SOPInstanceUID']},"
                                   f" not {header.SOPInstanceUID}")
            if str(header.SeriesInstanceUID) not in series:
                series.append(str(header.SeriesInstanceUID))
    return series


def write_phantom_series(folder: str | PathLike, *, seed: int = 11, patient_id: str = "ORTHANC_PHANTOM") -> list[Path]:
    """Write a small synthetic CT series (20 slices of 80 x 64 voxels, 2 x 2 x 6 mm) into ``folder``.

    The volume is :func:`bundles.data.phantom.make_ct_phantom` ``(seed, shape=(80, 64, 20), spacing=(2, 2, 6))``,
    written by :func:`bundles.io.dicom_series.write_dicom_series`: Modality CT, PatientID ``patient_id``
    (PatientName ``<patient_id>^``), SeriesDescription ``phantom CT seed <seed>``, and Study/Series/SOP
    InstanceUIDs derived from ``seed`` and ``patient_id`` (its own study and series, not patient B's).

    Returns:
        The written files, in slice order.
    """
    from bundles.data.phantom import make_ct_phantom
    from bundles.io.dicom_series import write_dicom_series

    phantom = make_ct_phantom(seed, shape=(80, 64, 20), spacing=(2.0, 2.0, 6.0))
    return write_dicom_series(phantom.image, phantom.affine, folder, patient_id=patient_id,
                              series_description=f"phantom CT seed {seed}", seed=f"orthanc-phantom-{seed}")
