import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own empty user cache, so nothing reads or writes ~/.cache/convscope."""
    monkeypatch.setenv("CONVSCOPE_DATA", str(tmp_path_factory.mktemp("cache")))
    yield


def pytest_configure(config):
    os.environ.setdefault("MPLBACKEND", "Agg")
