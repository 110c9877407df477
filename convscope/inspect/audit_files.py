"""The trust audit written into a folder: ``audit.json`` (what the served Draw page reads for its verdicts),
``audit.md`` and ``audit.png``. ``convscope explain RUN --audit`` and the served page's audit button both come
here, so both write the same files the same way: atomically, after every finished row (``"complete": false``
until the last one, so a long audit that is stopped leaves its finished rows), then the picture."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from .._atomic import atomic_write_text
from .attribution import METHODS
from .audit import CONTROLS, AuditTable, MethodAudit, audit, audit_notes, audit_table

AUDIT_JSON, AUDIT_MD, AUDIT_PNG = "audit.json", "audit.md", "audit.png"


def audit_rows_names(methods: Sequence[str] | None = None) -> list[str]:
    """The rows :func:`~convscope.inspect.audit.audit` computes, in its order: the methods, then the controls."""
    return [*(METHODS if methods is None else methods), *CONTROLS]


def audit_head(images: int, dataset: str, split: str, target: int | None = None) -> str:
    """The line above the table: which images, which targets."""
    return f"{images:,} {dataset} {split} images; targets: {'predicted' if target is None else target}"


def write_audit(model: nn.Module, inputs: torch.Tensor, out_dir: Path, *, dataset: str, split: str,
                methods: Sequence[str] | None = None, target: int | None = None, layer: str | None = None,
                seed: int = 0, with_ssim: bool = False,
                on_row: Callable[[MethodAudit], None] | None = None) -> tuple[AuditTable, Path]:
    """Run :func:`~convscope.inspect.audit.audit` on the model inputs (N, C, H, W) — ``N`` images of ``dataset``'s
    ``split`` — and write ``audit.json`` and ``audit.md`` into ``out_dir`` after every row (``on_row(row)`` is
    called after each write), then ``audit.png``. Returns the rows and the picture's path."""
    out_dir = Path(out_dir)
    rows: list[MethodAudit] = []
    head = audit_head(len(inputs), dataset, split, target)

    def write(final: bool) -> None:
        notes = audit_notes(rows)
        atomic_write_text(out_dir / AUDIT_JSON, json.dumps({
            "images": len(inputs), "dataset": dataset, "split": split, "complete": final,
            "rules": notes.splitlines(), "methods": [r.to_dict() for r in rows]}) + "\n")
        atomic_write_text(out_dir / AUDIT_MD, f"{head}\n\n{audit_table(rows)}\n\n{notes}\n")

    def progress(row: MethodAudit) -> None:
        rows.append(row)
        write(False)
        if on_row is not None:
            on_row(row)

    table = audit(model, inputs, methods, target, layer, seed=seed, with_ssim=with_ssim, progress=progress)
    rows[:] = table          # the finished rows, compared with the controls
    write(True)
    from .viz_pictures import audit_png

    return table, audit_png(table, out_dir / AUDIT_PNG, f"attribution audit: {head}")


__all__ = ["AUDIT_JSON", "AUDIT_MD", "AUDIT_PNG", "audit_head", "audit_rows_names", "write_audit"]
