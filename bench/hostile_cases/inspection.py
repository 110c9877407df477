"""The inspection commands (layers, sparsity, topk, features, filters, rf, edges) and their Python API."""

from __future__ import annotations

import json
from pathlib import Path

from ._table import PRE_CORE, PRE_TOOLS, Table, _json_at


def _topk_records(k):
    def check(rc, out, err, ws):
        if rc != 0:
            return None
        files = sorted((ws / "_o").rglob("topk-*.json"))
        if not files:
            return "wrong result", "no topk JSON written"
        data = json.loads(files[-1].read_text())
        if any(len(ch) != k for ch in data["channels"]):
            return "wrong result", f"records per channel {len(data['channels'][0])}, asked {k}"
        return "correct", ""
    return check


def _npy_pwned(rc, out, err, ws):
    if (ws / "pwned_npy.txt").exists():
        (ws / "pwned_npy.txt").unlink()
        return "loss", "a .npy kernel was unpickled: its payload ran"
    return None


CHECKS = {
    "topk3": _topk_records(3),
    "topk1": _topk_records(1),
    "npy_pwned": _npy_pwned,
    "edges [[1,-1]]": _json_at("edg-ok/edges-kernel1x2-*.json",
                               lambda d: d["kernel"] == [[1, -1]] and d["exact"] and d["images"] == 20, "exact"),
    "edges ok.npy": _json_at("edg-npy/edges-kernel3x3-*.json",
                             lambda d: d["kernel"] == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], "sobel-x"),
    # a positive 1x1 kernel keeps every non-zero pixel non-zero
    "edges identity": _json_at("edg-id*/edges-kernel1x1-*.json",
                               lambda d: d["filtered_nonzero"]["mean"] == d["input_nonzero"]["mean"]
                               and d["after_relu_nonzero"]["mean"] == d["input_nonzero"]["mean"],
                               "non-zero pixels kept by a positive 1x1 kernel"),
}


def add_cases(t: Table) -> None:
    """Every case of this unit, in the table's order."""
    _inspect(t)
    _kernel(t)
    _layerarg(t)
    _api_core(t)
    _api_tools(t)


