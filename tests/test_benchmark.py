"""Smoke-size run of the time-to-accuracy harness: it works end to end (no timing is asserted)."""

import json
import subprocess
import sys
from pathlib import Path

from convscope.benchmark import THRESHOLDS, parse_recipe, process_age

ROOT = Path(__file__).resolve().parents[1]


def test_harness_smoke(tmp_path):
    out = tmp_path / "tta.json"
    r = subprocess.run([sys.executable, str(ROOT / "bench/time_to_accuracy.py"), "--smoke", "--seeds", "1",
                        "--datasets", "digits", "--recipes", "fast:epochs=2", "keras-example", "--yardstick", "1",
                        "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert [row["recipe"] for row in data["summary"]] == ["fast:epochs=2", "keras-example"]
    run = data["runs"][0]
    assert run["config"]["epochs"] == 1 and run["config"]["train_subset"] == 1024   # smoke overrides win
    assert run["log"] and all(e["wall"] > run["setup_seconds"] for e in run["log"])
    assert run["forward_flops_per_image"] > 0 and data["peak_flops"]["bf16"] > 0
    assert set(f"time_to_{t}" for t in THRESHOLDS["digits"]) <= set(run)
    assert "| fast:epochs=2 |" in r.stdout
    assert data["provenance"]["command"].startswith("python bench/time_to_accuracy.py --smoke --seeds 1")
    # the yardstick: one (smoke-size) epoch of the PyTorch example on Fashion-MNIST, times as ratios to it
    assert data["yardstick_runs"] and data["yardstick_seconds"] == data["yardstick_runs"][0]["wall_seconds"] > 0
    row = data["summary"][0]
    for t in THRESHOLDS["digits"]:
        if row[f"time_to_{t}"] is not None:
            assert abs(row[f"ratio_to_{t}"] - row[f"time_to_{t}"] / data["yardstick_seconds"]) < 1e-9
    assert row["per_seed_final_accuracy"] == [run["final_accuracy"]]


def test_bench_command_smoke():
    r = subprocess.run([sys.executable, "-m", "convscope", "bench", "--smoke", "--recipes", "fast"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "**digits**" in r.stdout and "| fast |" in r.stdout


def test_recipe_specs_and_clock():
    assert parse_recipe("fast:epochs=14,tta=true,model_args={\"extra\":1}") == (
        "fast", {"epochs": 14, "tta": True, "model_args": {"extra": 1}})
    assert parse_recipe("keras-example") == ("keras-example", {})
    assert 0 < process_age() < 24 * 3600
