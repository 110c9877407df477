"""The lecture's tables in README.md and docs/ are exactly what bench/lecture_tables.py renders from
bench/results/lecture_tables.json: a number edited by hand, or a JSON regenerated without re-rendering, fails."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lecture():
    spec = importlib.util.spec_from_file_location("lecture_tables", ROOT / "bench" / "lecture_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_docs_quote_what_the_script_measured(lecture):
    results = json.loads(lecture.RESULTS.read_text())
    for stage, entry in results["stages"].items():
        assert entry["provenance"]["commit"], stage                        # every stage records its commit
    for page in lecture.PAGES:
        text = page.read_text()
        assert lecture.rendered(text, results) == text, f"{page.name}: run python bench/lecture_tables.py --render"


def test_every_block_has_a_renderer_and_blocks_are_rewritten(lecture):
    names = {m.group("name") for page in lecture.PAGES for m in lecture.BLOCK.finditer(page.read_text())}
    assert names and names <= set(lecture.BLOCKS)
    text = "a\n<!-- lecture:edges -->\nstale 1.0\n<!-- /lecture:edges -->\nb\n"
    rows = [{"data": "d", "kernel": "k", "input_nonzero": {"mean": 150.25}, "filtered_nonzero": {"mean": 296.0},
             "after_relu_nonzero": {"mean": 149.0}, "relu_zeroed_fraction_of_nonzero": 0.5}]
    out = lecture.rendered(text, {"stages": {"edges": {"rows": rows}}})
    assert "stale" not in out and "| d | custom | 150.2 | 296.0 | 149.0 | 50.0% |" in out and out.endswith("b\n")
    assert lecture.rendered(text, {"stages": {}}) == text                  # a stage not measured stays as it is