def _inspect(t: Table) -> None:
    """Every inspection command on good and bad targets (runs, model files, weights), flags."""
    ws, timeout, cli, out, run, F, D, im = t.ws, t.timeout, t.cli, t.out, t.run, t.folders, t.data, t.images
    C = t.configs
    mf = str(ws / "models.py")
    targets = {"run": [run], "model-file Good": ["--model-file", f"{mf}:Good", "--weights", ws / "good.safetensors"],
               "model-file NoParams": ["--model-file", f"{mf}:NoParams", "--input-shape", "1x28x28"]}
    bad_targets = {"model-file Broken": ["--model-file", f"{mf}:Broken"],
                   "model-file NotModule": ["--model-file", f"{mf}:NotModule"],
                   "model-file Missing": ["--model-file", f"{mf}:Missing"],
                   "model-file no class": ["--model-file", mf],
                   "model-file nonexistent": ["--model-file", "/nonexistent.py:Good"],
                   "model-file FIFO": ["--model-file", f"{C / 'fifo.yaml'}:Good"],
                   "weights pickle": ["--model-file", f"{mf}:Good", "--weights", ws / "w.pt"],
                   "weights garbage": ["--model-file", f"{mf}:Good", "--weights", ws / "garbage.safetensors"],
                   "weights FIFO": ["--model-file", f"{mf}:Good", "--weights", ws / "fifo.safetensors"],
                   "weights wrong keys": ["--model-file", f"{mf}:Good", "--weights", ws / "wrongkeys.safetensors"],
                   "input-shape 0x0x0": ["--model-file", f"{mf}:Good", "--input-shape", "0x0x0"],
                   "input-shape abc": ["--model-file", f"{mf}:Good", "--input-shape", "abc"],
                   "input-shape 3x28x28": ["--model-file", f"{mf}:Good", "--input-shape", "3x28x28"],
                   "mean nan": ["--model-file", f"{mf}:Good", "--mean", "nan"],
                   "std 0": ["--model-file", f"{mf}:Good", "--std", "0"],
                   "std -1": ["--model-file", f"{mf}:Good", "--std", "-1"],
                   "run missing": ["/nonexistent-run"]}
    lim = ["--limit", "40"]
    cmds = {"layers": [], "sparsity": lim, "topk": lim + ["--layer", "relu1", "--k", "3"],
            "features": ["--index", "0"], "filters": [], "rf": []}
    for cmd, extra in cmds.items():
        for tname, targ in targets.items():
            if tname == "model-file NoParams":   # a parameter-free model file: a result or the documented refusal
                cli("inspect", f"{cmd} {tname}", [cmd, *targ, *extra, "--out", out], check="either")
                continue
            cli("inspect", f"{cmd} {tname}", [cmd, *targ, *extra, "--out", out], expect="ok",
                check="topk3" if cmd == "topk" else None)
        for tname, targ in bad_targets.items():
            cli("inspect", f"{cmd} {tname}", [cmd, *targ, *extra, "--out", out])
    flagcases = {
        "sparsity": [("--limit", "-1"), ("--limit", "abc"), ("--threshold", "nan"), ("--threshold", "-1"),
                     ("--threshold", "inf"), ("--layers", "bogus"), ("--layers", ","), ("--layers", "relu1,bogus"),
                     ("--split", "valid"), ("--dataset", "imagenet")],
        "topk": [("--k", "0"), ("--k", "-3"), ("--k", "abc"), ("--channels", "0"),
                 ("--channels", "-1"), ("--show", "-1"), ("--limit", "-5"), ("--layer", "bogus"), ("--layer", ""),
                 ("--split", "valid")],
        "features": [("--index", "-1"), ("--index", "1000000"), ("--channels", "0"), ("--channels", "-4"),
                     ("--layers", "bogus"), ("--limit", "-1")],
        "filters": [("--layer", "bogus"), ("--layer", "relu1"), ("--layer", "fc")],
    }
    for cmd, flags in flagcases.items():
        for flag, val in flags:
            argv = [cmd, run, "--out", out, "--limit", "40"]
            if cmd == "topk" and flag != "--layer":
                argv += ["--layer", "relu1"]
            cli("inspect", f"{cmd} {flag} {val}", [*argv, flag, val])
    cli("inspect", "topk --k 1000000000 (more than the images: all of them)", ["topk", run, "--out", out, "--limit",
                                                                               "40", "--layer", "relu1", "--k",
                                                                               "1000000000"], expect="ok")
    cli("inspect", "topk --k 1", ["topk", run, "--out", out, "--limit", "40", "--layer", "relu1", "--k", "1"],
        expect="ok", check="topk1")
    cli("inspect", "topk --layer ReLU (a type)", ["topk", run, "--out", out, "--limit", "40", "--layer", "ReLU"],
        expect="ok", timeout=max(timeout, 120))  # three layers of pictures: slow on a busy machine, not a hang
    for cmd in ("sparsity", "topk", "features"):
        argv = [cmd, run, "--out", out, "--limit", "40"] + (["--layer", "relu1"] if cmd == "topk" else [])
        for name in ("one", "mixed", "fifo", "bomb", "devzero", "outside", "rgb", "empty"):
            cli("inspect", f"{cmd} --dataset folder:{name}", [*argv, "--dataset", f"folder:{F / name}", "--split",
                                                              "all"], expect="ok" if name == "one" else "error")
        cli("inspect", f"{cmd} --dataset folder:mixed --size 0x0",
            [*argv, "--dataset", f"folder:{F / 'mixed'}", "--resize", "fit", "--size", "0x0", "--split", "all"])
        for sub in ("bomb", "devzero", "fifo", "trunc"):
            cli("inspect", f"{cmd} mnist --data-dir {sub}", [*argv, "--dataset", "mnist", "--data-dir", D / sub,
                                                             "--no-download"])
        cli("inspect", f"{cmd} --out /proc", [cmd, run, "--out", "/proc/forbidden", "--limit", "40"]
            + (["--layer", "relu1"] if cmd == "topk" else []))
        cli("inspect", f"{cmd} --out is a file", [cmd, run, "--out", im / "ok.png", "--limit", "40"]
            + (["--layer", "relu1"] if cmd == "topk" else []))
    for flag, val in (("--limit", "-1"), ("--filter", "bogus"), ("--dataset", f"folder:{F / 'one'}"),
                      ("--dataset", f"folder:{F / 'fifo'}"), ("--split", "valid")):
        cli("inspect", f"edges {flag} {Path(val).name}", ["edges", "--out", out, flag, val],
            expect="ok" if val.endswith("/one") else "error")  # inspecting one class is fine
    cli("inspect", "edges (sanity)", ["edges", "--out", out, "--limit", "50"], expect="ok")


