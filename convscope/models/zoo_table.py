"""The zoo's table as ``convscope models`` prints it (name, parameters, input, MFLOPs per image, description),
kept in zoo_table.json beside this file so the command answers without importing torch (it reads the file by
path: importing ``convscope.models`` would build the registry, and with it torch).

The JSON is derived data: :func:`compute` builds every registered model to count it, and
``tests/test_models.py`` fails if the file differs from what :func:`compute` gives (regenerate with
``python -m convscope.models.zoo_table``). Only the built-in zoo is listed: the command runs no user code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TABLE = Path(__file__).with_name("zoo_table.json")


def compute() -> list[dict[str, Any]]:
    """One row per model of the built-in zoo, computed (imports torch and builds each model); models that other
    code registered in this process (a user's, a test's) are not the zoo and are left out."""
    from . import count_parameters, create_model, flops_per_image, list_models

    rows = []
    for e in list_models():
        if not e.fn.__module__.startswith("convscope."):
            continue
        m = create_model(e.name)
        rows.append({"name": e.name, "parameters": count_parameters(m), "input": list(e.default_input),
                     "mflops": round(flops_per_image(m, e.default_input) / 1e6, 2), "description": e.description})
    return rows


def main() -> None:
    from .._atomic import atomic_write_text

    atomic_write_text(TABLE, json.dumps(compute(), indent=1) + "\n")
    print(f"wrote {TABLE}")


if __name__ == "__main__":
    main()
