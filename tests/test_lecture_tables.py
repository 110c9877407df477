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
        prov = lecture.stage_data(results, stage)["provenance"]            # the trust stage's: in its own file
        assert prov["dirty"] is False, f"{stage}: measured on a tree with uncommitted changes; commit, re-run"
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


def _refine_entry(change: tuple[float, float], vs_random_images: tuple[float, float], at25: float = -0.012) -> dict:
    """The smallest refine stage entry the answer reads: `maximize`'s change and its paired contrast to the same
    ascent on random images, as (low, high) 95% intervals; two models."""
    def ci(lo_hi):
        return {"mean": sum(lo_hi) / 2, "ci95": list(lo_hi), "draws": 2000}

    per_model = [{"change": ci(change)}, {"change": ci((0.0, 0.01))}]
    paired = {bn: {"maximize": {"change": ci(change), "per_model": per_model}} for bn in ("frozen", "reestimate")}
    paired["contrasts"] = {"frozen": [{"first": "maximize", "second": "maximize-random",
                                       "difference": ci(vs_random_images), "per_model": []}]}
    summary = {"maximize": {"test_accuracy_change": {"mean": sum(change) / 2, "std": 0.0},
                            "per_class_change": [-0.02, 0.0]}}
    dose = {v: {"step": [0, 10, 30], "gain_topk_train": [0.0, 0.2, gain], "accuracy_change": [0.0, -0.01, end],
                "at_gain": {"0.1": -0.005, "0.25": at25, "0.5": None}}
            for v, gain, end, at25 in (("maximize", 0.6, sum(change) / 2, at25),
                                        ("maximize-random", 0.3, sum(change) / 2 - sum(vs_random_images) / 2,
                                         -0.010))}
    return {"models": [{}, {}], "config": {"seeds": [0], "steps": 30, "k": 9}, "layer": "conv3",
            "dose_response": {"frozen": dose},
            "data": {"classes": ["0", "1"], "dataset": "digits"}, "paired": paired,
            "summary": {"frozen": summary, "reestimate": summary}}


def test_refine_answer_claims_only_what_the_intervals_show(lecture):
    hurts = lecture.block_refine_answer(_refine_entry((-0.05, -0.01), (-0.004, 0.003)))
    assert "**Yes, it costs accuracy**" in hurts and "-3.00 [-5.00, -1.00] pp" in hurts
    assert "a loss with its interval below 0 on 1 of 2" in hurts
    assert "no overfitting to them" in hurts and "cost more than random ones" not in hurts
    assert "still detectable on 1 of the 1 models" in hurts                   # re-estimated: still below 0
    assert "removes 0% of the loss" in hurts and "not from what the kernels" not in hurts
    chosen = lecture.block_refine_answer(_refine_entry((-0.05, -0.01), (-0.03, -0.01)))
    assert "**at equal steps the top images cost more than random ones**" in chosen
    assert "+60% vs +30%" in chosen
    assert "at a matched gain of +25% (the mean curves; no interval) the two cost -1.20 and -1.00 pp" in chosen
    assert "much of the difference is dose" in chosen                         # -2 pp raw, -0.2 pp at matched gain
    dose = lecture.block_refine_answer(_refine_entry((-0.05, -0.01), (-0.03, -0.01), at25=-0.008))
    assert "cost no more than random ones" in dose and "overfitting to them would" not in dose   # less at matched
    steep = lecture.block_refine_answer(_refine_entry((-0.05, -0.01), (-0.03, -0.01), at25=-0.03))
    assert "not a matter of dose" in steep                                    # -2 pp at matched gain too
    none = lecture.block_refine_answer(_refine_entry((-0.01, 0.004), (-0.004, 0.003)))
    assert "**No detectable change**" in none and "no overfitting" not in none   # nothing to explain
    short = lecture.block_refine_verdict(_refine_entry((-0.05, -0.01), (-0.004, 0.003)))
    assert short.count("\n- ") == 3 and "Selectivity" not in short            # the README's three points


