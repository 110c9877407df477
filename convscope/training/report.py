"""Reports on a trained run: the confusion matrix (table and PNG) and predictions for image files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DataError
from ..viz import new_figure, save_figure
from .evaluate import EvalResult
from .rundir import Run


def confusion_table(res: EvalResult, classes: tuple[str, ...]) -> str:
    names = [c[:10] for c in classes]
    w = max(6, max(len(n) for n in names) + 1)
    corner = "true \\ pred"
    lines = [f"{corner:>{w + 2}}" + "".join(f"{n:>{w}}" for n in names) + f"{'acc %':>9}"]
    for i, n in enumerate(names):
        lines.append(f"{n:>{w + 2}}" + "".join(f"{v:>{w}d}" for v in res.confusion[i])
                     + f"{100 * res.per_class[i]:>9.2f}")
    return "\n".join(lines)


def confusion_png(res: EvalResult, classes: tuple[str, ...], path: Path) -> Path:
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
    return save_figure(fig, path)


def image_to_input(path: Path, shape: tuple[int, int, int]) -> tuple[torch.Tensor, list[str]]:
    """Read any PNG/JPEG and convert it to the model's (1, C, H, W) uint8 input; the notes say what was done."""
    c, h, w = shape
    notes = []
    try:
        with Image.open(path) as img:
            img.load()
            mode, size = img.mode, img.size
            target = "L" if c == 1 else "RGB"
            if img.mode != target:
                img = img.convert(target)
                notes.append(f"converted {mode} to {'grayscale' if c == 1 else 'RGB'}")
            if size != (w, h):
                scale = min(w / size[0], h / size[1])
                nw, nh = max(1, round(size[0] * scale)), max(1, round(size[1] * scale))
                img = img.resize((nw, nh), Image.LANCZOS)
                canvas = Image.new(target, (w, h))
                canvas.paste(img, ((w - nw) // 2, (h - nh) // 2))
                img = canvas
                notes.append(f"resized {size[0]} x {size[1]} to {nw} x {nh}, centred on a black {w} x {h} canvas")
            arr = np.asarray(img, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path}: not a readable PNG or JPEG image ({e})") from e
    if c == 1 and arr.mean() > 127:
        notes.append("mostly light background: the model was trained on light strokes on black; "
                     "consider inverting the image")
    x = torch.from_numpy(arr.copy())
    x = x[None, None] if c == 1 else x.permute(2, 0, 1)[None]
    return x, notes


@torch.no_grad()
def predict_files(run: Run, paths: list[Path], k: int = 3) -> list[tuple[Path, list[str], list[tuple[str, float]]]]:
    out = []
    for path in paths:
        x, notes = image_to_input(path, run.input_shape)
        inp = run.preprocess(x)
        logits = run.model(inp).float()
        if run.tta:
            logits = 0.5 * (logits + run.model(inp.flip(3)).float())
            notes.append("averaged with the mirrored image (the run's test-time augmentation)")
        probs = torch.softmax(logits, dim=1)[0]
        p, idx = probs.topk(min(k, len(run.classes)))
        out.append((path, notes, [(run.classes[i], float(v)) for v, i in zip(p, idx.tolist())]))
    return out
