"""The conv-matrix tools: `matrix` CLI flags and conv_matrix / conv_operator / describe_conv / layer_spectrum."""

from __future__ import annotations

from pathlib import Path

from ._table import PRE_CORE, PRE_TOOLS, Table


def add_cases(t: Table) -> None:
    """Every case of this unit, in the table's order."""
    _matrix(t)
    _api_core(t)
    _api_tools(t)


def _matrix(t: Table) -> None:
    """`matrix` on impossible geometries, memory limits, runs and layers."""
    ws, timeout, cli, run = t.ws, t.timeout, t.cli, t.run
    cli("matrix", "matrix 4x4 3x3", ["matrix", "--input", "4x4", "--kernel", "3x3"], expect="ok")
    cli("matrix", "matrix --json", ["matrix", "--input", "5x5", "--kernel", "3x3", "--json", "--stride", "2",
                                    "--padding", "1"], expect="ok")
    for args_ in (["--input", "0x0", "--kernel", "3x3"], ["--input", "4x4", "--kernel", "5x5"],
                  ["--input", "4x4", "--kernel", "0x0"], ["--input", "4x4", "--kernel", "3x3", "--stride", "0"],
                  ["--input", "4x4", "--kernel", "3x3", "--padding", "-1"],
                  ["--input", "4x4", "--kernel", "3x3", "--dilation", "0"],
                  ["--input", "4x4", "--kernel", "3x3", "--channels", "0:1"],
                  ["--input", "4x4", "--kernel", "3x3", "--channels", "3:2", "--groups", "2"],
                  ["--input", "4x4", "--kernel", "3x3", "--groups", "0"],
                  ["--input", "4x4", "--kernel", "3x3", "--padding", "9", "--padding-mode", "reflect"],
                  ["--input", "abc", "--kernel", "3x3"], ["--input", "4x4", "--kernel", "3x3", "--padding", "bogus"],
                  ["--input", "100000x100000", "--kernel", "3x3"],
                  ["--input", "4x4", "--kernel", "3x3", "--max-memory", "nan"],
                  ["--input", "4x4", "--kernel", "3x3", "--max-memory", "inf"],
                  ["--input", "4x4", "--kernel", "3x3", "--max-memory", "-1"],
                  ["--input", "4x4", "--kernel", "3x3", "--max-memory", "0"],
                  ["--input", "64x64", "--kernel", "3x3", "--channels", "64:64", "--max-memory", "0.001"],
                  ["--input", "4x4", "--kernel", "3x3", "--png", "/proc/x.png"],
                  ["--input", "4x4", "--kernel", "3x3", "--seed", "-1"],
                  ["--input", "4x4"], ["--kernel", "3x3"], [],
                  ["--lipschitz"], [run, "--layer", "bogus"], [run, "--layer", "relu1"], [run, "--layer", "fc"],
                  [str(ws / "runs_bad" / "meta_shape_str"), "--layer", "conv1"]):
        cli("matrix", "matrix " + " ".join(Path(a).name if "/" in a else a for a in args_), ["matrix", *args_])
    cli("matrix", "matrix run --layer conv1", ["matrix", run, "--layer", "conv1"], expect="ok")
    cli("matrix", "matrix run --lipschitz", ["matrix", run, "--lipschitz"], expect="ok", timeout=max(timeout, 60))


def _api_core(t: Table) -> None:
    """The Python API: 'api' cases."""
    py = t.py
    pre = PRE_CORE
    api = {
        "conv_matrix(max_memory=nan)": "from convscope.matrix import conv_matrix; "
                                       "result = conv_matrix(np.ones((1,1,3,3)), (1,4,4), max_memory=float('nan'))",
        "conv_matrix(max_memory=inf)": "from convscope.matrix import conv_matrix; "
                                       "result = conv_matrix(np.ones((1,1,3,3)), (1,4,4), max_memory=float('inf'))",
        "conv_matrix(weight='w')": "from convscope.matrix import conv_matrix; result = conv_matrix('w', (1,4,4))",
        "conv_matrix(input_shape='1x4x4')": "from convscope.matrix import conv_matrix; "
                                            "result = conv_matrix(np.ones((1,1,3,3)), '1x4x4')",
        "conv_matrix(huge)": "from convscope.matrix import conv_matrix; "
                             "result = conv_matrix(np.ones((512,512,3,3)), (512,512,512))",
        "conv_operator(input_shape=0)": "from convscope.matrix import conv_operator; "
                                        "result = conv_operator(np.ones((1,1,3,3)), (1,0,0))",
    }
    for name, code in api.items():
        py("api", name, pre + code)
    py("api", "conv_matrix within max_memory (tracemalloc)", "import tracemalloc, numpy as np\n"
       "from convscope.matrix import conv_matrix\ntracemalloc.start()\n"
       "m = conv_matrix(np.ones((16,8,3,3), np.float32), (8,64,64), padding=1, max_memory=2**30/8)\n"
       "result = tracemalloc.get_traced_memory()[1] <= 2**30/8", expect="ok", check="true")


def _api_tools(t: Table) -> None:
    """The Python API: 'api2' cases."""
    py, slow = t.py, t.slow
    pre = PRE_TOOLS
    api = {
        "describe_conv(weight='w')": "result = describe_conv('w', (1, 4, 4))",
        "describe_conv(weight=list 2-D)": "result = describe_conv([[1, 2], [3, 4]], (1, 4, 4))",
        "describe_conv(nan weight)": "result = describe_conv(np.full((1, 1, 3, 3), np.nan), (1, 4, 4), "
                                     "spectrum=True).report",
        "describe_conv(input_shape='1x4x4')": "result = describe_conv(W, '1x4x4')",
        "describe_conv(stride=0)": "result = describe_conv(W, (1, 4, 4), stride=0)",
        "describe_conv(padding_mode='bogus')": "result = describe_conv(W, (1, 4, 4), padding_mode='bogus')",
        "describe_conv(max_memory=-1)": "result = describe_conv(W, (1, 4, 4), max_memory=-1)",
        "layer_spectrum(nan weight)": "result = layer_spectrum(np.full((1, 1, 3, 3), np.nan), (1, 4, 4))",
        "layer_spectrum(inf weight)": "result = layer_spectrum(np.full((1, 1, 3, 3), np.inf), (1, 4, 4))",
        "layer_spectrum(weight='w')": "result = layer_spectrum('w', (1, 4, 4))",
        "layer_spectrum(input_shape=(1,0,0))": "result = layer_spectrum(W, (1, 0, 0))",
        "layer_spectrum(dense_limit=-1)": "result = layer_spectrum(W, (1, 4, 4), dense_limit=-1).exact",
        "layer_spectrum(0 output channels)": "result = layer_spectrum(np.ones((0, 1, 3, 3)), (1, 4, 4))",
    }
    either = ('layer_spectrum(dense_limit=-1)',)
    for name, code in api.items():
        py("api2", name, pre + code, timeout=slow, check="either" if name in either else None)
    py("api2", "describe_conv/layer_spectrum sanity", pre + "r = describe_conv(W, (1, 4, 4), spectrum=True); "
       "s = layer_spectrum(torch.nn.Conv2d(1, 1, 3), (1, 4, 4)); result = tuple(r.report.shape) == (4, 16) and "
       "s.exact", expect="ok", check="true")
