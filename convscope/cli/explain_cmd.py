"""``convscope explain RUN (--index N | IMAGE)``: attribution maps as overlay PNGs and JSON;
``--audit``: the sanity (parameter randomization) and faithfulness (deletion/insertion) table per method."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from .._atomic import atomic_write_text
from ..configs import ExplainConfig
from ..errors import ConfigError
from ._options import add_options, config_from_args
from .inspect_cmd import add_target_args, load_dataset, load_target

if TYPE_CHECKING:
    import torch


def _read_image(path: Path, shape: tuple[int, int, int], mode: str = "none") -> tuple[torch.Tensor, list[str]]:
    """Any PNG/JPEG as the model's (1, C, H, W) uint8 input, prepared as ``predict`` prepares it (the one
    image -> input path: safe read, upright, 8-bit, sized; ``mode`` "mnist" for digit models), and the notes.
    A blank image (nothing for mnist mode to find) is refused as ``predict`` refuses it ("no ink found"): maps of
    an empty input explain nothing (``--prepare none`` explains it, as ``predict --prepare none`` classifies it)."""
    from ..data.prepare import prepare_image

    prep = prepare_image(path, shape, mode=mode)
    return prep.tensor[None], prep.notes


def _check_args(model: torch.nn.Module, x: torch.Tensor, cfg: ExplainConfig) -> None:
    """--target and --layer against the model, before any attribution runs (the messages name the flags)."""
    from ..inspect.attribution import check_target, gradcam_layer, num_classes

    if cfg.target is not None:
        check_target(cfg.target, num_classes(model, x), len(x), "--target")
    if any(m in ("gradcam", "guided_gradcam") for m in cfg.methods):
        gradcam_layer(model, x, cfg.layer, "--layer")


def cmd_explain(args: argparse.Namespace) -> int:
    if args.model_file and args.run is not None and args.image is None and not args.run.is_dir():
        args.image, args.run = args.run, None    # with --model-file the one positional is the IMAGE
    cfg = config_from_args(ExplainConfig, args)
    if cfg.audit:
        return _audit(args, cfg)
    import numpy as np

    from ..inspect.attribution import explain, predicted
    from ..inspect.viz_pictures import overlay_png

    t = load_target(args)
    if args.image is not None:
        mode = args.prepare or t.prepare
        img, notes = _read_image(args.image, t.input_shape, mode)
        name = args.image.stem
        for note in [f"prepared: {mode}" + (" (the run's default)" if args.prepare is None else ""), *notes]:
            print(f"note: {note}")
    else:
        ds = load_dataset(args, t, predicts=True)
        if not cfg.index < len(ds):
            raise ConfigError(f"--index {cfg.index}: the {ds.split} split has {len(ds)} images (0..{len(ds) - 1})")
        img, name = ds.images[cfg.index:cfg.index + 1], f"{ds.split}-{cfg.index}"
    x = t.preprocess(img)
    _check_args(t.model, x, cfg)
    pred = int(predicted(t.model, x)[0])
    target = pred if cfg.target is None else cfg.target
    results = {m: explain(t.model, x, m, target, cfg.layer) for m in cfg.methods}
    maps = {m: r.maps[0] for m, r in results.items()}
    label = (lambda k: t.classes[k] if t.classes and 0 <= k < len(t.classes) else str(k))
    title = f"{name}: predicted {label(pred)}, explaining class {label(target)}"
    png = overlay_png(img[0], maps, t.out_dir / f"explain-{name}.png", title)
    atomic_write_text(t.out_dir / f"explain-{name}.json", json.dumps(
        {"image": name, "predicted": pred, "target": target, "layer": cfg.layer,
         "methods": {m: r.to_dict() for m, r in results.items()},
         "maps": {m: v.tolist() for m, v in maps.items()}}) + "\n")
    print(f"{title}\n" + "\n".join(f"  {m:<22} |map| max {np.abs(v).max():.4g}" for m, v in maps.items()))
    for r in results.values():
        if r.layer_reason and r.layer_reason != "given":
            print(f"note: {r.method} at layer {r.layer!r}: {r.layer_reason}")
        if r.baseline:
            print(f"note: {r.method} baseline: {r.baseline}")
        if r.warning:
            print(f"warning: {r.warning}")
    print(f"wrote {png} and explain-{name}.json")
    return 0


def _audit(args: argparse.Namespace, cfg: ExplainConfig) -> int:
    from .._progress import stage
    from ..inspect.audit import audit_notes, audit_table
    from ..inspect.audit_files import AUDIT_JSON, AUDIT_MD, audit_head, write_audit

    t = load_target(args)
    if not args.limit:
        args.limit = 500
    ds = load_dataset(args, t)
    x = t.preprocess(ds.images)
    _check_args(t.model, x, cfg)

    def progress(row) -> None:     # the files are written after every row (a long audit leaves its finished rows)
        warn = f" (warning: {row.degenerate_fraction:.1%} of its maps are constant)" if row.degenerate_fraction else ""
        stage(f"  {row.method}: {row.seconds:.1f} s{warn}")    # stderr, beside the bar; silent with --quiet

    rows, png = write_audit(t.model, x, t.out_dir, dataset=ds.name, split=ds.split, methods=cfg.methods,
                            target=cfg.target, layer=cfg.layer, seed=cfg.seed, with_ssim=cfg.ssim, on_row=progress)
    print(f"{audit_head(len(ds), ds.name, ds.split, cfg.target)}\n{audit_table(rows)}\n\n{audit_notes(rows)}")
    print(f"wrote {t.out_dir / AUDIT_JSON}, {AUDIT_MD}, {png.name}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="attribution maps (Captum) for one image; --audit: which maps to trust")
    add_target_args(p)
    p.add_argument("image", nargs="?", type=Path, help="a PNG/JPEG file of any size, prepared as predict prepares "
                                                       "it (or use --index)")
    p.add_argument("--prepare", choices=("none", "mnist"), default=None,
                   help="how IMAGE becomes input, as for predict (default: the run's, from model.json)")
    add_options(p, ExplainConfig)
    p.set_defaults(func=cmd_explain, needs_scores=True,
                   output_set=lambda a: not a.audit)   # an audit keeps its finished rows (marked incomplete)
    _image_after_options(p)


def _image_after_options(p: argparse.ArgumentParser) -> None:
    """Accept the IMAGE after options (``explain RUN --out X --method saliency IMAGE``): argparse fills both
    optional positionals, RUN and IMAGE, from the first group of bare words, so a later IMAGE would be left
    over as an 'unrecognized argument'. Taken only when nothing else is left over (an unknown option still
    fails as before)."""
    parse = p.parse_known_args

    def parse_known_args(args=None, namespace=None):
        ns, extras = parse(args, namespace)
        if getattr(ns, "image", None) is None and len(extras) == 1 and not extras[0].startswith("-"):
            ns.image, extras = Path(extras[0]), []
        return ns, extras
    p.parse_known_args = parse_known_args
