"""Issue 28, the third attack's findings in commands and the Python API (half b), with cases of our own beyond
the ones reported: writer flags over files not theirs (attack3-cmd-replace), a module run twice per forward
(attack3-cmd-reused), tracebacks from run files, flags and indices (attack3-cmd-trace), unbounded API counts
(attack3-cmd-bounds), the model's dtype and complex output (attack3-cmd-dtype), flags silently ignored and
config-file wording (attack3-cmd-minor). Run them with ``--only attack3-cmd``."""

from __future__ import annotations

from pathlib import Path

from . import _table
from ._table import Table, _cli


def _refused(*words: str, keep: tuple[str, bytes | None] | None = None):
    """Exit 2 naming each of ``words`` (WS/ stands for the workspace); ``keep``: (path under _o, its bytes, or
    None for "as a copy of the run's file of that name") that must be unchanged afterwards, whatever the exit
    (a loss if not)."""
    if keep is None:
        return _table._refused(*words)

    def kept(ws):
        p = ws / "_o" / keep[0]
        want = keep[1] if keep[1] is not None else (ws / "run" / Path(keep[0]).name).read_bytes()
        return None if p.is_file() and p.read_bytes() == want else f"{keep[0]} was replaced or removed"
    return _table._refused(*words, holds=kept, holds_if_accepted=True)


def _api_refused(*words: str):
    def check(rc, out, err, ws):
        if rc == 0 and "REFUSED" in out:
            missing = [w for w in words if w not in out]
            return ("wrong result", f"refused without naming {missing[0]!r}: {out.strip()[-150:]}") if missing \
                else ("correct", "refused by a ConvscopeError naming the argument")
        return None
    return check


_MODEL_REUSED = ("from torch import nn\nclass Net(nn.Module):\n    # one pool module after both convs\n"
                 "    def __init__(self):\n        super().__init__()\n"
                 "        self.c1, self.c2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)\n"
                 "        self.pool = nn.MaxPool2d(2)\n        self.fc = nn.Linear(4 * 7 * 7, 10)\n"
                 "    def forward(self, x):\n        x = self.pool(self.c1(x).relu())\n"
                 "        x = self.pool(self.c2(x).relu())\n        return self.fc(x.flatten(1))\n")
_MODEL_HALF_BUFFER_FIRST = ("import torch\nfrom torch import nn\nclass Net(nn.Module):\n"
                            "    def __init__(self):\n        super().__init__()\n"
                            "        self.scale = nn.Parameter(torch.ones(1, dtype=torch.bfloat16))\n"
                            "        self.conv = nn.Conv2d(1, 4, 5)\n        self.fc = nn.Linear(4 * 24 * 24, 10)\n"
                            "    def forward(self, x):\n"
                            "        return self.fc(self.conv(x).flatten(1)) * self.scale.float()\n")
_MODEL_COMPLEX = ("import torch\nfrom torch import nn\nclass Net(nn.Module):\n    def __init__(self):\n"
                  "        super().__init__()\n        self.conv = nn.Conv2d(1, 2, 3)\n"
                  "    def forward(self, x):\n        y = self.conv(x).mean((2, 3))\n"
                  "        return torch.view_as_complex(y.contiguous()).unsqueeze(1).expand(-1, 10)\n")

