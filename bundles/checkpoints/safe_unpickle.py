"""Read training dumps without running their pickles: only tensors and plain containers are rebuilt.

Official training scripts save more than weights (SAM-Med3D's ``train.py``: an ``argparse.Namespace``,
loss lists, numpy scalars), which ``torch.load(weights_only=True)`` refuses. Instead of falling back to
full unpickling (which imports and calls whatever the file names), this pickle module rebuilds tensors,
storages, dtypes and ``OrderedDict``/``set`` containers, and turns every other global the file names into
an inert placeholder (:class:`Opaque`) that is never imported, called or given state.
Pass :data:`SAFE_PICKLE` as ``torch.load(..., weights_only=False, pickle_module=SAFE_PICKLE)``.
"""

from __future__ import annotations

import collections
import pickle
import types

import torch

__all__ = ["Opaque", "SAFE_PICKLE"]

#: Globals a tensor checkpoint needs (torch's own rebuild functions; storages are resolved by torch.load).
_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch._tensor", "_rebuild_from_type_v2"): torch._tensor._rebuild_from_type_v2,
    ("torch", "Tensor"): torch.Tensor,
    ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
    ("torch", "Size"): torch.Size,
}


class Opaque:
    """Placeholder for a pickled object of a class the checkpoint reader does not rebuild.

    ``qualname`` names what the file referred to (e.g. ``argparse.Namespace``); arguments and state
    are discarded.
    """

    qualname = "?"

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        pass

    def __repr__(self) -> str:
        return f"<not loaded: {self.qualname}>"


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        allowed = _ALLOWED.get((module, name))
        if allowed is not None:
            return allowed
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        return type(name, (Opaque,), {"qualname": f"{module}.{name}"})


def _load(file: object, **kwargs: object) -> object:
    return _Unpickler(file, **kwargs).load()


#: A pickle-module stand-in for ``torch.load(pickle_module=...)``.
SAFE_PICKLE = types.SimpleNamespace(Unpickler=_Unpickler, load=_load, __name__="bundles.checkpoints.safe_unpickle")
