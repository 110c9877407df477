"""Start-up time of the commands a user waits on before any work (issue 26): ``convscope --help``, each
subcommand's ``--help``, ``data list`` and ``models``, against ``python -c "import torch"`` measured in the same
invocation, interleaved round by round so that a change in machine load hits both alike.

Writes bench/results/startup.json (median of --repeats wall times per command, its ratio to importing torch,
provenance). Run: PYTHONPATH=. python bench/startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import provenance  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "import torch": [sys.executable, "-c", "import torch"],
    "convscope --help": [sys.executable, "-m", "convscope", "--help"],
    "convscope models": [sys.executable, "-m", "convscope", "models"],
    "convscope data list": [sys.executable, "-m", "convscope", "data", "list"],
}
SUBCOMMANDS = ("train", "eval", "predict", "data", "matrix", "layers", "sparsity", "edges", "rf", "filters",
               "features", "topk", "visualize", "project", "explain", "experiment", "serve", "report", "bench",
               "export", "tune", "doctor")


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "startup.json")
    args = ap.parse_args(argv)
    commands = dict(COMMANDS)
    for sub in SUBCOMMANDS:
        commands[f"convscope {sub} --help"] = [sys.executable, "-m", "convscope", sub, "--help"]
    times: dict[str, list[float]] = {name: [] for name in commands}
    for cmd in commands.values():              # warm the file cache once
        wall(cmd)
    for _ in range(args.repeats):              # interleaved: each round runs every command once
        for name, cmd in commands.items():
            times[name].append(wall(cmd))
    torch_s = statistics.median(times["import torch"])
    rows = {name: {"median_s": round(statistics.median(t), 4), "ratio_to_import_torch":
                   round(statistics.median(t) / torch_s, 3), "runs_s": [round(v, 4) for v in t]}
            for name, t in times.items()}
    worst = max((r["ratio_to_import_torch"], n) for n, r in rows.items() if n != "import torch")
    result = {"goal": "every listed command within 0.3x the time of `python -c 'import torch'` (issue 26)",
              "worst": {"command": worst[1], "ratio": worst[0]}, "commands": rows, "provenance": provenance()}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, r in rows.items():
        print(f"{name:<32} {r['median_s']:7.3f} s  {r['ratio_to_import_torch']:6.3f}x import torch")
    print(f"worst: {worst[1]} at {worst[0]:.3f}x (goal 0.3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
