"""Every bundle's training is wired the same way: the copies in each ``configs/train.json`` stay equal.

MONAI's ``monai.bundle run --config_file configs/train.json`` reads one file, and every documented training
command passes just that one, so the wiring shared by all bundles (``train#trainer``, ``train#handlers``,
``train#dataset``, ``identity``, ``initialize``, ``run``, ``finalize``) is written out in each bundle rather than
in a shared overlay. These tests pin the copies equal, so a fix to one is a fix to all; what a family sets
(network, sampler, loss, optimiser, hyper-parameters) lives under other keys, which the wiring references.

One difference is allowed, for a reason: the ``exports`` of the ``ModelExport`` handler, the files a finished
run writes. SAT trains its text encoder with its network and exports both (``model.pt``, ``text_encoder.pt``);
the other families export one network. Its other arguments are pinned.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from bundles.bundle_configs import BUNDLES  # the discovered bundle folders

ROOT = Path(__file__).resolve().parents[1]

#: Top-level keys of ``train.json`` that every bundle wires identically.
SHARED_KEYS = ("train", "identity", "initialize", "run", "finalize")

#: The handler whose ``exports`` is the family's own (see the module docstring).
EXPORT_HANDLER = "bundles.engines.model_export.ModelExport"


def _train_config(bundle: str) -> dict[str, Any]:
    return json.loads((ROOT / bundle / "configs" / "train.json").read_text(encoding="utf-8"))


def shared_wiring(config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a ``train.json`` that must be the same in every bundle: :data:`SHARED_KEYS`, with the
    ``exports`` of the model-export handler left out."""
    wiring = {key: copy.deepcopy(config.get(key)) for key in SHARED_KEYS}
    for handler in (wiring["train"] or {}).get("handlers", []):
        if handler.get("_target_") == EXPORT_HANDLER:
            handler.pop("exports", None)
    return wiring


def differences(values: Mapping[str, Any]) -> list[str]:
    """One line per top-level key whose value is not the same in every bundle of ``values`` (bundle ->
    wiring), naming which bundles hold which version; empty when all agree."""
    lines = []
    for key in sorted({k for wiring in values.values() for k in wiring}):
        groups: dict[str, list[str]] = {}
        for bundle, wiring in values.items():
            groups.setdefault(json.dumps(wiring.get(key), sort_keys=True), []).append(bundle)
        if len(groups) > 1:
            versions = "; ".join(f"{', '.join(bundles)}: {text}" for text, bundles in groups.items())
            lines.append(f"{key} differs between bundles -> {versions}")
    return lines


def _resolves(config: Mapping[str, Any], reference: str) -> bool:
    """True when ``@a#b#0`` names an entry of ``config`` (MONAI's id path: keys and list indices)."""
    node: Any = config
    for part in reference.split("#"):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def test_every_bundle_has_a_train_config():
    assert len(BUNDLES) >= 2, f"expected several bundles to compare, found {BUNDLES}"
    for bundle in BUNDLES:
        assert (ROOT / bundle / "configs" / "train.json").is_file(), f"{bundle} has no configs/train.json"


def test_the_shared_training_wiring_is_the_same_in_every_bundle():
    found = differences({bundle: shared_wiring(_train_config(bundle)) for bundle in BUNDLES})
    assert not found, "the training wiring must be copied to every bundle's configs/train.json:\n" + "\n".join(found)


def test_a_changed_copy_is_reported_by_bundle():
    """The comparison can fail: one bundle's changed trainer argument is named with that bundle."""
    values = {bundle: shared_wiring(_train_config(bundle)) for bundle in BUNDLES}
    odd = BUNDLES[-1]
    values[odd]["train"]["trainer"]["grad_clip"] = "@another_clip"
    (line,) = differences(values)
    assert line.startswith("train differs") and f"{odd}: " in line and "@another_clip" in line


@pytest.mark.parametrize("bundle", BUNDLES)
def test_every_reference_of_the_wiring_is_defined_in_the_bundle(bundle):
    """The shared wiring (and the bundle's own exports) only names ids the bundle's train.json defines."""
    config = _train_config(bundle)
    text = json.dumps({key: config.get(key) for key in SHARED_KEYS})
    references = sorted(set(re.findall(r"@([A-Za-z_][\w#]*)", text)))
    undefined = [r for r in references if not _resolves(config, r)]
    assert not undefined, f"{bundle}/configs/train.json: the training wiring references undefined ids {undefined}"


def test_the_multi_gpu_overlay_is_the_same_in_every_bundle():
    """``multi_gpu_train.json`` (torchrun's overlay on train.json) holds nothing family-specific."""
    values = {
        bundle: json.loads((ROOT / bundle / "configs" / "multi_gpu_train.json").read_text(encoding="utf-8"))
        for bundle in BUNDLES
    }
    found = differences(values)
    assert not found, "every bundle's configs/multi_gpu_train.json must be the same:\n" + "\n".join(found)