def _kernel(t: Table) -> None:
    """`edges --kernel`: JSON texts and .npy files (pickles, lies, FIFOs...)."""
    cli, out, K, stuck = t.cli, t.out, t.kernels, t.stuck
    edg = ["edges", "--out", out, "--limit", "20"]
    for text in ("[]", "[[]]", "[[1, 2], [3]]", '[["a"]]', "[[NaN]]", "[[Infinity]]", "[[1e999]]", "[[true]]",
                 '{"a": 1}', "5", "[1, 2, 3]", "[[[1]]]", "[[1, 2], 3]", "sobel", "", "[[1," + "0," * 50_000 + "1]]"):
        cli("kernel", f"edges --kernel {text[:40]!r}", [*edg, "--kernel", text])
    for name in ("pickle.npy", "pickle.bin", "3d.npy", "0x0.npy", "nan.npy", "inf.npy", "bool.npy", "complex.npy",
                 "structured.npy", "scalar.npy", "huge.npy", "header_lie.npy", "text.npy", "empty.npy", "fifo.npy",
                 "devzero.npy", "dir.npy", "missing.npy"):
        cli("kernel", f"edges --kernel {name}", [*edg, "--kernel", K / name], timeout=stuck,
            check="npy_pwned" if name.startswith("pickle") else None)
    cli("kernel", "edges --kernel kernel.json (a JSON file)", [*edg, "--kernel", K / "kernel.json"], check="either")
    cli("kernel", "edges --kernel --tolerance nan", [*edg, "--kernel", "[[0.5, -0.5]]", "--tolerance", "nan"])
    cli("kernel", "edges --kernel [[1,-1]] (sanity)", ["edges", "--out", f"{out}/edg-ok", "--limit", "20",
                                                       "--kernel", "[[1, -1]]"], expect="ok", check="edges [[1,-1]]")
    cli("kernel", "edges --kernel ok.npy (sanity)", ["edges", "--out", f"{out}/edg-npy", "--limit", "20",
                                                     "--kernel", K / "ok.npy"], expect="ok", check="edges ok.npy")
    for i, text in enumerate(("[[2]]", "[[1e308]]", "[[1e-320]]")):
        cli("kernel", f"edges --kernel {text} (positive 1x1: keeps every non-zero pixel)",
            ["edges", "--out", f"{out}/edg-id{i}", "--limit", "20", "--kernel", text], expect="ok",
            check="edges identity")


def _layerarg(t: Table) -> None:
    """Layer-name arguments across commands (--layer / --layers: empty, types, 0.1 names)."""
    cli, out, run, slow = t.cli, t.out, t.run, t.slow
    lim = ["--out", out, "--limit", "40"]
    for cmd, flag, val, exp in (("topk", "--layer", "relu1,,relu2", "either"), ("topk", "--layer", " ", "error"),
                                ("topk", "--layer", ",", "error"), ("topk", "--layer", "3", "hint"),
                                ("sparsity", "--layers", " ", "error"), ("sparsity", "--layers", "4", "hint"),
                                ("features", "--layers", ",", "error"),
                                ("features", "--layers", "ReLU,relu1", "either"),
                                ("filters", "--layer", " ", "error"), ("filters", "--layer", "ReLU", "error"),
                                ("filters", "--layer", "Conv2d", "ok"), ("filters", "--layer", "0", "hint"),
                                ("matrix", "--layer", " ", "error"), ("matrix", "--layer", "Conv2d", "error"),
                                ("matrix", "--layer", "0", "hint")):
        argv = [cmd, run, flag, val] + {"matrix": [], "filters": ["--out", out]}.get(cmd, lim) \
            + (["--k", "2"] if cmd == "topk" else [])
        cli("layerarg", f"{cmd} {flag} {val!r}", argv, expect="ok" if exp == "ok" else "error",
            check=None if exp in ("ok", "error") else exp, timeout=slow)


