"""How fast the explicit conv matrix is built, and how much memory it takes, beside the usual alternatives.

    python bench/conv_matrix_build.py

Cases: the issue's 64 -> 64, 3 x 3 conv on 32 x 32 (padding 1; 36.2 M stored non-zeros, 37.7 M taps before
dropping those on the zero border), and a small 8 -> 8 conv on 16 x 16 where the alternatives are feasible:
  * dense Jacobian by autograd (torch.autograd.functional.jacobian, then scipy.sparse.csr_matrix of it),
  * conv applied to every basis vector in batches (the "identity trick": one column per input pixel),
  * a per-pixel Python loop (how snippets usually do it).
Peak memory: tracemalloc (Python and NumPy allocations) and the process's peak RSS growth.
Writes bench/results/conv_matrix_build.json.
"""

from __future__ import annotations

import json
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import scipy.sparse as sp
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import provenance  # noqa: E402

from convscope.conv import conv_matrix  # noqa: E402


def timed(fn, repeat=3):
    """(first call's seconds, best of the others, last result); results are dropped between calls."""
    times, out = [], None
    for _ in range(repeat):
        out = None
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return times[0], min(times[1:] or times), out


def peak_alloc(fn):
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def identity_trick(w, shape, batch=512):
    c, h, wd = shape
    n = c * h * wd
    cols = []
    with torch.no_grad():
        for i in range(0, n, batch):
            e = torch.zeros(min(batch, n - i), n, dtype=w.dtype)
            e[torch.arange(e.shape[0]), torch.arange(i, i + e.shape[0])] = 1
            cols.append(sp.csr_matrix(F.conv2d(e.reshape(-1, *shape), w, padding=1).reshape(e.shape[0], -1).numpy()))
    return sp.vstack(cols).T.tocsr()


def python_loop(w, shape):
    o, c, kh, kw = w.shape
    _, h, wd = shape
    rows, cols, vals = [], [], []
    wn = w.numpy()
    for oc in range(o):
        for y in range(h):
            for x in range(wd):
                r = (oc * h + y) * wd + x
                for ic in range(c):
                    for i in range(kh):
                        for j in range(kw):
                            yy, xx = y + i - 1, x + j - 1
                            if 0 <= yy < h and 0 <= xx < wd:
                                rows.append(r)
                                cols.append((ic * h + yy) * wd + xx)
                                vals.append(wn[oc, ic, i, j])
    return sp.csr_matrix((vals, (rows, cols)), shape=(o * h * wd, c * h * wd))


def main() -> None:
    torch.set_num_threads(2)
    results = {"benchmark": "conv_matrix_build", "provenance": provenance(), "cases": []}
    # the case
    w = torch.randn(64, 64, 3, 3)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cold, warm, m = timed(lambda: conv_matrix(w, (64, 32, 32), padding=1))
    rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) * 1024
    peak = peak_alloc(lambda: conv_matrix(w, (64, 32, 32), padding=1))
    stored = m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
    results["cases"].append({"case": "64->64, 3x3, 32x32, pad 1", "method": "convscope.conv_matrix",
                             "seconds_first_call": cold, "seconds_best_repeat": warm, "nnz": int(m.nnz),
                             "matrix_bytes": stored, "peak_traced_bytes": peak,
                             "peak_rss_growth_bytes": rss})
    print(results["cases"][-1], flush=True)
    # a small case where the alternatives run
    w = torch.randn(8, 8, 3, 3, dtype=torch.float64)
    shape = (8, 16, 16)
    ref = conv_matrix(w, shape, padding=1)
    methods = {
        "convscope.conv_matrix": lambda: conv_matrix(w, shape, padding=1),
        "autograd dense Jacobian": lambda: sp.csr_matrix(torch.autograd.functional.jacobian(
            lambda x: F.conv2d(x, w, padding=1), torch.zeros(1, *shape,
                                                             dtype=torch.float64)).reshape(ref.shape).numpy()),
        "conv on basis vectors": lambda: identity_trick(w, shape),
        "Python loop over pixels": lambda: python_loop(w, shape),
    }
    base = None
    for name, fn in methods.items():
        _, t, m = timed(fn, repeat=4 if name != "Python loop over pixels" else 1)
        assert abs(m - ref).max() < 1e-12, name
        base = base or t
        results["cases"].append({"case": "8->8, 3x3, 16x16, pad 1", "method": name, "seconds": t,
                                 "ratio_to_convscope": t / base, "peak_traced_bytes": peak_alloc(fn)})
        print(results["cases"][-1], flush=True)
    out = Path(__file__).parent / "results" / "conv_matrix_build.json"
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
