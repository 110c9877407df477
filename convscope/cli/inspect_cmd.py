"""Inspection commands: ``layers``, ``sparsity``, ``edges``, ``rf``, ``filters``, ``features``, ``topk``.

Each takes a run directory, or ``--model-file path.py:ClassName --weights w.safetensors --input-shape CxHxW``,
prints a table and writes PNG + JSON into the run's ``inspect/`` folder (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

from .._atomic import atomic_write_text, writable_folder
from ..configs import TOPK_MAX
from ..errors import ConfigError
from ._options import add_quiet, add_threads
from ._types import count, number

if TYPE_CHECKING:
    from torch import nn


def top_of(k: int, n: int) -> str:
    """``top 9 of 1,000``; with fewer images than ``--k`` asked for, what was really ranked: ``all 5 (--k 100
    asked)`` rather than the impossible "top 100 of 5"."""
    return f"top {k} of {n:,}" if k <= n else f"all {n:,} (--k {k} asked)"


def add_target_args(p: argparse.ArgumentParser, dataset: bool = True) -> None:
    p.add_argument("run", nargs="?", type=Path, help="a run directory (or use --model-file)")
    p.add_argument("--model-file", help="your model: path.py:ClassName (instantiated with no arguments)")
    p.add_argument("--weights", type=Path, help="safetensors weights for --model-file")
    p.add_argument("--input-shape", help="CxHxW input of --model-file (default: the dataset's)")
    p.add_argument("--mean", help="--model-file normalization: per-channel mean on the 0..1 scale, e.g. 0.13")
    p.add_argument("--std", help="--model-file normalization: per-channel std, e.g. 0.31")
    p.add_argument("--out", type=Path, help="output folder (default RUN/inspect)")
    if dataset:
        from .data_cmd import add_data_args

        p.add_argument("--dataset", help="dataset (default: the run's, or digits)")
        p.add_argument("--split", default="test", help="split (default test)")
        p.add_argument("--limit", type=count(0), default=0, help="use only the first N images (0 = all)")
        add_data_args(p)
        add_quiet(p)
        add_threads(p)


def _floats(text: str | None, flag: str, positive: bool = False):
    """``--mean 0.13`` / ``--std 0.3,0.3,0.3``: finite numbers (``positive`` for a std), one per channel."""
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected comma-separated numbers, e.g. 0.13 or 0.5,0.5,0.5") from None
    if not all(math.isfinite(v) and (v > 0 or not positive) for v in values):
        need = "positive finite numbers" if positive else "finite numbers"
        raise ConfigError(f"{flag} {text!r}: expected {need}")
    return values


def refuse_model_file_flags(args: argparse.Namespace) -> None:
    """With a RUN, the flags that describe a --model-file are refused by name: a run carries its own weights, input
    shape and normalization, and silently ignoring --mean 0.5 would give other numbers than the user asked for."""
    if args.run is None:
        return
    given = [f for f, dest in (("--weights", "weights"), ("--input-shape", "input_shape"), ("--mean", "mean"),
                               ("--std", "std")) if getattr(args, dest, None) is not None]
    if given:
        raise ConfigError(f"{', '.join(given)}: for --model-file only; the run {args.run} carries its own weights, "
                          f"input shape and normalization; drop {'it' if len(given) == 1 else 'them'}")


def load_target(args: argparse.Namespace):
    from ..inspect.target import from_model_file, from_run
    from ..models.probe import check_input_shape

    if args.run is not None and args.model_file:
        raise ConfigError("give a RUN or --model-file, not both")
    refuse_model_file_flags(args)
    if args.run is not None:
        t = from_run(args.run)
    elif args.model_file:
        shape = None
        ds_name = getattr(args, "dataset", None) or "digits"
        if args.input_shape:
            try:
                shape = tuple(int(v) for v in args.input_shape.lower().split("x"))
            except ValueError:
                raise ConfigError(f"--input-shape {args.input_shape!r}: expected CxHxW, e.g. 1x28x28") from None
            shape_name = f"--input-shape {args.input_shape}"
            check_input_shape(shape, shape_name)
        else:
            from ..data import load

            shape = load(ds_name, "test", getattr(args, "data_dir", None),
                         download=not getattr(args, "no_download", False)).shape
            shape_name = f"--dataset {ds_name} (its images' shape; or give --input-shape CxHxW)"
        # every command, even those that only read weights (filters), gets a model that runs on this shape (one
        # zero image through it); those that read class scores (explain, visualize --class) also the classifier
        # output contract
        scores = getattr(args, "needs_scores", False) or getattr(args, "class_", None) is not None
        t = from_model_file(args.model_file, args.weights, shape, ds_name, args.out or Path("inspect"),
                            _floats(args.mean, "--mean"), _floats(args.std, "--std", positive=True), shape_name,
                            scores=scores)
    else:
        raise ConfigError("give a run directory, or --model-file path.py:ClassName --weights file.safetensors")
    if args.out:
        t.out_dir = args.out
    writable_folder(t.out_dir, f"--out {t.out_dir}", "--out inspect")
    return t


def load_dataset(args, target, predicts: bool = False):
    """The dataset of the command's flags, for ``target``; ``predicts``: the command prints the model's predicted
    class beside the dataset's images, so a class count that differs from the dataset's is noted."""
    import torch
    from .data_cmd import load_from_args

    ds = load_from_args(args, args.dataset or target.dataset, args.split, target.input_shape)
    if predicts and target.num_classes is not None and target.num_classes != len(ds.classes):
        import sys

        print(f"note: the model gives {target.num_classes} class scores, {ds.name} has {len(ds.classes)} classes; "
              "predicted classes are the model's output indices", file=sys.stderr)
    if args.limit:
        ds = ds.subset(torch.arange(min(args.limit, len(ds))))
    return ds


def _write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def _layer_arg(model: nn.Module, names: str | None, flag: str = "--layer") -> list[str] | None:
    """The layers a comma-separated ``flag`` names (None: the flag was not given). Given but naming nothing
    (``' '``, ``','``) is an error, not a silent fall-back to the defaults."""
    from ..models.layers import resolve_layers

    if names is None:
        return None
    if not [n for n in names.split(",") if n.strip()]:
        raise ConfigError(f"{flag} {names!r}: names no layer; give comma-separated layer names such as relu1,relu2 "
                          "(see `convscope layers RUN`), or leave the flag out for the default")
    return resolve_layers(model, names)


def cmd_layers(args) -> int:
    from ..inspect import list_layers

    t = load_target(args)
    rows = list_layers(t.model, t.input_shape)
    w = max(len(r.name) for r in rows)
    print(f"{'layer':<{w}}  {'type':<18} {'output shape':<16} parameters")
    for r in rows:
        print(f"{r.name:<{w}}  {r.kind:<18} {'x'.join(map(str, r.output_shape)):<16} {r.parameters:,}"
              + (f"  (runs {r.calls} times per forward: shape of the first call; the commands that read a "
                 "layer's activations refuse it)" if r.calls > 1 else ""))
    return 0


def cmd_sparsity(args) -> int:
    from ..distributed import is_main_process
    from ..inspect.distributed import sharded_activation_sparsity
    from ..inspect.sparsity import sparsity_png

    t = load_target(args)
    ds = load_dataset(args, t)
    res = sharded_activation_sparsity(t.model, ds, t.normalization, _layer_arg(t.model, args.layers, "--layers"),
                                      args.threshold)   # one process, or every rank of a torchrun launch
    if not is_main_process():
        return 0
    w = max(len(r.name) for r in res)
    print(f"{ds.name} {ds.split}, {len(ds):,} images; near zero: |a| <= {args.threshold}")
    print(f"{'layer':<{w}}  {'shape':<12} {'exactly 0':>10} {'near 0':>8} {'dead units':>14} {'dead channels':>14}")
    for r in res:
        print(f"{r.name:<{w}}  {'x'.join(map(str, r.shape)):<12} {100 * r.zero_fraction:>9.2f}% "
              f"{100 * r.near_zero_fraction:>7.2f}% {r.dead_units:>6}/{r.units:<7} "
              f"{r.dead_channels:>6}/{r.shape[0]:<7}")
    stem = f"sparsity-{ds.name.replace(':', '_').replace('/', '_')}-{ds.split}"
    _write_json(t.out_dir / f"{stem}.json", {"dataset": ds.name, "split": ds.split, "images": len(ds),
                                             "threshold": args.threshold, "layers": [r.to_dict() for r in res]})
    sparsity_png(res, t.out_dir / f"{stem}.png", f"activation sparsity on {ds.name} {ds.split} ({len(ds):,} images)")
    print(f"wrote {t.out_dir / stem}.json and .png")
    return 0


def cmd_edges(args) -> int:
    import torch
    from ..distributed import is_main_process
    from ..inspect.distributed import sharded_edge_experiment
    from ..inspect.edges import edges_png
    from .data_cmd import load_from_args

    split = args.split or ("all" if args.dataset == "digits" or args.dataset.startswith("folder:") else "test")
    ds = load_from_args(args, args.dataset, split)
    if args.limit:
        ds = ds.subset(torch.arange(min(args.limit, len(ds))))
    res = sharded_edge_experiment(ds.images, args.filter, kernel=args.kernel, tolerance=args.tolerance)
    if not is_main_process():   # under torchrun every rank counts its shard; rank 0 reports
        return 0
    s = res.summary()
    px = res.pixels
    kh, kw = res.kernel.shape
    zero = "exact integer arithmetic" if res.exact else f"|y| <= {res.tolerance:.3g} counted as zero"
    print(f"{res.filter} {kh}x{kw} {s['kernel']} with zero 'same' padding (left, right, top, bottom = "
          f"{res.padding}), then ReLU, on {ds.name} {split} ({len(ds):,} images of {px} values; {zero})")
    for key, label in (("input_nonzero", "input"), ("filtered_nonzero", "filter output"),
                       ("after_relu_nonzero", "after ReLU")):
        v = s[key]
        print(f"  non-zero pixels, {label:<14} mean {v['mean']:7.1f}  median {v['median']:6.1f}  "
              f"p10-p90 {v['p10']:.0f}-{v['p90']:.0f}  range {v['min']}-{v['max']}  ({100 * v['mean'] / px:.1f}%)")
    print(f"  exactly-zero input pixels per image: {s['input_zero_mean']:.1f} of {px} on average")
    print(f"  ReLU zeroes {100 * s['relu_zeroed_fraction_of_nonzero']:.1f}% of the filter's non-zero outputs")
    out = args.out or Path("inspect")
    name = args.filter if args.kernel is None else f"kernel{kh}x{kw}"
    stem = f"edges-{name}-{ds.name.replace(':', '_').replace('/', '_')}"
    _write_json(out / f"{stem}.json", {**s, "dataset": ds.name, "split": split,
                                       "nonzero_before": res.nonzero_before.tolist(),
                                       "nonzero_after": res.nonzero_after.tolist()})
    edges_png(ds.images, res, out / f"{stem}.png")
    print(f"wrote {out / stem}.json and .png")
    return 0


def cmd_rf(args) -> int:
    from ..inspect import receptive_field_report

    t = load_target(args)
    rep = receptive_field_report(t.model, t.input_shape)
    if rep.method == "gradient":
        print(f"the chain formula does not apply ({rep.reason});\nempirical fields of each layer's centre "
              "unit, by gradient (clipped at the image border):")
        for r in rep.rows:
            top, left, bottom, right = r.empirical_box
            print(f"  {r.layer:<20} {r.type:<12} box rows {top}-{bottom}, cols {left}-{right}  "
                  f"(size {bottom - top + 1}x{right - left + 1})")
    else:
        w = max(len(r.layer) for r in rep.rows)
        print(f"{'layer':<{w}}  {'type':<18} {'output':<8} {'size':<8} {'jump':<6} {'start':<8} check (centre unit)")
        for r in rep.rows:
            if r.is_global:
                print(f"{r.layer:<{w}}  {r.type:<18} {'-':<8} {'whole input':<23}")
                continue
            print(f"{r.layer:<{w}}  {r.type:<18} {'x'.join(map(str, r.output_hw)):<8} {'x'.join(map(str, r.size)):<8} "
                  f"{'x'.join(map(str, r.jump)):<6} {str(r.start):<8} {r.check or ''}")
    _write_json(t.out_dir / "receptive-fields.json", rep.to_dict())
    print(f"wrote {t.out_dir / 'receptive-fields.json'}")
    return 0


def cmd_filters(args) -> int:
    from ..inspect.pictures import kernels_png
    from ..models.conv_layers import conv_layers

    t = load_target(args)
    convs = conv_layers(t.model)
    if not convs:
        raise ConfigError("the model has no Conv2d layer")
    names = _layer_arg(t.model, args.layer) if args.layer else list(convs)[:1]
    for n in names:
        if n not in convs:
            raise ConfigError(f"--layer {n!r}: not a conv layer; conv layers: {', '.join(convs)}")
        png = kernels_png(convs[n], t.out_dir / f"filters-{n}.png", f"layer {n}")
        print(f"wrote {png}")
    return 0


def cmd_features(args) -> int:
    import torch
    from ..inspect import capture, list_layers
    from ..inspect.pictures import feature_maps_png
    from ..models.output import check_logits

    t = load_target(args)
    ds = load_dataset(args, t, predicts=True)
    if not 0 <= args.index < len(ds):
        raise ConfigError(f"--index {args.index}: the {ds.split} split has {len(ds)} images (0..{len(ds) - 1})")
    table = list_layers(t.model, t.input_shape)
    mapped = [r.name for r in table if len(r.output_shape) == 3 and r.calls == 1]   # layers with (C, H, W) maps
    names = _layer_arg(t.model, args.layers, "--layers") or mapped
    flat = [n for n in names if n not in mapped and any(r.name == n and r.calls == 1 for r in table)]
    if flat:    # was: matplotlib's "Number of rows must be a positive integer, not 0" traceback for --layers fc
        raise ConfigError(f"--layers {','.join(flat)}: no feature maps there (a layer's output must be channels x "
                          f"height x width to be drawn); layers with feature maps: {', '.join(mapped) or 'none'}",
                          arg="--layers")
    img = ds.images[args.index:args.index + 1]
    with torch.no_grad(), capture(t.model, names) as maps:
        logits = t.model(t.preprocess(img))
    pred = int(check_logits(logits, batch=1, finite=True, where=f"{ds.split} image {args.index}").argmax(1))
    label = ds.classes[int(ds.labels[args.index])]
    title = f"{ds.name} {ds.split} #{args.index} (label {label}, predicted {t.classes[pred] if t.classes else pred})"
    png = feature_maps_png({n: maps[n] for n in names if n in maps}, img[0], t.out_dir / f"features-{args.index}.png",
                           title, args.channels)
    print(f"{title}\nwrote {png}")
    return 0


def cmd_topk(args) -> int:
    from ..distributed import is_main_process
    from ..inspect import receptive_fields
    from ..inspect.distributed import sharded_topk
    from ..inspect.pictures import topk_png

    t = load_target(args)
    ds = load_dataset(args, t)
    layers = _layer_arg(t.model, args.layer)
    if not layers:
        raise ConfigError("give --layer NAME (see `convscope layers RUN`)")
    res = sharded_topk(t.model, ds, layers, args.k, t.normalization)   # one process, or every rank of torchrun
    if not is_main_process():
        return 0
    try:
        fields = receptive_fields(t.model, t.input_shape)
    except ConfigError:
        fields = {}
    for name in layers:
        recs = res[name]
        print(f"layer {name}: {len(recs)} channels, {top_of(args.k, len(ds))} {ds.name} {ds.split} images")
        for c, r in enumerate(recs[:args.show]):
            print(f"  ch {c:>3}: " + "  ".join(f"#{x.index}@({x.y},{x.x})={x.value:.3f}" for x in r[:5])
                  + (" ..." if len(r) > 5 else ""))
        safe = name.replace("/", "_")
        _write_json(t.out_dir / f"topk-{safe}.json", {
            "layer": name, "dataset": ds.name, "split": ds.split, "k": args.k,
            "receptive_field": None if name not in fields else fields[name].to_dict(),
            "channels": [[x.to_dict() for x in r] for r in recs]})
        p1, p2 = topk_png(ds.images, recs, fields.get(name), t.out_dir / f"topk-{safe}-patches.png",
                          t.out_dir / f"topk-{safe}-images.png", f"layer {name}", args.channels)
        print(f"wrote {t.out_dir / f'topk-{safe}.json'}, {p1.name}, {p2.name}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("layers", help="every layer by name, with its output shape")
    add_target_args(p, dataset=False)
    p.set_defaults(func=cmd_layers)

    p = sub.add_parser("sparsity", help="exact and near zeros of every activation layer, dead units, histograms")
    add_target_args(p)
    p.add_argument("--layers", help="comma-separated layer names (default: the activation layers)")
    p.add_argument("--threshold", type=number(0.0), default=1e-3, help="near-zero threshold (default 1e-3)")
    p.set_defaults(func=cmd_sparsity, output_set=True)

    from ..configs import EDGE_FILTERS as FILTERS
    from .data_cmd import add_data_args

    p = sub.add_parser("edges", help="the edge-detector experiment: filter + ReLU, non-zero pixels before/after")
    p.add_argument("--filter", default="sobel-x", choices=list(FILTERS))
    p.add_argument("--kernel", help='your kernel instead of --filter: JSON rows such as "[[1,1,-1,-1]]", any size '
                   "(even sizes: extra padding right/bottom), or a .npy file")
    p.add_argument("--tolerance", type=number(0.0), default=None,
                   help="float kernels: |output| <= this counts as zero (default: twice float64's rounding bound)")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--split", default=None, help="split (default: all for digits and folders, else test)")
    p.add_argument("--limit", type=count(0), default=0, help="use only the first N images")
    p.add_argument("--out", type=Path, help="output folder (default ./inspect)")
    add_data_args(p)
    add_threads(p)
    p.set_defaults(func=cmd_edges, output_set=True)

    p = sub.add_parser("rf", help="receptive field size, jump and start of every layer, checked by gradients")
    add_target_args(p, dataset=False)
    p.set_defaults(func=cmd_rf, output_set=True)

    p = sub.add_parser("filters", help="conv kernels as image grids")
    add_target_args(p, dataset=False)
    p.add_argument("--layer", help="comma-separated conv layer names (default: the first conv)")
    p.set_defaults(func=cmd_filters, output_set=True)

    p = sub.add_parser("features", help="every layer's feature maps for one image")
    add_target_args(p)
    p.add_argument("--index", type=count(0), default=0, help="image index in the split (default 0)")
    p.add_argument("--layers", help="comma-separated layer names (default: every feature-map layer)")
    p.add_argument("--channels", type=count(1), default=16, help="channels shown per layer (default 16)")
    p.set_defaults(func=cmd_features, output_set=True)

    p = sub.add_parser("topk", help="the dataset images that activate each channel most (Zeiler & Fergus)")
    add_target_args(p)
    p.add_argument("--layer", help="comma-separated layer names")
    p.add_argument("--k", type=count(1, TOPK_MAX, "the top images per channel, all kept in memory and written out"),
                   default=9, help=f"images per channel (default 9, at most {TOPK_MAX})")
    p.add_argument("--channels", type=count(1), default=16, help="channels drawn (default 16)")
    p.add_argument("--show", type=count(0), default=8, help="channels printed (default 8)")
    p.set_defaults(func=cmd_topk, output_set=True)
