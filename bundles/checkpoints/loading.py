"""Read checkpoint files safely and load state dicts strictly.

Official releases wrap their weights in training dumps (``{'model_state_dict': ...}``,
``{'state_dict': ...}``), prefix every key with DDP's ``module.``, and sometimes pickle non-tensor
objects. We only ever take tensors, and every load is strict: a missing, unexpected or mis-shaped key
is a :class:`~bundles.errors.CheckpointError` that lists the keys before any inference runs.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping
from os import PathLike
from pathlib import Path

import torch

from bundles.checkpoints.model_card import CARD_NAME, model_overlays, read_model_card
from bundles.checkpoints.safe_unpickle import SAFE_PICKLE
from bundles.errors import CheckpointError

__all__ = [
    "CONTAINER_KEYS",
    "DDP_PREFIX",
    "read_state_dict",
    "read_official_state_dict",
    "strip_prefix",
    "check_state_dict",
    "load_state_dict_strict",
    "load_weights",
]

#: Keys under which known training scripts store the weights (SAT, SAM-Med3D, MONAI, Lightning).
CONTAINER_KEYS = ("model_state_dict", "state_dict", "model", "network", "net")
#: The key prefix of weights saved from a ``DistributedDataParallel``-wrapped module.
DDP_PREFIX = "module."


def _only_tensors(obj: object) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {str(k): v for k, v in obj.items()}
    return None


def _unwrap(obj: object) -> dict[str, torch.Tensor] | None:
    """The state dict ``obj`` is, or holds under one of :data:`CONTAINER_KEYS`; None when neither."""
    state = _only_tensors(obj)
    if state is None and isinstance(obj, Mapping):
        for key in CONTAINER_KEYS:
            if key in obj:
                state = _only_tensors(obj[key])
                if state is not None:
                    break
    return state


def read_state_dict(path: str | PathLike, *, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read a checkpoint file and return its state dict (tensors only, on the CPU).

    The file is read with ``torch.load(weights_only=True)``. Training dumps that pickle other objects
    (argparse namespaces, numpy scalars) are refused unless ``allow_pickle`` is set; then they are read
    with :data:`~bundles.checkpoints.safe_unpickle.SAFE_PICKLE`, which rebuilds tensors and containers and
    never imports or calls anything else the file names, and only the tensors are kept. Known containers (:data:`CONTAINER_KEYS`)
    are unwrapped; prefixes are left as they are (see :func:`strip_prefix`).

    Raises:
        CheckpointError: the file is missing, unreadable, or holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found; put the weights there or point the config to them")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not allow_pickle:
            raise CheckpointError(
                f"{path}: the checkpoint pickles non-tensor objects and was refused for safety; if you trust "
                "the file, convert it with its bundle's converter (python -m bundles.<family>.convert), which reads it "
                "without running its pickles"
            ) from e
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=SAFE_PICKLE)
        except Exception as e2:  # noqa: BLE001 - any failure here means the file is unusable
            raise CheckpointError(f"{path}: cannot read checkpoint ({e2})") from e2
    except Exception as e:  # noqa: BLE001 - torch raises RuntimeError/EOFError/... for bad files
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from e

    state = _unwrap(obj)
    if state is None:
        found = list(obj.keys())[:10] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(
            f"{path}: no state dict found (looked for a mapping of tensors, or one under {CONTAINER_KEYS}); "
            f"the file holds {found}"
        )
    return state


def read_official_state_dict(state_or_path: Mapping[str, object] | str | PathLike, what: str) -> tuple[dict[str, torch.Tensor], str]:
    """The intake of every converter: an official release's weights as a plain state dict without DDP's prefix.

    Args:
        state_or_path: a checkpoint file (read by :func:`read_state_dict` with ``allow_pickle=True``: training
            dumps are read without running their pickles), or an in-memory state dict or training dump (a
            mapping holding the state dict under one of :data:`CONTAINER_KEYS`).
        what: what the weights should be, naming an in-memory source in messages (e.g. ``"SAM-Med3D"``).

    Returns:
        ``(state, source)``: the tensors keyed without :data:`DDP_PREFIX` (the same tensors, no copies), and
        the file's path or ``"<what> state dict"`` for messages.

    Raises:
        CheckpointError: an unreadable file, or no state dict of tensors in the file or mapping.
    """
    if isinstance(state_or_path, Mapping):
        source = f"{what} state dict"
        state = _unwrap(state_or_path)
        if state is None:
            bad = sorted(str(k) for k, v in state_or_path.items() if not isinstance(v, torch.Tensor))
            raise CheckpointError(
                f"{source}: no state dict of tensors (non-tensor entries {bad[:5]}, and none of {CONTAINER_KEYS} holds one)"
            )
    else:
        source = str(state_or_path)
        state = read_state_dict(state_or_path, allow_pickle=True)
    return strip_prefix(state), source


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str = DDP_PREFIX) -> dict[str, torch.Tensor]:
    """Remove ``prefix`` from every key that has it (:data:`DDP_PREFIX` by default)."""
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in state.items()}


def _format_keys(keys: Iterable[str], limit: int = 12) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def check_state_dict(
    expected: Mapping[str, torch.Tensor | torch.Size | tuple[int, ...]],
    state: Mapping[str, torch.Tensor],
    *,
    source: str,
) -> None:
    """Raise :class:`CheckpointError` unless ``state`` has exactly the keys and shapes of ``expected``.

    ``expected`` maps key -> tensor or shape (e.g. ``module.state_dict()``). The message lists missing,
    unexpected and mis-shaped keys, so a different depth or class count is named before inference.
    """
    missing = set(expected) - set(state)
    unexpected = set(state) - set(expected)
    shape_of = lambda v: tuple(v.shape) if isinstance(v, torch.Tensor) else tuple(v)  # noqa: E731
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs network {shape_of(expected[k])}"
        for k in sorted(set(expected) & set(state))
        if tuple(state[k].shape) != shape_of(expected[k])
    ]
    if not (missing or unexpected or mismatched):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys: {_format_keys(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys: {_format_keys(unexpected)}")
    if mismatched:
        parts.append(f"{len(mismatched)} shape mismatches: " + "; ".join(mismatched[:8]))
    raise CheckpointError(
        f"{source}: checkpoint does not fit the network ({' | '.join(parts)}). Is it the right model size/"
        "release, and was it converted with its bundle's converter (python -m bundles.<family>.convert)?"
    )


def load_state_dict_strict(module: torch.nn.Module, state: Mapping[str, torch.Tensor], *, source: str) -> None:
    """Load ``state`` into ``module`` after :func:`check_state_dict`; nothing is loaded on a mismatch."""
    check_state_dict(module.state_dict(), state, source=source)
    module.load_state_dict(state, strict=True)


def load_weights(module: torch.nn.Module, path: str | PathLike) -> torch.nn.Module:
    """Load the plain state dict at ``path`` (e.g. a bundle's ``models/model.pt``) strictly; return ``module``.

    Raises:
        CheckpointError: missing/unreadable file, or keys/shapes that do not fit (listed).
    """
    state = read_state_dict(path)
    try:
        load_state_dict_strict(module, state, source=str(path))
    except CheckpointError as error:
        hint = _trained_with(Path(path), module)
        if hint is None:
            raise
        expected = module.state_dict()
        differing = sorted(set(expected) ^ set(state)) + sorted(
            k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape)
        )
        raise CheckpointError(
            f"{path}: does not fit the network of this config ({len(differing)} tensors differ, e.g. {differing[0]}); {hint}"
        ) from error
    return module


def _network_family(dotted: str) -> str | None:
    """``sat`` for ``bundles.networks.sat.SAT.nano`` or ``bundles.networks.sat.sat``; None outside ``bundles.networks``."""
    parts = dotted.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["bundles", "networks"] else None


def _trained_with(path: Path, module: torch.nn.Module) -> str | None:
    """What the model card beside a trained model says about the configs that built it, as a hint: another
    family's model (a SAMed model given to SAM-UNet), or the overlay to add for the same family."""
    card = read_model_card(path.parent)
    files = (card or {}).get("config_files") or []
    if not files:
        return None
    where = path.parent / CARD_NAME
    config = card.get("config") if isinstance(card.get("config"), dict) else {}
    network = config.get("network_def") if isinstance(config.get("network_def"), dict) else {}
    trained = _network_family(str(network.get("_target_", "")))
    running = _network_family(type(module).__module__)
    if trained and running and trained != running:
        bundle = Path(str(config.get("bundle_root", ""))).name or trained
        return f"it is a model of the {bundle} bundle ({where}), not of this one; give this bundle a model trained or converted for it"
    overlays = model_overlays(card)
    if not overlays:
        return f"it was trained with {', '.join(files)} (see {where}); use the same network settings"
    shown = ",".join(f"'{f}'" for f in ["configs/inference.json", *overlays])
    return f"it was trained with {' + '.join(files)} (see {where}); add the same overlay: --config_file \"[{shown}]\""
