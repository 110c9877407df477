"""Facts about the machine a benchmark ran on, recorded beside every result."""

from __future__ import annotations

import os
import platform

import torch


def machine() -> dict:
    flags, model = [], platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("", "x86_64"):
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    break
    except OSError:
        pass
    keep = [f for f in flags if f.startswith(("avx", "amx", "fma", "sse4"))]
    return {"cpu": model, "cores": os.cpu_count(), "cpu_flags": sorted(keep), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "python": platform.python_version(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
