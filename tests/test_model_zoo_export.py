"""Exporting SAT: MONAI's ``ckpt_export`` with the ``configs/export.json`` overlay, why it fails without it,
and ``torch.export`` as the non-TorchScript alternative. Tiny network (tests/data/tiny_sat.json: roi
64x64x32, max_queries 4) with weights saved from a freshly built ``network_def``.

Why the overlay is needed (the failures are asserted below, so the READMEs stay true):
- ``ckpt_export`` scripts by default, and ``torch.jit.script`` cannot compile SAT's Python (first error:
  the ``tuple[torch.Tensor, ...]`` annotation in ``bundles/networks/sat/norm_act.py``; behind it module-level
  constants used as values, an f-string over a shape tuple in ``_check_inputs``, the positional-encoding
  cache that is a plain Python object, ``[..., *ModuleList]`` and the Tensor-or-list return);
- ``--use_trace True`` makes MONAI trace with ``[torch.rand(input_shape)]``, the image alone, and
  ``SAT.forward`` needs the queries too.
The overlay's ``network_export`` is ``network_def`` already traced with both inputs; ``ckpt_export`` then
loads the checkpoint into it, "scripts" it (a no-op for a traced module) and saves it with the metadata and
configs, like for any other bundle.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser, ckpt_export
from monai.data import load_net_with_metadata

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "tests" / "data" / "tiny_sat.json")
BUNDLES = ["sat_nano", "sat_pro"]
ROI = (64, 64, 32)  # tiny_sat.json roi_size
MAX_QUERIES = 4  # tiny_sat.json max_queries
#: tracing SAT warns about every shape read as a Python int (expected: the window size is fixed by design)
pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")


def _configs(bundle: str, *extra: str) -> list[str]:
    return [str(ROOT / bundle / "configs" / "inference.json"), TINY, *extra]


def _meta(bundle: str) -> str:
    return str(ROOT / bundle / "configs" / "metadata.json")


def _network(bundle: str, weights: Path | None = None) -> torch.nn.Module:
    parser = ConfigParser()
    parser.read_config(_configs(bundle))
    net = parser.get_parsed_content("network_def")
    if weights is not None:
        net.load_state_dict(torch.load(weights, weights_only=True))
    return net.eval()


@pytest.fixture(scope="module", params=BUNDLES)
def tiny_weights(request, tmp_path_factory) -> tuple[str, Path]:
    """(bundle, models/model.pt of a tiny network_def): a plain state dict, as the bundles ship it."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp(request.param) / "model.pt"
    torch.save(_network(request.param).state_dict(), path)
    return request.param, path


def test_ckpt_export_with_export_overlay(tiny_weights, tmp_path):
    bundle, weights = tiny_weights
    export = str(ROOT / bundle / "configs" / "export.json")
    target = tmp_path / "model.ts"
    ckpt_export(net_id="network_export", filepath=str(target), ckpt_file=str(weights), meta_file=_meta(bundle),
                config_file=_configs(bundle, export))

    ts, meta, extra = load_net_with_metadata(str(target), more_extra_files=("inference.json", "tiny_sat.json", "export.json"))
    assert meta["name"] == ConfigParser.load_config_file(_meta(bundle))["name"]
    assert set(extra) == {"inference.json", "tiny_sat.json", "export.json"}

    net = _network(bundle, weights)
    with torch.no_grad():
        for batch, queries in [(1, 1), (2, MAX_QUERIES)]:  # any batch, up to max_queries queries
            image, text = torch.rand(batch, 1, *ROI), torch.rand(batch, queries, 768)
            expected = net(image, text)
            assert ts(image, text).shape == (batch, queries, *ROI)
            torch.testing.assert_close(ts(image, text), expected, rtol=1e-5, atol=1e-5)


def test_exported_model_limits(tiny_weights, tmp_path):
    """The trace holds one query chunk and the roi_size token grid: more queries or another window size fail."""
    bundle, weights = tiny_weights
    target = tmp_path / "model.ts"
    ckpt_export(net_id="network_export", filepath=str(target), ckpt_file=str(weights), meta_file=_meta(bundle),
                config_file=_configs(bundle, str(ROOT / bundle / "configs" / "export.json")))
    ts = torch.jit.load(str(target))
    with torch.no_grad():
        with pytest.raises(RuntimeError, match="Expected 1 elements in a list but found 2"):
            ts(torch.rand(1, 1, *ROI), torch.rand(1, MAX_QUERIES + 1, 768))
        with pytest.raises(RuntimeError, match="must match the size"):
            ts(torch.rand(1, 1, 64, 64, 64), torch.rand(1, 1, 768))


