"""Issue #28, classes 2, 3, 7, 8 (wave 3): user models off the output contract through every command that takes
one, non-finite values, Python-API arguments that used to end in a torch traceback, and upper bounds on work.
The user models are written by each case into the workspace's output folder (no change to the workspace)."""

from __future__ import annotations

from ._table import PRE_TOOLS, Table

# A module of user models, each breaking the contract one way (Good keeps it: the control).
_MODELS = '''
import torch
from torch import nn
class Base(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4, 10)
    def scores(self, x):
        return self.fc(torch.relu(self.conv1(x)).mean((2, 3)))
class Good(Base):
    def forward(self, x): return self.scores(x)
class OneD(Base):
    def forward(self, x): return self.scores(x)[:, 0]
class Indices(Base):
    def forward(self, x): return self.scores(x).argmax(1, keepdim=True)
class FeatureMap(Base):
    def forward(self, x): return self.conv1(x)
class Pair(Base):
    def forward(self, x): return self.scores(x), x
class ThreeClasses(Base):
    def forward(self, x): return self.scores(x)[:, :3]
class Exits(Base):
    def forward(self, x): raise SystemExit(0)
class NeedsWidth(Base):
    def __init__(self, width):
        super().__init__()
class NaNScores(Base):
    def forward(self, x): return self.scores(x) * float("nan")
class InfScores(Base):
    def forward(self, x): return self.scores(x) / 0.0
'''

_WRITE = (f"import pathlib\np = WS / '_o' / 'h28b_models.py'\np.parent.mkdir(exist_ok=True)\n"
          f"p.write_text({_MODELS!r})\nM = str(p)\n")


def add_cases(t: Table) -> None:
    """Every case of this unit, in the table's order."""
    _contract(t)
    _api(t)


def _cmd(t: Table, cid: str, argv_code: str, expect: str = "error", timeout: float | None = None) -> None:
    """A case running the CLI in-process on the models file: ``argv_code`` is a Python list expression (M: the
    file, O: an output folder, IMG: an image file)."""
    code = (_WRITE + "O = str(WS / '_o' / 'h28b')\nIMG = str(WS / 'images' / 'ok.png')\n"
            f"argv = {argv_code}\nfrom convscope.cli import main\nrc = main(argv)\nif rc:\n    raise SystemExit(rc)\n")
    t.py("contract", cid, code, expect=expect, timeout=timeout or t.slow)


def _contract(t: Table) -> None:
    """Class 2/3/8 through the CLI: each off-contract model on each command that takes --model-file."""
    shape = "'--input-shape', '1x28x28'"
    commands = {
        "layers": "['layers', '--model-file', M + ':{c}', " + shape + "]",
        "explain": "['explain', '--model-file', M + ':{c}', " + shape + ", '--out', O, IMG]",
        "visualize": "['visualize', '--model-file', M + ':{c}', " + shape + ", '--out', O, '--steps', '2']",
        "topk": "['topk', '--model-file', M + ':{c}', " + shape + ", '--out', O, '--limit', '20']",
        "sparsity": "['sparsity', '--model-file', M + ':{c}', " + shape + ", '--limit', '20']",
        "project": "['project', '--model-file', M + ':{c}', " + shape + ", '--out', O, '--limit', '20', "
                   "'--layer', 'conv1']",
    }
    for command, argv in commands.items():
        for cls in ("OneD", "Indices", "FeatureMap", "Pair", "NeedsWidth", "Exits"):
            _cmd(t, f"{command} --model-file {cls}", argv.format(c=cls))
    _cmd(t, "explain --model-file NaNScores", commands["explain"].format(c="NaNScores"))
    _cmd(t, "explain --model-file InfScores", commands["explain"].format(c="InfScores"))
    _cmd(t, "explain --model-file Good", commands["explain"].format(c="Good"), expect="ok")
    _cmd(t, "layers --model-file Good", commands["layers"].format(c="Good"), expect="ok")
    _cmd(t, "visualize --steps 1e9", commands["visualize"].format(c="Good").replace("'2'", "'1000000000'"))
    _cmd(t, "project --k 1e9", commands["project"].format(c="Good")[:-1] + ", '--k', '1000000000']")
    _cmd(t, "topk --k 1e9", commands["topk"].format(c="Good")[:-1] + ", '--k', '1000000000']")


