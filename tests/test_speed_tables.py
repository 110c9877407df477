"""The speed page's tables are exactly what bench/speed_tables.py renders from bench/results/: a figure typed by
hand, or a results file regenerated without re-rendering, fails; and a goal is called reached only when every
seed's figure is within it."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def speed():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        spec = importlib.util.spec_from_file_location("speed_tables", ROOT / "bench" / "speed_tables.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return mod


def test_speed_page_quotes_what_the_benchmarks_measured(speed):
    names = {m.group("name") for page in speed.PAGES for m in speed.BLOCK.finditer(page.read_text())}
    assert {"fashion", "digits", "main-job", "busy", "goals", "readme", "step-cost", "layers", "eval-batch",
            "ablation3"} <= names
    assert names <= set(speed.BLOCKS)
    for page in speed.PAGES:
        text = page.read_text()
        assert speed.rendered(text) == text, f"{page.name}: run python bench/speed_tables.py"


def _tta(worst: float, mean: float, reached: int = 5) -> dict:
    """The smallest time_to_accuracy results the goals block reads (digits, the default recipe, 5 seeds)."""
    return {"yardstick_seconds": 40.0, "provenance": {"machine": {"cpu": "Test CPU"}},
            "summary": [{"recipe": "fast", "seeds": 5, "reached_0.99": reached, "worst_ratio_to_0.99": worst,
                         "ratio_to_0.99": mean}]}


def test_a_goal_is_reached_only_when_every_seed_is_within_it(speed):
    assert "**reached**: worst seed 0.25×, mean 0.20×" in speed._goal_tta(_tta(0.25, 0.20), "digits")
    assert "**not reached**: worst seed 0.26×" in speed._goal_tta(_tta(0.26, 0.20), "digits")
    assert "**not reached**: 4 of 5 seeds reach 99%" in speed._goal_tta(_tta(0.20, 0.20, reached=4), "digits")
    assert speed._goal_tta(None, "digits").endswith("| not measured |")
    assert speed._goal_tta({**_tta(0.2, 0.2), "yardstick_seconds": None}, "digits").endswith("| not measured |")


def test_busy_table_marks_capped_runs_and_gives_no_ratio_for_them(speed):
    def run(s, capped=False):
        return {"wall_s": s, "train_s": s, "capped": capped}

    d = {"provenance": {"commit": "abc1234", "machine": {"cpu": "Test CPU", "cores": 2, "torch": "2.13"}},
         "load_average_1_5_15_min": [[1.0, 1.0, 1.0], [1.5, 1.0, 1.0]],
         "table": {"full": {"before": {"quiet_s": 10.0, "busy_s": 240.0, "busy_over_quiet": 24.0,
                                       "quiet_vs_before_quiet": 1.0},
                            "default": {"quiet_s": 9.0, "busy_s": 18.0, "busy_over_quiet": 2.0,
                                        "quiet_vs_before_quiet": 0.9}}},
         "runs": {"full": {"before": {"quiet": [run(10.0)], "busy": [run(240.0, True)]},
                           "default": {"quiet": [run(9.0)], "busy": [run(18.0)]}}}}
    out = speed.block_busy(d)
    assert "| before | 10.0 | ≥ 240.0 | – | 1.00 |" in out
    assert "| default | 9.0 | 18.0 | 2.00 | 0.90 |" in out
    assert "2-core Test CPU" in out and "`abc1234`" in out