def test_ckpt_export_scripting_fails(tiny_weights, tmp_path):
    """The plain ``ckpt_export network_def`` (what model-zoo CI runs): TorchScript cannot compile SAT."""
    bundle, weights = tiny_weights
    # the first attempt in a process names the code TorchScript rejects; later ones say "Can't redefine method"
    with pytest.raises(RuntimeError, match=r"bundles[./]networks[./]sat[./]"):
        ckpt_export(net_id="network_def", filepath=str(tmp_path / "model.ts"), ckpt_file=str(weights),
                    meta_file=_meta(bundle), config_file=_configs(bundle))
    assert not (tmp_path / "model.ts").exists()


def test_ckpt_export_trace_without_overlay_fails(tiny_weights, tmp_path):
    """``--use_trace True --input_shape ...``: MONAI traces with the image only."""
    bundle, weights = tiny_weights
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'queries'"):
        ckpt_export(net_id="network_def", filepath=str(tmp_path / "model.ts"), ckpt_file=str(weights),
                    meta_file=_meta(bundle), config_file=_configs(bundle), use_trace=True, input_shape=[1, 1, *ROI])


def test_documented_ckpt_export_command(tmp_path):
    """The exact README command, from inside sat_nano/, with tiny weights (no official weights needed)."""
    weights = tmp_path / "model.pt"
    torch.save(_network("sat_nano").state_dict(), weights)
    target = tmp_path / "model.ts"
    cmd = [sys.executable, "-m", "monai.bundle", "ckpt_export", "network_export", "--filepath", str(target),
           "--ckpt_file", str(weights), "--meta_file", "configs/metadata.json",
           "--config_file", "['configs/inference.json','../tests/data/tiny_sat.json','configs/export.json']"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=ROOT / "sat_nano", env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    ts = torch.jit.load(str(target))
    with torch.no_grad():
        assert ts(torch.rand(1, 1, *ROI), torch.rand(1, 2, 768)).shape == (1, 2, *ROI)


def _export(net: torch.nn.Module) -> torch.export.ExportedProgram:
    example = (torch.rand(2, 1, *ROI), torch.rand(2, 2, 768))
    batch, queries = torch.export.Dim("batch", min=1, max=16), torch.export.Dim("queries", min=1, max=MAX_QUERIES)
    return torch.export.export(net, example, dynamic_shapes={"image": {0: batch}, "queries": {0: batch, 1: queries}})


def test_torch_export_after_one_forward(tiny_weights, tmp_path):
    """``torch.export`` (PyTorch's successor of TorchScript) works too, with a dynamic batch and query count."""
    bundle, weights = tiny_weights
    net = _network(bundle, weights)
    with torch.no_grad():
        net(torch.rand(1, 1, *ROI), torch.rand(1, 1, 768))  # fills the positional-encoding cache with a real tensor
    torch.export.save(_export(net), tmp_path / "model.pt2")
    exported = torch.export.load(tmp_path / "model.pt2").module()
    reference = _network(bundle, weights)
    with torch.no_grad():
        for batch, queries in [(1, 1), (3, MAX_QUERIES)]:
            image, text = torch.rand(batch, 1, *ROI), torch.rand(batch, queries, 768)
            torch.testing.assert_close(exported(image, text), reference(image, text), rtol=1e-5, atol=1e-5)


@pytest.mark.xfail(strict=True, reason="bundles/networks/sat/positional_encoding.py caches the encoding computed "
                   "during torch.export (a FakeTensor); the eager network then returns FakeTensors")
def test_torch_export_leaves_the_network_usable():
    net = _network("sat_nano")
    _export(net)
    with torch.no_grad():
        out = net(torch.rand(1, 1, *ROI), torch.rand(1, 1, 768))
    assert type(out) is torch.Tensor