CHECKS = {
    "a3b:model-json": _refused("--png: WS/_o/a3b-run/model.json exists and is not", keep=("a3b-run/model.json", None)),
    "a3b:config-json": _refused("--out: WS/_o/a3b-run/config.json exists and is not",
                                keep=("a3b-run/config.json", None)),
    "a3b:svd-user": _refused("--svd-png: WS/_o/a3b-user.png exists and is not a picture an earlier `convscope "
                             "matrix` wrote", keep=("a3b-user.png", b"\x89PNG user's own")),
    "a3b:lr-json": _refused("the JSON of an earlier lr-find sweep", keep=("a3b-lr.json", b'{"notes": 1}')),
    "a3b:onnx-user": _refused("exists and is not an ONNX file an earlier convscope export wrote",
                              keep=("a3b-theirs.onnx", b"\x08\x07theirs")),
    "a3b:reused": _refused("layer 'pool' runs more than once in one forward pass"),
    "a3b:tb-dict": _refused("has 'test_accuracy' = {\"a\": 1}; expected a number or null"),
    "a3b:features-flat": _refused("--layers flatten: no feature maps there"),
    "a3b:subset": _api_refused("indices: -1000000 is outside"),
    "a3b:bins": _api_refused("bins: must be [1, 10000]"),
    "a3b:keep": _api_refused("keep: must be [0, 1000]"),
    "a3b:complex": _refused("its output is a complex tensor"),
    "a3b:explain-layer": _refused("--layer: only gradcam and guided_gradcam run at a layer"),
    "a3b:model-args-file": _refused("a3b-extra.json: model_args: fast2: extra must lie in 0..3"),
}


