"""``convscope matrix``: a conv layer as its explicit matrix — printed, drawn, its spectrum measured."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import ConfigError
from ._options import add_threads
from ._types import count, number


def _hw(text: str, name: str) -> tuple[int, int]:
    parts = text.lower().replace(",", "x").split("x")
    try:
        vals = [int(p) for p in parts]
    except ValueError:
        raise ConfigError(f"{name} {text!r}: expected N or HxW, e.g. 3 or 3x3") from None
    if len(vals) == 1:
        return vals[0], vals[0]
    if len(vals) == 2:
        return vals[0], vals[1]
    raise ConfigError(f"{name} {text!r}: expected N or HxW")


def _padding(text: str):
    if text in ("same", "valid"):
        return text
    parts = text.replace("x", ",").split(",")
    try:
        vals = [int(p) for p in parts]
    except ValueError:
        raise ConfigError(f"--padding {text!r}: expected N, HxW, L,R,T,B, same or valid") from None
    if len(vals) == 1:
        return vals[0]
    if len(vals) in (2, 4):
        return tuple(vals)
    raise ConfigError(f"--padding {text!r}: expected N, HxW, L,R,T,B, same or valid")


def _channels(text: str) -> tuple[int, int]:
    try:
        a, b = text.split(":")
        return int(a), int(b)
    except ValueError:
        raise ConfigError(f"--channels {text!r}: expected IN:OUT, e.g. 3:8") from None


def cmd_matrix(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..matrix.display import heatmap_png, spectrum_png
    from ..matrix.report import conv_layer_in_model, describe_conv

    from .._check import output_file

    # every picture path the user named is checked before any work: new, or an earlier `convscope matrix` picture
    for flag, path in (("--png", args.png), ("--svd-png", args.svd_png)):
        if path is not None:
            output_file(path, flag, "matrix")
    if args.run is not None and args.lipschitz:
        return _lipschitz(args)
    if args.run is not None:
        from ..training import load_run

        if not args.layer:
            raise ConfigError("give --layer NAME (a conv layer of the run) or --lipschitz")
        run = load_run(args.run)
        layer, in_shape = conv_layer_in_model(run.model, args.layer, run.input_shape)
        weight = layer.weight
        conv = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
                    padding_mode=layer.padding_mode)
        label, symbolic = f"{args.run}:{args.layer}", False
    else:
        if not args.input or not args.kernel:
            raise ConfigError("give --input HxW and --kernel KxK (or a RUN with --layer)")
        h, w = _hw(args.input, "--input")
        kh, kw = _hw(args.kernel, "--kernel")
        c_in, c_out = _channels(args.channels)
        if args.groups < 1 or c_in % args.groups:
            raise ConfigError(f"--groups {args.groups}: must divide the input channels {c_in}")
        in_shape = (c_in, h, w)
        weight = torch.from_numpy(np.random.default_rng(args.seed).standard_normal((c_out, c_in // args.groups, kh,
                                                                                    kw)))
        conv = dict(stride=_hw(args.stride, "--stride"), padding=_padding(args.padding),
                    dilation=_hw(args.dilation, "--dilation"), groups=args.groups, padding_mode=args.padding_mode)
        label, symbolic = f"{kh}x{kw} kernel on {c_in}x{h}x{w}", True
    res = describe_conv(weight, in_shape, **conv, label=label, symbolic=symbolic, spectrum=args.svd,
                        max_memory=int(args.max_memory * 2**30))
    info, geom, m = res.report, res.geometry, res.matrix
    rows, cols = info.shape
    spec = info.spectrum
    if spec is not None and spec.exact:
        info_png = args.svd_png or (args.png.with_name(args.png.stem + "-spectrum.png") if args.png else None)
        if info_png is None:  # beside the run's other inspection pictures, or in the working directory
            info_png = (args.run / "inspect" / f"matrix-{args.layer}-spectrum.png" if args.run is not None
                        else Path("conv-spectrum.png"))
        spectrum_png(spec.values, info_png, label, output="matrix")
        spectrum_file = str(info_png)
    if args.png:
        heatmap_png(m, args.png, f"{label}: {rows:,} x {cols:,}, {m.nnz:,} non-zeros", output="matrix")
        info.png = str(args.png)
    out = info.to_dict()
    if spec is not None and spec.exact:
        out["spectrum"]["png"] = spectrum_file
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0
    print(f"{label}: input {geom.input_shape} -> output {geom.output_shape}")
    print(f"matrix {rows:,} x {cols:,}, {m.nnz:,} non-zeros, density {info.density:.4g}")
    print(f"structure: {info.structure}")
    if res.symbolic_text is not None:
        print("\nrows = outputs, columns = inputs, both in (C, H, W) order" +
              ("" if geom.out_channels * geom.in_channels == 1 else "; wA.B:ij = weight[A-1, B-1, i-1, j-1]"))
        print(res.symbolic_text)
    elif symbolic:
        print("(too large to print; use --png or --json)")
    if spec is not None:
        print(f"\nsingular values ({spec.method}): largest {spec.largest:.6g}, smallest {spec.smallest:.6g}, "
              f"condition number {spec.condition_number:.6g}" if spec.exact else
              f"\nspectral norm in [{spec.lower:.6g}, {spec.upper:.6g}] ({spec.method})")
        if spec.exact:
            print(f"wrote {spectrum_file}")
    if args.png:
        print(f"wrote {args.png}")
    return 0


def _lipschitz(args) -> int:
    from ..matrix.spectrum import lipschitz_bound
    from ..training import load_run

    run = load_run(args.run)
    layers, total = lipschitz_bound(run.model.double(), run.input_shape)
    width = max(len(b.name) for b in layers)
    print(f"{'layer':<{width}}  {'type':<18} {'input':<14} {'lower':>10} {'upper':>10}")
    for b in layers:
        print(f"{b.name:<{width}}  {b.kind:<18} {'x'.join(map(str, b.input_shape)):<14} {b.lower:>10.4g} "
              f"{b.upper:>10.4g}")
    print(f"\nLipschitz upper bound of the network (L2, eval mode, product of layer bounds): {total:.6g}")
    print("(the normalization of the input adds a factor 1/min(std) per unit of pixel value)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("matrix", help="a conv layer as its explicit sparse matrix: print, draw, spectrum",
                       description="Convolution as a matrix on the unrolled input. Example: "
                                   "convscope matrix --input 4x4 --kernel 3x3")
    p.add_argument("run", nargs="?", type=Path, help="a run directory (with --layer or --lipschitz)")
    p.add_argument("--input", help="input size HxW, e.g. 4x4")
    p.add_argument("--kernel", help="kernel size KxK, e.g. 3x3")
    p.add_argument("--stride", default="1", help="N or HxW (default 1)")
    p.add_argument("--padding", default="0", help="N, HxW, L,R,T,B, same or valid (default 0)")
    p.add_argument("--dilation", default="1", help="N or HxW (default 1)")
    p.add_argument("--channels", default="1:1", help="IN:OUT channels (default 1:1)")
    p.add_argument("--groups", type=count(1), default=1)
    p.add_argument("--padding-mode", default="zeros", choices=["zeros", "circular", "reflect", "replicate"])
    p.add_argument("--seed", type=count(0), default=0, help="seed of the random weights used for numbers (default 0)")
    p.add_argument("--layer", help="with RUN: the conv layer's name (named_modules)")
    p.add_argument("--lipschitz", action="store_true", help="with RUN: every layer's norm interval and the bound")
    p.add_argument("--png", type=Path, help="write a heatmap of the matrix")
    p.add_argument("--svd", action="store_true", help="singular values: summary and a plot")
    p.add_argument("--svd-png", type=Path, help="where the spectrum plot goes (default beside --png)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--max-memory", type=number(positive=True), default=4.0,
                   help="refuse matrices needing more GiB (default 4)")
    add_threads(p)
    p.set_defaults(func=cmd_matrix, output_set=True)
