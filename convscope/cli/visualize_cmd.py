"""``convscope visualize RUN --layer NAME`` (activation maximization) and ``convscope project RUN --layer NAME``
(deconvnet and guided-backprop projections of each unit's top activations)."""

from __future__ import annotations

import argparse
import json

from .._atomic import atomic_write_text
from ..configs import PROJECT_K_MAX, VisualizeConfig
from ._options import add_options, config_from_args
from .inspect_cmd import add_target_args, load_dataset, load_target, top_of
from ._types import count


def _safe(name: str) -> str:
    return name.replace("/", "_")


def cmd_visualize(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..inspect.visualize import layer_channels, parse_channels, resolve_layer, visualize
    from ..inspect.viz_pictures import visualization_png

    cfg = config_from_args(VisualizeConfig, args)
    t = load_target(args)
    if args.class_ is not None and (args.layer is not None or args.channels is not None):
        flag = "--layer" if args.layer is not None else "--channels"
        raise ConfigError(f"--class with {flag}: --class K visualizes class logits, {flag} picks units of a layer; "
                          "give one or the other")
    if args.class_ is None and not args.layer:
        raise ConfigError("give --layer NAME (see `convscope layers RUN`) or --class K")
    layer = None if args.class_ is not None else resolve_layer(t.model, args.layer, "--layer")
    spec, flag = (args.class_, "--class") if args.class_ is not None else (args.channels, "--channels")
    chans = None
    if spec is not None:   # an empty --channels is refused by parse_channels, not read as "all"
        n = layer_channels(t.model, layer, t.input_shape, name="--input-shape")
        chans = parse_channels(spec, n, flag)
    ds = None if args.no_natural else load_dataset(args, t)
    res = visualize(t.model, layer, chans, ds, norm=t.normalization, input_shape=t.input_shape, config=cfg)
    what = f"layer {layer}" if layer else "class logits"
    print(f"{what}: {len(res.channels)} units, {res.measure} measure, {cfg.steps} steps ({cfg.param}), "
          f"seed {cfg.seed}")
    for c, v, n in list(zip(res.channels, res.values, res.natural_values or [None] * len(res.values)))[:args.show]:
        print(f"  unit {c:>4}: optimized {v:9.3f}" + ("" if n is None else f"   best natural image {n:9.3f}"))
    if res.headline() is not None:
        print(res.headline())
    stem = f"visualize-{_safe(layer or 'logits')}{'-neuron' if res.measure == 'neuron' else ''}"
    atomic_write_text(t.out_dir / f"{stem}.json", json.dumps(res.to_dict(), indent=2) + "\n")
    png = visualization_png(res, ds.images if ds is not None else None, t.out_dir / f"{stem}.png",
                            f"{what}: what each unit wants to see")
    print(f"wrote {t.out_dir / stem}.json and {png.name}")
    return 0


def cmd_project(args: argparse.Namespace) -> int:
    from ..inspect.projection import projections
    from ..inspect.visualize import layer_channels, parse_channels, resolve_layer
    from ..inspect.viz_pictures import projections_png

    t = load_target(args)
    layer = resolve_layer(t.model, args.layer, "--layer")
    n = layer_channels(t.model, layer, t.input_shape, name="--input-shape")
    # default: the layer's first 8 channels (fewer when it has fewer)
    chans = parse_channels(args.channels, n) if args.channels is not None else list(range(min(8, n)))
    ds = load_dataset(args, t)
    res = projections(t.model, ds, layer, chans, args.k, t.normalization)
    stem = f"project-{_safe(res.layer)}"
    atomic_write_text(t.out_dir / f"{stem}.json", json.dumps(res.to_dict(), indent=2) + "\n")
    png = projections_png(res, ds.images, t.out_dir / f"{stem}.png", f"layer {res.layer}", len(res.channels),
                          min(args.k, len(ds)))
    print(f"layer {res.layer}: {len(res.channels)} units x {top_of(args.k, len(ds))} images projected\n"
          f"wrote {t.out_dir / stem}.json and {png.name}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("visualize", help="feature visualization: the image each unit of a layer wants to see")
    add_target_args(p)
    p.add_argument("--layer", help="layer name (see `convscope layers RUN`)")
    p.add_argument("--channels", help="units, e.g. 0-15 or 0,3,9 (default: all)")
    p.add_argument("--class", dest="class_", metavar="K", help="visualize class logits K (e.g. 3 or 0-9)")
    add_options(p, VisualizeConfig)
    p.add_argument("--no-natural", action="store_true", help="skip the pass over the dataset for natural values")
    p.add_argument("--show", type=count(0), default=16, help="units printed (default 16)")
    p.set_defaults(func=cmd_visualize, output_set=True)

    p = sub.add_parser("project", help="deconvnet and guided-backprop projections of each unit's top-k activations")
    add_target_args(p)
    p.add_argument("--layer", required=True, help="layer name")
    p.add_argument("--channels", help="units, e.g. 0-7 (default: the first 8)")
    p.add_argument("--k", type=count(1, PROJECT_K_MAX, "two backward passes per image and unit, every one drawn"),
                   default=4, help=f"top activations per unit (default 4, at most {PROJECT_K_MAX})")
    p.set_defaults(func=cmd_project, output_set=True)


