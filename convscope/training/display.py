"""What a :class:`~convscope.training.run.Run` shows in a terminal and in a notebook: its summary, per-class
accuracy, training curves (from metrics.jsonl) and confusion matrix on the test split (evaluated once, kept)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._result import Display, Table
from ..errors import ConvscopeError
from ..viz import figure_png

if TYPE_CHECKING:
    from .run import Run


def run_display(run: Run) -> Display:
    s = run.summary
    lines = [f"path: {run.path}", f"input {tuple(run.input_shape)}, {len(run.classes)} classes"
             + (", test-time mirror averaging" if run.tta else "")]
    if "test_accuracy" in s:
        lines.append(f"test accuracy {100 * s['test_accuracy']:.2f}% on {s.get('test_images', '?'):,} images, "
                     f"after {s.get('epochs', '?')} epochs ({s.get('steps', '?')} steps, {s.get('seconds', 0):.1f} s, "
                     f"{s.get('train_images', '?'):,} training images)"
                     + (f"; meaningless: scores NaN or infinite on {s['non_finite_test_scores']:,} test images (the "
                        "run diverged)" if s.get("non_finite_test_scores") else ""))
    if s.get("best_val_accuracy") is not None:
        lines.append(f"best validation accuracy {100 * s['best_val_accuracy']:.2f}% at epoch {s['best_val_epoch']}")
    per_class = s.get("per_class_accuracy") or {}
    tables = [Table(["class", "test accuracy %"],
                    [[str(k), "n/a" if v is None else f"{100 * v:.2f}"] for k, v in per_class.items()],
                    "per-class accuracy (test split)")] if per_class else []
    model = run.meta.get("model", run.config.model.name)
    return Display(f"Run {run.path.name}: {model} on {run.config.data.dataset}", lines, tables)


def run_pictures(run: Run) -> list[tuple[str, bytes]]:
    """The training curves and the confusion matrix; a part that cannot be drawn says why in its caption."""
    from .curves import curves_figure
    from .report import confusion_figure

    out = []
    epochs = [m for m in run.metrics if m.get("kind") == "epoch" and "test_accuracy" in m]
    if epochs:
        out.append(("training curves", figure_png(curves_figure(epochs, f"{run.path.name}: loss and accuracy"))))
    try:
        res = confusion(run)
        out.append(("confusion matrix on the test split", figure_png(confusion_figure(res, run.classes))))
    except ConvscopeError as e:
        out.append((f"confusion matrix not drawn: {e}", b""))
    return out


def confusion(run: Run):
    """The run's :class:`~convscope.training.evaluate.EvalResult` on its test split (computed once per Run)."""
    cached = run.__dict__.get("_test_eval")
    if cached is None:
        from ..data import load
        from .evaluate import evaluate

        ds = load(run.config.data.dataset, "test", run.config.data.data_dir, download=False)
        cached = run.__dict__["_test_eval"] = evaluate(run.model, ds, run.normalization, tta=run.tta,
                                                       classes=run.classes)
    return cached
