"""Reports on a trained run: the confusion matrix (table and PNG) and predictions for image files."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from matplotlib.figure import Figure

from .._atomic import atomic_write_bytes
from .._check import replaceable
from ..errors import ConfigError
from ..data.prepare import default_mode, prepare_image
from ..models.forward import iter_batches
from ..models.output import check_logits
from ..viz import new_figure, save_figure
from .evaluate import EvalResult

if TYPE_CHECKING:   # a Run's display draws its confusion matrix here: no import back at run time
    from matplotlib.figure import Figure

    from .run import Run


def confusion_table(res: EvalResult, classes: tuple[str, ...]) -> str:
    names = [c[:10] for c in classes]
    w = max(6, max(len(n) for n in names) + 1)
    corner = "true \\ pred"
    lines = [f"{corner:>{w + 2}}" + "".join(f"{n:>{w}}" for n in names) + f"{'acc %':>9}"]
    for i, n in enumerate(names):
        lines.append(f"{n:>{w + 2}}" + "".join(f"{v:>{w}d}" for v in res.confusion[i])
                     + f"{100 * res.per_class[i]:>9.2f}")
    return "\n".join(lines)


def confusion_figure(res: EvalResult, classes: tuple[str, ...]) -> Figure:
    """The confusion matrix, each row coloured by the fraction of its true class, counts written in."""
    k = len(classes)
    fig = new_figure(1.2 + 0.55 * k, 1.0 + 0.5 * k)
    ax = fig.subplots()
    rows = res.confusion / np.maximum(res.confusion.sum(1, keepdims=True), 1)   # fraction of each true class
    im = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if res.confusion[i, j]:
                ax.text(j, i, str(res.confusion[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rows[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"accuracy {100 * res.accuracy:.2f}% on {res.n:,} images")
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true class")
    return fig


def confusion_png(res: EvalResult, classes: tuple[str, ...], path: Path) -> Path:
    return save_figure(confusion_figure(res, classes), path)


SHOWN_TEXT = ("Software", "convscope predict --show")   # the PNG text chunk of every picture --show writes


def _shown_paths(paths: list[Path]) -> dict[Path, Path]:
    """Where ``--show`` writes each image's prepared input (``<name>.prepared.png`` beside it), checked before
    anything is written: no two images may share one (photo.png and photo.jpg), none may be an input image, and
    an existing file is replaced only when an earlier --show wrote it (its PNG text chunk says so)."""
    out: dict[Path, Path] = {}
    mark = b"tEXt" + SHOWN_TEXT[0].encode() + b"\0" + SHOWN_TEXT[1].encode()
    inputs = {p.resolve() for p in paths}
    for path in paths:
        shown = path.with_name(path.stem + ".prepared.png")
        twin = next((p for p, s in out.items() if s.resolve() == shown.resolve() and p != path), None)
        if twin is not None:
            raise ConfigError(f"show: {twin} and {path} would both write {shown}; rename one of them, or run "
                              "predict --show on them separately", arg="show")
        if shown.resolve() in inputs:
            raise ConfigError(f"show: {shown} is one of the images given; writing what the model saw there would "
                              "replace it; leave it out, or rename it", arg="show")
        out[path] = replaceable(shown, "show", mark, "a picture an earlier predict --show wrote",
                                "move or rename it, or leave --show out")
    return out


@torch.no_grad()
def predict_files(run: Run, paths: list[Path], k: int = 3, prepare: str | None = None, show: bool = False,
                  batch_size: int = 256) -> list[tuple[Path, list[str], list[tuple[str, float]]]]:
    """Top-k classes of each image file. ``prepare``: "mnist" or "none" (default: the run's, from model.json);
    ``show``: also write the prepared input beside each file as ``<name>.prepared.png``. Images are read and
    prepared one by one, then classified ``batch_size`` at a time."""
    mode = prepare or default_mode(run.meta)
    shown_paths = _shown_paths(paths) if show else {}
    preps = [prepare_image(path, run.input_shape, mode=mode) for path in paths]   # the one image -> input path
    images = torch.stack([p.tensor for p in preps]) if preps else torch.empty(0, dtype=torch.uint8)  # (N, C, H, W)
    out = []
    for start, logits in iter_batches(run.model, images, run.normalization, batch_size, forward=run.logits):
        # a diverged run's NaN scores would print as "8 nan%"
        check_logits(logits, f"{run.path}'s model", finite=True,
                     where=f"{paths[start]}" + (f" and {len(logits) - 1} more" if len(logits) > 1 else ""))
        probs = torch.softmax(logits, dim=1)                                    # (B, classes)
        p, idx = probs.topk(min(k, len(run.classes)), dim=1)
        out += [[(run.classes[c], float(v)) for v, c in zip(p[j], idx[j].tolist())] for j in range(len(p))]
    # files are written only once every image has been read and classified: a bad file among several leaves none
    results = []
    for path, prep, top in zip(paths, preps, out):
        notes = [f"prepared: {mode}" + (" (the run's default)" if prepare is None else "")] + prep.notes
        if show:
            shown = shown_paths[path]
            arr = prep.tensor.numpy()
            buf = io.BytesIO()
            info = PngInfo()
            info.add_text(*SHOWN_TEXT)   # marks it ours: a later --show may replace it, nothing else
            Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)).save(buf, format="PNG",
                                                                                       pnginfo=info)
            atomic_write_bytes(shown, buf.getvalue())
            notes.append(f"wrote what the model saw to {shown}")
        if run.tta:
            notes.append("averaged with the mirrored image (the run's test-time augmentation)")
        if run.meta.get("tta_shift"):
            notes.append(f"not averaged with copies shifted {run.meta['tta_shift']} px as this run recorded "
                         "(convscope removed shifted test-time views)")
        results.append((path, notes, top))
    return results
