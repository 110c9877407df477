"""Attribution overlays for the Draw page's current input: saliency, Grad-CAM, integrated gradients and
occlusion for the predicted class (by the library's :func:`convscope.inspect.attribution.explain`), each with the
trust audit's verdict for this run, read from ``RUN/inspect/audit.json`` (what ``convscope explain RUN --audit``
writes). A constant map (all-zero included) is flagged, never drawn as a silent blank."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..inspect.attribution import METHODS, explain, predicted
from .compute import _quantize
from .runs import RunEntry

WEB_METHODS = ("saliency", "gradcam", "integrated_gradients", "occlusion")
AUDIT = Path("inspect") / "audit.json"


def audit_verdicts(run_path: Path) -> dict[str, Any]:
    """The verdicts of ``RUN/inspect/audit.json`` by method, with how many images it rests on; ``note`` says
    why there are none (no audit yet, or an unreadable file: named, with how to make a new one)."""
    path = Path(run_path) / AUDIT
    redo = f"convscope explain {run_path} --audit"
    if not path.is_file():
        return {"verdicts": {}, "note": f"not audited yet: `{redo}` writes {AUDIT} (the page reads it on the "
                                        "next update)"}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        images, complete = int(doc["images"]), bool(doc.get("complete", True))
        # an unfinished audit's rows are not yet compared with the controls: their verdict is provisional
        rows = {r["method"]: {"verdict": str(r["verdict"]), "trusted": bool(r["trusted"]), "final": complete}
                for r in doc["methods"] if isinstance(r, dict) and not r.get("control")}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        return {"verdicts": {}, "note": f"{path}: unreadable ({type(e).__name__}: {e}); `{redo}` writes a new one"}
    note = (f"verdicts from {AUDIT} ({images:,} {doc.get('dataset', '')} {doc.get('split', '')} images"
            f"{'' if complete else ', audit not finished'}): trusted = passes model randomization, is faithful, "
            "and beats the image and edge-map controls")
    return {"verdicts": rows, "note": note, "images": images, "complete": complete}


def attributions(entry: RunEntry, x_u8: torch.Tensor, methods: tuple[str, ...] = WEB_METHODS) -> dict[str, Any]:
    """Each method's map for the uint8 input (1, C, H, W) and its predicted class, quantized like the layer maps
    (one scale a map), with what it rests on (Grad-CAM's layer, the baseline), whether it is constant, and the
    audit's verdict for this run."""
    run = entry.run
    audit = audit_verdicts(entry.path)
    out = []
    with entry.model_lock:
        inp = run.preprocess(x_u8)
        target = int(predicted(run.model, inp)[0])
        for m in methods:
            r = explain(run.model, inp, m, target)
            mp = torch.from_numpy(r.maps[0]).float()                        # (H, W)
            out.append({"method": m, "description": METHODS[m], "layer": r.layer, "baseline": r.baseline,
                        "constant": bool(r.degenerate_indices), "shape": list(mp.shape), **_quantize(mp[None]),
                        "audit": audit["verdicts"].get(m)})
    return {"target": target, "class": run.classes[target], "methods": out, "audit_note": audit["note"]}
