"""A live MONAI Label server of this repository for the tests: tiny models and ``python -m tools.serve`` on
127.0.0.1, stopped at the end (a helper module, used by the server, Slicer-flow and browser tests).

The tiny models' weights are random except their mask heads, which are set so that every logit is positive
(the SAM decoders: zero weights and a positive bias in the last upscaling convolution and the hypernetwork
outputs; SAT: a served threshold of 0). A returned mask then shows exactly where the pipeline put the
model's window, box or slices, so tests check the geometry of the whole path (request clicks in original voxel
indices -> session -> model grid -> back onto the image grid), not what random weights predict.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import requests
import torch

__all__ = ["REPO", "TINY", "LiveServer", "tiny_model_dirs", "tiny_sat_pro_model", "phantom_studies", "running_server", "infer", "result", "free_port"]

REPO = Path(__file__).resolve().parents[1]
#: bundle -> the overlay that makes its network tiny (SAT's tiny model comes from conftest's ``tiny_sat_model``).
TINY = {"sam_med3d": REPO / "tests/data/tiny_sam_med3d.json", "samed_lora": REPO / "tests/data/tiny_samed.json",
        "sam_unet": REPO / "tests/data/tiny_sam_unet.json"}
#: Seconds the server may take to answer ``/info/`` after start (loading torch, MONAI and four models on 2 cores).
START_TIMEOUT_S = 300


def _positive_mask_heads(network: torch.nn.Module, background_token: bool) -> None:
    """Make every mask logit of a SAM-style decoder positive (see the module docstring); with
    ``background_token`` (SAMed) token 0's negative, so the classes win the argmax."""
    from bundles.networks.sam.mask_decoder import MaskDecoder
    from bundles.networks.sam_unet.med_decoder import MedMaskDecoder

    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, MaskDecoder):
                last = module.output_upscaling[3]
                last.weight.zero_(), last.bias.fill_(1.0)
                for i, mlp in enumerate(module.output_hypernetworks_mlps):
                    mlp.layers[-1].weight.zero_(), mlp.layers[-1].bias.fill_(-1.0 if i == 0 and background_token else 1.0)
            if isinstance(module, MedMaskDecoder):
                module.embedding_maskfeature[3].weight.zero_(), module.embedding_maskfeature[3].bias.fill_(100.0)
                module.hf_mlp.layers[-1].weight.zero_(), module.hf_mlp.layers[-1].bias.fill_(1.0)