def _api(t: Table) -> None:
    """Class 3/7/8 at the Python API."""
    pre = PRE_TOOLS + "from convscope.errors import ConfigError\n"
    refused = {
        "Normalization(std=0)": "result = Normalization((0.5,), (0.0,))",
        "Normalization(std=-1)": "result = Normalization((0.5,), (-1.0,))",
        "Normalization(std=nan)": "result = Normalization((0.5,), (float('nan'),))",
        "Normalization(mean/std lengths)": "result = Normalization((0.1, 0.2, 0.3), (1.0,))",
        "conv_matrix(complex)": "from convscope.conv.conv_matrix import conv_matrix; "
                                "result = conv_matrix(torch.ones(1,1,3,3, dtype=torch.complex64), (1,4,4))",
        "conv_matrix(bool)": "from convscope.conv.conv_matrix import conv_matrix; "
                             "result = conv_matrix(torch.ones(1,1,3,3, dtype=torch.bool), (1,4,4))",
        "conv_matrix(nan)": "from convscope.conv.conv_matrix import conv_matrix; "
                            "result = conv_matrix(torch.full((1,1,3,3), float('nan')), (1,4,4))",
        "edges(kernel 1e308)": "from convscope.inspect.edges import edge_experiment; "
                               "result = edge_experiment(ds.images[:4], kernel=[[1e308, 1e308], [1e308, 1e308]])",
        "logits(int64)": "result = run.logits(torch.zeros(2, 1, 28, 28, dtype=torch.int64))",
        "logits(meta)": "result = run.logits(torch.zeros(2, 1, 28, 28, device='meta'))",
        "load_run(map_location=tpu)": "result = convscope.load_run(WS/'run', map_location='tpu')",
        "load_run(map_location=meta)": "result = convscope.load_run(WS/'run', map_location='meta')",
        "preprocess(RGB for 1 channel)": "result = run.preprocess(torch.zeros(2, 3, 28, 28, dtype=torch.uint8))",
        "objective * nan": "from convscope.inspect.objectives import channel; "
                           "result = channel('conv1', 0) * float('nan')",
        "VisualizeConfig(steps=1e9)": "from convscope.configs import VisualizeConfig; "
                                      "result = VisualizeConfig(steps=10**9)",
        "RefineConfig(k=1e9)": "result = RefineConfig(k=10**9)",
        "topk(k=1e9)": "result = topk(run.model, ds, ['conv1'], k=10**9)",
    }
    pre_core = pre + "from convscope.data import Normalization\nfrom convscope.inspect import topk\n"
    for cid, code in refused.items():
        t.py("api28", cid, pre_core + code)
    # a TypeError is Python's own answer to unsupported operands: the case passes when that is what is raised
    t.py("api28", "objective + 'x'", pre + "from convscope.inspect.objectives import channel\ntry:\n"
         "    channel('conv1', 0) + 'x'\n    print('RESULT: False')\nexcept TypeError as e:\n"
         "    print('RESULT:', 'unsupported operand' in str(e))\n", expect="ok", check="true")
    t.py("api28", "attribute(float64) equals float32", pre +
         "a = attribute(run.model, x, 'saliency', 0)\nb = attribute(run.model, x.double(), 'saliency', 0)\n"
         "a = getattr(a, 'maps', a); b = getattr(b, 'maps', b)\n"
         "print('RESULT:', bool(torch.allclose(torch.as_tensor(a).float(), torch.as_tensor(b).float(), atol=1e-5)))\n",
         expect="ok", check="true")
