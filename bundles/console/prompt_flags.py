"""The prompt flags of ``medseg segment`` -> a case's prompt fields, as every bundle's ``input_dict`` takes them.

    --prompts liver "left kidney" [--modality ct]      text bundles       -> prompts, modality
    --clicks 156,303,10 200,280,12,0 [--name liver]     click bundles      -> objects: one object, its points and labels
    --boxes 104,190,0,281,374,19 [--name liver]         box bundles        -> objects: one object per box
    --objects prompts.json                              click / box        -> objects: the file's list as it is
    --world                                             clicks and boxes are RAS millimetres (points_space world)

A click is ``i,j,k`` (inside the object) or ``i,j,k,0`` (outside: the fourth value is the label, 1 or 0); a box
is ``i0,j0,k0,i1,j1,k1`` (inclusive corners). Coordinates are voxel indices of the input image along its own
axes, or with ``--world`` RAS millimetres. Only the form is read here; each bundle's own prompt check judges
the values against the image before any model loads.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bundles.bundle_declarations import BundleDeclaration
from bundles.errors import BundleInputError, PromptError

__all__ = ["FLAG_OF_KIND", "prompt_fields"]

#: The flags that give each prompt kind (``--objects`` gives clicks and/or boxes).
FLAG_OF_KIND = {"text": "--prompts", "clicks": "--clicks", "boxes": "--boxes"}


def _numbers(text: str, flag: str, counts: tuple[int, ...]) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in counts:
        raise PromptError(f"{flag} {text!r}: expected {' or '.join(str(c) for c in counts)} comma-separated numbers")
    return values


def _whole(values: list[float]) -> list[float | int]:
    return [int(v) if float(v).is_integer() else v for v in values]


def _objects_file(path: str) -> list[Any]:
    file = Path(path)
    try:
        objects = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleInputError(file, "no such file (--objects)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleInputError(file, f"cannot be read as JSON ({error}) (--objects)") from None
    if not isinstance(objects, list):
        raise BundleInputError(file, f"must hold a JSON list of objects, got {type(objects).__name__} (--objects)")
    return objects


def _refuse_other_kinds(args: argparse.Namespace, declared: BundleDeclaration) -> None:
    takes = set(declared.prompt_kinds)
    given = {"--prompts": args.prompts and "text" not in takes, "--clicks": args.clicks and "clicks" not in takes,
             "--boxes": args.boxes and "boxes" not in takes, "--objects": args.objects and not takes & {"clicks", "boxes"},
             "--world": args.world and not takes & {"clicks", "boxes"}}
    wrong = [flag for flag, refused in given.items() if refused]
    if wrong:
        accepted = [FLAG_OF_KIND[k] for k in declared.prompt_kinds] + (["--objects"] if takes & {"clicks", "boxes"} else [])
        what = f"takes {' / '.join(accepted)}" if accepted else "takes no prompts (it segments its own classes)"
        raise PromptError(f"the {declared.name} bundle {what}; {wrong[0]} is not one of its options")


def prompt_fields(args: argparse.Namespace, declared: BundleDeclaration) -> dict[str, Any]:
    """The case fields given by the prompt flags of ``args`` for ``declared``'s bundle.

    Raises:
        PromptError: a flag of a prompt kind the bundle does not take (naming the flags it takes), a text bundle
            without ``--prompts``, a click or box bundle without any, or a malformed click or box.
        BundleInputError: an ``--objects`` file that is missing or not a JSON list.
    """
    _refuse_other_kinds(args, declared)
    fields: dict[str, Any] = {} if args.modality is None else {"modality": args.modality}
    if "text" in declared.prompt_kinds:
        if not args.prompts:
            raise PromptError(f"the {declared.name} bundle needs --prompts (structures to segment; list them with `medseg vocabulary`)")
        return {"prompts": list(args.prompts), "modality": args.modality or "ct", **fields}
    if not declared.prompt_kinds:
        return fields
    objects = _objects_file(args.objects) if args.objects else []
    clicks = [_numbers(c, "--clicks", (3, 4)) for c in args.clicks or []]
    points = {"points": [_whole(c[:3]) for c in clicks], "point_labels": [int(c[3]) if len(c) == 4 else 1 for c in clicks]}
    boxes = [_whole(_numbers(b, "--boxes", (6,))) for b in args.boxes or []]
    name = args.name or "object"
    if len(boxes) == 1:
        objects.append({"name": name, "box": boxes[0], **(points if clicks else {})})
    else:
        objects += [{"name": f"{name}_{i + 1}", "box": box} for i, box in enumerate(boxes)]
        if clicks:
            objects.append({"name": name, **points})
    if not objects:
        flags = " / ".join([FLAG_OF_KIND[k] for k in declared.prompt_kinds] + ["--objects"])
        raise PromptError(f"the {declared.name} bundle needs prompts: {flags}")
    if args.world:
        fields["points_space"] = "world"
    return {"objects": objects, **fields}