def _api_core(t: Table) -> None:
    """The Python API: 'api' cases."""
    py = t.py
    pre = PRE_CORE
    api = {
        "topk(tensor)": "result = topk(run, ds.images, ['relu1'])",
        "topk(float tensor 0..1)": "result = topk(run, ds.images.float() / 255, ['relu1'])",
        "topk(numpy array)": "result = topk(run, ds.images.numpy(), ['relu1'])",
        "topk(k=0)": "result = topk(run, ds, ['relu1'], k=0)",
        "topk(k=-3)": "result = topk(run, ds, ['relu1'], k=-3)",
        "topk(k=2.5)": "result = topk(run, ds, ['relu1'], k=2.5)",
        "topk(batch_size=0)": "result = topk(run, ds, ['relu1'], batch_size=0)",
        "topk(layers=[])": "result = topk(run, ds, [])",
        "topk(layers=5)": "result = topk(run, ds, 5)",
        "topk(norm='x')": "result = topk(run.model, ds, ['relu1'], norm='x')",
        "topk(model=None)": "result = topk(None, ds, ['relu1'])",
        "topk(empty dataset)": "result = topk(run, ds.subset(np.arange(0)), ['relu1'])",
        "topk(cifar-shaped)": "result = topk(run, ImageDataset(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), "
                              "torch.zeros(4, dtype=torch.int64), ('a',), 'x', 'test', 'mem'), ['relu1'])",
        "sparsity(tensor)": "result = activation_sparsity(run.model, ds.images, run.normalization)",
        "sparsity(list)": "result = activation_sparsity(run.model, [1, 2], run.normalization)",
        "sparsity(norm=None)": "result = activation_sparsity(run.model, ds, None)",
        "sparsity(threshold=nan)": "result = activation_sparsity(run.model, ds, run.normalization, "
                                   "threshold=float('nan'))",
        "sparsity(bins=0)": "result = activation_sparsity(run.model, ds, run.normalization, bins=0)",
        "sparsity(hist_range=(1,0))": "result = activation_sparsity(run.model, ds, run.normalization, hist_range=(1, "
                                      "0))",
        "edges(float tensor)": "from convscope.inspect import edge_experiment; "
                               "result = edge_experiment(ds.images.float() / 255)",
        "receptive_fields(int shape)": "from convscope.inspect import receptive_fields; "
                                       "result = receptive_fields(run.model, 28)",
        "list_layers(bad shape)": "from convscope.inspect import list_layers; result = list_layers(run.model, (0, 0))",
        "target.from_model_file(NoParams)": "from convscope.inspect import from_model_file; "
                                            "result = from_model_file(str(WS/'models.py') + ':NoParams', None, (1, "
                                            "28, 28), 'digits', "
                                            "WS/'_o').model",
    }
    either = ('edges(float tensor)', 'target.from_model_file(NoParams)')
    for name, code in api.items():
        py("api", name, pre + code, check="either" if name in either else None)
    py("api", "edges(uint8 tensor)", pre + "from convscope.inspect import edge_experiment; "
       "result = edge_experiment(ds.images)", expect="ok")
    py("api", "topk(layers='relu1') string is a name", pre + "r = topk(run, ds, 'relu1', k=2); "
       "result = list(r) == ['relu1'] and all(len(c) == 2 for c in r['relu1'])", expect="ok", check="true")
    py("api", "hooks removed after errors", pre + "import contextlib\nfor bad in (0, -1):\n"
       "    with contextlib.suppress(Exception): topk(run, ds, ['relu1'], k=bad)\n"
       "result = hook_count(run.model) == 0", expect="ok", check="true")
    py("api", "topk on a model without parameters", pre + "m = torch.nn.Sequential(torch.nn.ReLU()); "
       "result = len(topk(m, ds, ['0'], k=2)['0']) == 1", expect="ok", check="true")


def _api_tools(t: Table) -> None:
    """The Python API: 'api2' cases."""
    py, slow = t.py, t.slow
    pre = PRE_TOOLS
    api = {
        "receptive_field_report(numpy model)": "result = receptive_field_report(np.zeros(3), S)",
        "receptive_field_report(shape=28)": "result = receptive_field_report(run.model, 28)",
        "receptive_field_report(shape='1x28x28')": "result = receptive_field_report(run.model, '1x28x28')",
        "receptive_field_report(shape=(1,0,0))": "result = receptive_field_report(run.model, (1, 0, 0))",
        "receptive_field_report(shape=(3,28,28))": "result = receptive_field_report(run.model, (3, 28, 28))",
        "receptive_field_report(shape=(1,4,4))": "result = receptive_field_report(run.model, (1, 4, 4))",
    }
    for name, code in api.items():
        py("api2", name, pre + code, timeout=slow)
    py("api2", "receptive_field_report sanity", pre + "r = receptive_field_report(run.model, S); "
       "result = [row.layer for row in r.rows][:2] == [n for n, m in run.model.named_modules() if n and not "
       "list(m.children())][:2]", expect="ok", check="true")