def _audit_entry(passes: dict[str, bool], vs_image: dict[str, tuple[float, float]],
                 trusted: tuple[str, ...] = ()) -> dict:
    """The smallest trust stage entry the audit reading reads: per method whether it passes randomization, its
    paired 95% interval against the image control, and which rows are trusted."""
    def row(name: str, control: bool) -> dict:
        ok = passes.get(name, False)
        return {"method": name, "control": control, "randomization": [{"spearman": 0.1 if ok else 0.9}],
                "randomization_score": 0.05 if ok else 0.8, "passes_randomization": ok, "passes_faithfulness": True,
                "versus_controls": {} if control else {"control: image": {"ci95": list(vs_image[name])}},
                "trusted": name in trusted,
                "faithfulness": {"insertion_auc": 0.6, "deletion_auc": 0.1, "vs_random": {"mean": 0.5}}}
    return {"audit": {"methods": [row(n, False) for n in vs_image] + [row("control: image", True)]}}


def test_audit_reading_follows_the_table(lecture):
    ok = _audit_entry({"saliency": True, "guided_backprop": False, "deconvnet": False},
                      {"saliency": (-0.3, -0.2), "guided_backprop": (-0.1, 0.05), "deconvnet": (-0.2, -0.1),
                       "occlusion": (0.1, 0.2)}, trusted=("occlusion",))
    text = lecture.block_trust_audit_reading(ok)
    assert "on 2 of 2 methods they tested" in text and "**Differs**" not in text
    assert "`guided_backprop` fails (0.90 after the output layer is re-drawn, 0.80 over the top half)" in text
    assert "Deconvnet, which they did not test, fails" in text
    assert "`occlusion` beats it" in text and "`saliency`, `deconvnet` rank pixels less usefully" in text
    assert "`guided_backprop`: not distinguishable from it (CI spans 0)" in text
    assert "Trusted by all three rules: `occlusion`; no control is trusted" in text
    bad = _audit_entry({"guided_backprop": True}, {"guided_backprop": (-0.1, -0.05)}, trusted=("control: image",))
    text = lecture.block_trust_audit_reading(bad)
    assert "**Differs**: `guided_backprop` passes" in text and "where they saw the map stay" in text
    assert "No method beats it" in text and "**a control is trusted** (`control: image`)" in text


def test_default_refine_time_says_what_the_cpu_time_shows(lecture):
    def entry(cpu: float, threads: int) -> dict:
        return {"command": "convscope experiment refine RUN", "baseline_test_accuracy": 0.9935, "threads": threads,
                "nice": 0, "wall_seconds": 3 * cpu, "cpu_seconds": cpu,
                "load_average": {"start": [6.0, 5.0, 4.0], "end": [4.0, 5.0, 4.0]},
                "config": {"seeds": [0, 1, 2], "variants": ["maximize", "random"], "steps": 30, "eval_every": 10,
                           "bn": ["frozen", "reestimate"]},
                "provenance": {"commit": "abcdef123", "machine": {"cpu": "Intel Xeon", "cores": 2}}}
    fits = lecture.block_refine_default_time(entry(480, 2))
    assert "**24.0 min wall, 8.0 min CPU**" in fits and "3 seeds x 2 variants" in fits and "3.0x the CPU" in fits
    assert "4.0 min (perfect scaling) to 8.0 min" in fits and "even without parallel speed-up" in fits
    assert "not niced" in fits and "load average 6.0 at the start and 4.0 at the end" in fits
    assert "only if the two threads share the work well" in lecture.block_refine_default_time(entry(900, 2))
    assert "over the 10-minute bound" in lecture.block_refine_default_time(entry(1500, 2))
    one = lecture.block_refine_default_time(entry(700, 1))
    assert "about the wall time it would take on one free core" in one and "over the 10-minute bound" in one
    short = entry(200, 2)
    short["config"]["seeds"], short["variant_seconds"] = [0], {"maximize": 150.0, "random": 150.0}   # half the wall
    text = lecture.block_refine_default_time(short)                     # 200 s * (1 + 2 * 0.5) = 400 s estimated
    assert "1 seed x 2 variants" in text and "**Measured with 1 seed, not the default's 3**" in text
    assert "about **6.7 min CPU**" in text and "an estimate, not measured" in text and "3.3 min (perfect" in text
    # the default itself, started on otherwise idle cores: the wall time is the answer, measured
    idle = entry(660, 2)
    idle["wall_seconds"], idle["load_average"] = 372.0, {"start": [0.8, 1.4, 2.5], "end": [1.8, 1.7, 2.3]}
    text = lecture.block_refine_default_time(idle)
    assert "**6.2 min wall, 11.0 min CPU**" in text and "started on otherwise idle cores" in text
    assert "**within the 10-minute bound, measured**" in text and "no free machine" not in text
    idle["wall_seconds"] = 700.0
    assert "**over the 10-minute bound, measured**" in lecture.block_refine_default_time(idle)
