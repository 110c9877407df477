"""``convscope explain RUN (--index N | IMAGE)``: attribution maps as overlay PNGs and JSON;
``--audit``: the sanity (parameter randomization) and faithfulness (deletion/insertion) table per method."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from .._atomic import atomic_write_text
from ..errors import ConfigError
from .inspect_cmd import add_target_args, load_dataset, load_target
from ._types import count


def _read_image(path: Path, shape: tuple[int, int, int]) -> torch.Tensor:
    """A PNG/JPEG as (1, C, H, W) uint8; it must already have the model's size."""
    from PIL import Image

    if not path.is_file():
        raise ConfigError(f"IMAGE {path}: no such file")
    try:
        with Image.open(path) as im:
            im = im.convert("L" if shape[0] == 1 else "RGB")
            a = np.asarray(im, dtype=np.uint8)
    except OSError as e:
        raise ConfigError(f"IMAGE {path}: not a readable image ({e})") from None
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    if a.shape != tuple(shape):
        raise ConfigError(f"IMAGE {path}: {a.shape[1]}x{a.shape[2]} pixels, {a.shape[0]} channels; the model takes "
                          f"{shape[1]}x{shape[2]}, {shape[0]} channels (resize it first)")
    return torch.from_numpy(a.copy())[None]


def _methods(text: str | None) -> list[str]:
    from ..inspect.attribution import METHODS

    names = list(METHODS) if not text else [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in names if m not in METHODS]
    if bad:
        raise ConfigError(f"--method {', '.join(bad)}: unknown; choose from {', '.join(METHODS)}")
    return names


def cmd_explain(args: argparse.Namespace) -> int:
    if args.audit:
        return _audit(args)
    from ..inspect.attribution import attribute, predicted
    from ..inspect.viz_pictures import overlay_png

    t = load_target(args)
    if args.image is not None:
        img, name = _read_image(args.image, t.input_shape), args.image.stem
    else:
        ds = load_dataset(args, t)
        if not 0 <= args.index < len(ds):
            raise ConfigError(f"--index {args.index}: the {ds.split} split has {len(ds)} images (0..{len(ds) - 1})")
        img, name = ds.images[args.index:args.index + 1], f"{ds.split}-{args.index}"
    x = t.preprocess(img)
    pred = int(predicted(t.model, x)[0])
    target = pred if args.target is None else args.target
    maps = {m: attribute(t.model, x, m, target, args.layer)[0] for m in _methods(args.method)}
    label = (lambda k: t.classes[k] if t.classes and 0 <= k < len(t.classes) else str(k))
    title = f"{name}: predicted {label(pred)}, explaining class {label(target)}"
    png = overlay_png(img[0], maps, t.out_dir / f"explain-{name}.png", title)
    atomic_write_text(t.out_dir / f"explain-{name}.json", json.dumps(
        {"image": name, "predicted": pred, "target": target, "layer": args.layer,
         "maps": {m: v.tolist() for m, v in maps.items()}}) + "\n")
    print(f"{title}\n" + "\n".join(f"  {m:<22} |map| max {np.abs(v).max():.4g}" for m, v in maps.items())
          + f"\nwrote {png} and explain-{name}.json")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from ..inspect.audit import audit_method, audit_table
    from ..inspect.viz_pictures import audit_png

    t = load_target(args)
    if not args.limit:
        args.limit = 500
    ds = load_dataset(args, t)
    x = t.preprocess(ds.images)
    rows = []
    head = f"{len(ds):,} {ds.name} {ds.split} images; targets: {'predicted' if args.target is None else args.target}"
    for m in _methods(args.method):
        rows.append(audit_method(t.model, x, m, args.target, args.layer, seed=args.seed, with_ssim=args.ssim))
        print(f"  {m}: {rows[-1].seconds:.1f} s", flush=True)
        table = audit_table(rows)   # written after every method: a long audit leaves its finished rows
        atomic_write_text(t.out_dir / "audit.json", json.dumps({"images": len(ds), "dataset": ds.name,
                                                                "split": ds.split,
                                                                "methods": [r.to_dict() for r in rows]}) + "\n")
        atomic_write_text(t.out_dir / "audit.md", f"{head}\n\n{table}\n")
    print(f"{head}\n{table}")
    png = audit_png(rows, t.out_dir / "audit.png", f"attribution audit: {head}")
    print(f"wrote {t.out_dir / 'audit.json'}, audit.md, {png.name}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="attribution maps (Captum) for one image; --audit: which maps to trust")
    add_target_args(p)
    p.add_argument("image", nargs="?", type=Path, help="an image file of the model's size (or use --index)")
    p.add_argument("--index", type=count(0), default=0, help="image index in the split (default 0)")
    p.add_argument("--method", help="comma-separated methods (default: all): saliency, smoothgrad, "
                                    "integrated_gradients, gradcam, occlusion, guided_gradcam")
    p.add_argument("--target", type=count(0), help="class to explain (default: the predicted one)")
    p.add_argument("--layer", help="Grad-CAM layer (default: the last conv)")
    p.add_argument("--audit", action="store_true", help="randomization sanity check and deletion/insertion per "
                                                        "method on the first --limit images (default 500)")
    p.add_argument("--ssim", action="store_true", help="--audit: also the SSIM of each randomized map")
    p.add_argument("--seed", type=count(0), default=0)
    p.set_defaults(func=cmd_explain)
