"""bench/ as evidence: every stored result says which commit measured it, with what command, on what machine,
and the command names a script that is in the tree (results no script produces live in bench/results/archive/)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from convscope.benchmark import provenance

ROOT = Path(__file__).resolve().parents[1]
RESULTS = sorted((ROOT / "bench" / "results").glob("*.json"))
ARCHIVED = sorted((ROOT / "bench" / "results" / "archive").glob("*.json"))


@pytest.mark.parametrize("path", RESULTS + ARCHIVED, ids=lambda p: p.relative_to(ROOT / "bench").as_posix())
def test_every_result_records_commit_command_and_machine(path):
    for prov in _provenances(path):
        _check_provenance(prov)


def _provenances(path) -> list[dict]:
    """A result's provenance; a staged result (bench/lecture_tables.py: each stage regenerated on its own) has
    one per stage."""
    d = json.loads(path.read_text())
    if "provenance" in d or "stages" not in d:
        return [d["provenance"]]
    return [s["provenance"] for s in d["stages"].values()]


def _check_provenance(prov: dict) -> None:
    assert re.fullmatch(r"[0-9a-f]{40}", prov["commit"]), prov["commit"]
    assert isinstance(prov["command"], str) or prov["command_note"], "neither a command nor why it is unknown"
    if prov["machine"] is None:
        assert prov["machine_note"]
    else:
        assert {"cpu", "cores", "torch", "python"} <= set(prov["machine"])


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.name)
def test_every_live_result_names_a_script_in_the_tree(path):
    for prov in _provenances(path):
        said = f"{prov['command'] or ''} {prov.get('command_note', '')}"
        scripts = re.findall(r"bench/\w+\.py", said) + (["convscope/benchmark.py"] if said.startswith("convscope bench")
                                                        else [])
        assert scripts and all((ROOT / s).is_file() for s in scripts), f"{path.name}: {said!r}"


def test_archive_readme_lists_every_archived_file():
    readme = (ROOT / "bench" / "results" / "archive" / "README.md").read_text()
    assert ARCHIVED and all(f"`{p.name}`" in readme for p in ARCHIVED)


def test_provenance_names_the_script_or_the_cli_and_the_checkout():
    p = provenance([str(ROOT / "bench" / "main_job.py"), "--seeds", "3", "--out", "a b.json"])
    assert p["command"] == "python bench/main_job.py --seeds 3 --out 'a b.json'"
    assert provenance([str(ROOT / "convscope" / "__main__.py"), "bench", "--smoke"])["command"] == \
        "convscope bench --smoke"
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert p["commit"] == (head.stdout.strip() if head.returncode == 0 else None)
    assert p["machine"]["cores"] == os.cpu_count() and p["date"].endswith("+00:00")


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs git and a checkout")
def test_dirty_means_changed_code_not_the_results_benchmarks_write(tmp_path):
    """An ablation merges each run into its results file as it goes: that file must not mark the later runs
    dirty, while a changed source file must."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--local", str(ROOT), str(clone)], check=True, timeout=120)

    def dirty() -> bool:
        code = "import json; from convscope.benchmark import provenance; print(json.dumps(provenance()['dirty']))"
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=clone,
                           env={**os.environ, "PYTHONPATH": str(clone)})
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    assert dirty() is False
    result = next((clone / "bench" / "results").glob("*.json"))
    result.write_text(result.read_text() + "\n")
    assert dirty() is False
    (clone / "convscope" / "_version.py").write_text((clone / "convscope" / "_version.py").read_text() + "\n")
    assert dirty() is True