def _tiny_model(bundle: str, folder: Path) -> Path:
    """``folder`` with ``model.pt`` (tiny network of ``TINY[bundle]``, positive mask head) and the card naming the overlay."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(REPO / bundle / "configs/inference.json"), str(TINY[bundle])])
    parser["bundle_root"] = str(REPO / bundle)
    torch.manual_seed(0)
    network = parser.get_parsed_content("network_def")
    _positive_mask_heads(network, background_token=bundle == "samed_lora")
    folder.mkdir(parents=True)
    torch.save(network.state_dict(), folder / "model.pt")
    (folder / "training.json").write_text(json.dumps({"config_files": [str(TINY[bundle])]}))
    return folder


def tiny_model_dirs(root: Path, tiny_sat_model: Path, sat_overlays: Sequence[Path] = ()) -> dict[str, str]:
    """Weights folders in ``root/models`` of tiny SAT-Nano (served with threshold 0, plus ``sat_overlays``),
    SAM-Med3D, SAMed and SAM-UNet: ``--model_dirs`` of :func:`running_server`."""
    model_dirs = {b: str(_tiny_model(b, root / "models" / b)) for b in TINY}
    sat = root / "models" / "sat_nano"
    shutil.copytree(tiny_sat_model, sat)
    (root / "threshold0.json").write_text(json.dumps({"threshold": 0.0}))
    card = json.loads((sat / "training.json").read_text())
    card["config_files"] = [*card["config_files"], str(root / "threshold0.json"), *map(str, sat_overlays)]
    (sat / "training.json").write_text(json.dumps(card))
    model_dirs["sat_nano"] = str(sat)
    return model_dirs


def tiny_sat_pro_model(root: Path, tiny_sat_model: Path) -> Path:
    """``root/models/sat_pro``: the tiny SAT's overlays and text encoder with a randomly initialised SAT-Pro network of
    the same tiny size (SAT-Pro's builder, its bf16 weights), served with threshold 0 (every voxel of the window)."""
    from monai.bundle import ConfigParser

    from bundles.checkpoints.model_card import model_overlays

    folder = root / "models" / "sat_pro"
    shutil.copytree(tiny_sat_model, folder)
    card = json.loads((folder / "training.json").read_text())
    (root / "threshold0.json").write_text(json.dumps({"threshold": 0.0}))
    overlays = [str(REPO / "sat_nano" / name) for name in model_overlays(card)]  # absolute ones stay as they are
    card["config_files"] = [*overlays, str(root / "threshold0.json")]
    (folder / "training.json").write_text(json.dumps(card))
    parser = ConfigParser()
    parser.read_config([str(REPO / "sat_pro/configs/inference.json"), *card["config_files"]])
    parser["bundle_root"] = str(REPO / "sat_pro")
    torch.manual_seed(0)
    torch.save(parser.get_parsed_content("network_def").state_dict(), folder / "model.pt")
    return folder


def phantom_studies(root: Path) -> tuple[Path, Path]:
    """A studies folder ``root/studies`` holding the oblique LPS phantom as ``phantom.nii.gz``; returns the
    folder and the phantom's reference mask."""
    from tests.test_core_toy_family import _oblique_lps_phantom

    studies = root / "studies"
    studies.mkdir(parents=True)
    image, mask = _oblique_lps_phantom(root)
    shutil.copy(image, studies / "phantom.nii.gz")
    return studies, mask


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class LiveServer:
    """A running server: its URL, process, working folder (where a request must never write) and log."""

    url: str
    process: subprocess.Popen
    work: Path
    log: Path


@contextmanager
def running_server(root: Path, studies: str | Path, model_dirs: dict[str, str], args: Sequence[str] = (),
                   env: dict[str, str] | None = None) -> Iterator[LiveServer]:
    """``python -m tools.serve`` on a free 127.0.0.1 port serving ``model_dirs`` on ``studies`` (a folder or a
    DICOMweb URL), with ``HOME`` (MONAI Label's DICOMweb cache), the runs and the log in ``root``; waits for
    ``/info/`` (up to :data:`START_TIMEOUT_S`), and stops the server (SIGTERM, then SIGKILL) at the end.

    Raises:
        RuntimeError: the server did not start (with the end of its log).
    """
    port = free_port()
    work = root / "cwd"
    work.mkdir(parents=True, exist_ok=True)
    log_path = root / "server.log"
    log = log_path.open("w")
    full_env = {**os.environ, "HOME": str(root / "home"), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2", **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.serve", "--studies", str(studies), "--port", str(port), "--device", "cpu",
         "--models", ",".join(model_dirs), "--model_dirs", json.dumps(model_dirs), "--runs_dir", str(root / "runs"), *args],
        cwd=work, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if requests.get(f"{url}/info/", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(1)
        yield LiveServer(url, process, work, log_path)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def infer(url: str, model: str, image: str, params: dict, timeout: float = 300) -> requests.Response:
    """``POST /infer/<model>?image=...&output=all`` with ``params`` as the JSON form field, as the clients send it."""
    return requests.post(f"{url}/infer/{model}", params={"image": image, "output": "all"},
                         files={"params": (None, json.dumps(params))}, timeout=timeout)


def result(answer: requests.Response) -> tuple[dict, nib.Nifti1Image]:
    """The JSON part and the label image of a multipart ``output=all`` answer (asserts a 200)."""
    from requests_toolbelt.multipart.decoder import MultipartDecoder

    assert answer.status_code == 200, answer.text[:500]
    parts = MultipartDecoder.from_response(answer).parts
    meta = json.loads(parts[0].text)
    label = nib.Nifti1Image.from_bytes(gzip.decompress(parts[1].content))
    return meta, label