def add_cases(t: Table) -> None:
    """Every case of this unit, in the table's order."""
    run, out, slow = t.run, t.out, t.slow
    copy = f"import shutil\nshutil.copytree({run!r}, {out + '/a3b-run'!r}, dirs_exist_ok=True)\n"
    # -- attack3-cmd-replace: every writer flag goes through the one guard (a copy of the run: nothing shared lost)
    t.py("attack3-cmd-replace", "matrix --png RUN/model.json", copy + _cli(
        ["matrix", "--input", "5x5", "--kernel", "2x2", "--png", f"{out}/a3b-run/model.json"]), check="a3b:model-json")
    t.py("attack3-cmd-replace", "data show --out RUN/config.json", copy + _cli(
        ["data", "show", "digits", "--out", f"{out}/a3b-run/config.json"]), check="a3b:config-json", timeout=slow)
    t.py("attack3-cmd-replace", "matrix --svd-png over the user's own PNG",
         f"open({out + '/a3b-user.png'!r}, 'wb').write(b\"\\x89PNG user's own\")\n" + _cli(
             ["matrix", "--input", "4x4", "--kernel", "3x3", "--svd", "--svd-png", f"{out}/a3b-user.png"]),
         check="a3b:svd-user")
    t.py("attack3-cmd-replace", "lr-find --out x.png beside the user's x.json",
         f"open({out + '/a3b-lr.json'!r}, 'w').write('{{\"notes\": 1}}')\n" + _cli(
             ["lr-find", "--steps", "5", "--out", f"{out}/a3b-lr.png"]), check="a3b:lr-json", timeout=slow)
    t.py("attack3-cmd-replace", "export --onnx over an ONNX file not ours",
         f"open({out + '/a3b-theirs.onnx'!r}, 'wb').write(b'\\x08\\x07theirs')\n" + _cli(
             ["export", run, "--onnx", f"{out}/a3b-theirs.onnx", "--no-check"]), check="a3b:onnx-user", timeout=slow)
    twice = _cli(["matrix", "--input", "4x4", "--kernel", "3x3", "--png", f"{out}/a3b-own.png"])
    t.py("attack3-cmd-replace", "matrix --png twice (its own earlier picture is replaced)",
         twice.replace("if rc:", "rc = rc or main(sys.argv[:0] + " + repr(["matrix", "--input", "4x4", "--kernel",
                                                                          "2x2", "--png", f"{out}/a3b-own.png"])
                       + ")\nif rc:"), expect="ok")
    # -- attack3-cmd-reused: one MaxPool2d after both convs
    mf = f"{out}/a3b-reused.py"
    write = f"open({mf!r}, 'w').write({_MODEL_REUSED!r})\n"
    for argv in (["topk", "--model-file", f"{mf}:Net", "--layer", "pool", "--limit", "20"],
                 ["sparsity", "--model-file", f"{mf}:Net", "--layers", "pool", "--limit", "20"]):
        t.py("attack3-cmd-reused", f"{argv[0]} of a module run twice per forward",
             write + _cli([*argv, "--out", f"{out}/a3b-reused-{argv[0]}"]), check="a3b:reused", timeout=slow)
    t.py("attack3-cmd-reused", "layers of a model with a module run twice (listed with its calls)",
         write + _cli(["layers", "--model-file", f"{mf}:Net"]), expect="ok", timeout=slow)
    # -- attack3-cmd-trace
    t.py("attack3-cmd-trace", "tensorboard on an epoch record with test_accuracy {\"a\": 1}",
         f"import shutil\nshutil.copytree({run!r}, {out + '/a3b-tb'!r})\n"
         f"open({out + '/a3b-tb/metrics.jsonl'!r}, 'a').write('{{\"kind\": \"epoch\", \"step\": 9, "
         "\"test_accuracy\": {\"a\": 1}}\\n')\n" + _cli(["tensorboard", "--force", f"{out}/a3b-tb"]),
         check="a3b:tb-dict", timeout=slow)
    t.cli("attack3-cmd-trace", "features --layers flatten (no feature maps)",
          ["features", run, "--layers", "flatten", "--out", f"{out}/a3b-feat"], check="a3b:features-flat", timeout=slow)
    t.py("attack3-cmd-trace", "ImageDataset.subset([-10**6])",
         "from convscope.data import load\nfrom convscope.errors import ConvscopeError\nds = load('digits', "
         "'test')\ntry:\n    ds.subset([-10**6])\nexcept ConvscopeError as e:\n    print('REFUSED', e)\n",
         check="a3b:subset", timeout=slow)
    # -- attack3-cmd-bounds
    t.py("attack3-cmd-bounds", "activation_sparsity(bins=10001)",
         "import torch\nfrom convscope.errors import ConvscopeError\nfrom convscope.inspect import "
         f"activation_sparsity\nfrom convscope.training import load_run\nr = load_run({run!r})\n"
         "from convscope.data import load\nds = load('digits', 'test').subset(range(8))\ntry:\n"
         "    activation_sparsity(r.model, ds, r.normalization, bins=10001)\nexcept ConvscopeError as e:\n"
         "    print('REFUSED', e)\n", check="a3b:bins", timeout=slow)
    t.py("attack3-cmd-bounds", "edge_experiment(keep=10**9)",
         "import numpy as np\nfrom convscope.errors import ConvscopeError\nfrom convscope.inspect.edges import "
         "edge_experiment\ntry:\n    edge_experiment(np.zeros((2, 8, 8), np.uint8), keep=10**9)\n"
         "except ConvscopeError as e:\n    print('REFUSED', e)\n", check="a3b:keep")
    # -- attack3-cmd-dtype
    half = f"{out}/a3b-bf16first.py"
    t.py("attack3-cmd-dtype", "layers of a float32 model whose first parameter is a bf16 scale",
         f"open({half!r}, 'w').write({_MODEL_HALF_BUFFER_FIRST!r})\n"
         + _cli(["layers", "--model-file", f"{half}:Net"]), expect="ok", timeout=slow)
    cx = f"{out}/a3b-complex.py"
    t.py("attack3-cmd-dtype", "layers --model-file of a model with complex output",
         f"open({cx!r}, 'w').write({_MODEL_COMPLEX!r})\n" + _cli(["layers", "--model-file", f"{cx}:Net"]),
         check="a3b:complex", timeout=slow)
    # -- attack3-cmd-minor
    t.cli("attack3-cmd-minor", "explain --method occlusion --layer conv1",
          ["explain", run, "--method", "occlusion", "--layer", "conv1", "--out", f"{out}/a3b-ex"],
          check="a3b:explain-layer", timeout=slow)
    cfg = f"{t.configs}/a3b-extra.json"
    t.py("attack3-cmd-minor", "train --config (model_args extra 9, with a BOM)",
         f"open({cfg!r}, 'wb').write(b'\\xef\\xbb\\xbf{{\"model\": \"fast2\", \"model_args\": {{\"extra\": 9}}, "
         "\"epochs\": 1, \"train_subset\": 64}')\n" + _cli(["train", "--config", cfg, "--out", f"{out}/a3b-train"]),
         check="a3b:model-args-file", timeout=slow)
