import os
import signal

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own empty user cache, so nothing reads or writes ~/.cache/convscope."""
    monkeypatch.setenv("CONVSCOPE_DATA", str(tmp_path_factory.mktemp("cache")))
    yield


def pytest_configure(config):
    os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """A small trained `fast` run (width 8, 1,024 digits, 2 epochs), shared by the inspection tests."""
    import convscope

    path = tmp_path_factory.mktemp("small_run") / "run"
    return convscope.train({"model": "fast", "model_args": {"width": 8}, "train_subset": 1024, "epochs": 2,
                            "batch_size": 128, "threads": 2}, out=path, progress=False)


def run_cli(*args: str, cwd=None, env=None, timeout: float = 300):
    """``python -m convscope ARGS`` in a real subprocess (this interpreter, this checkout)."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "convscope", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


@pytest.fixture
def cli():
    """The ``convscope`` command as a real subprocess: ``cli("topk", run, "--layer", "relu3")``."""
    return run_cli


@pytest.fixture(scope="session")
def v0_1(tmp_path_factory):
    """convscope 0.1's source tree (from git history), to run beside today's code on the same machine."""
    from tests.reference_weights import V0_1_COMMIT, extract_v0_1

    tree = extract_v0_1(tmp_path_factory.mktemp("v0_1"))
    if tree is None:
        pytest.skip(f"no git history with convscope 0.1 (commit {V0_1_COMMIT}) in this checkout: the 0.1 "
                    "comparison needs a git clone")
    return tree


def as_from_a_terminal() -> None:
    """``preexec_fn`` for a child that is sent Ctrl-C: give it SIGINT's default, as a command started from a
    terminal has it. A background job of a non-interactive shell (CI runs the tests so) inherits SIGINT ignored,
    which Python and convscope then leave ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
