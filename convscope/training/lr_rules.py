"""The suggestion rules of the learning-rate finder (training/lr_find.py), as fastai defines them; pure Python on
the sweep's lists (no torch), so the command line can name them without loading torch."""

from __future__ import annotations

import math
import statistics

RULES = ("steep", "valley", "minimum")
# the default rule: on the main job (bench/results/lr_find_main_job.json, 2 epochs, seed 0) steep's 0.018 trained
# to 97.05% test accuracy against 97.15% at the tuned 0.1, minimum's 0.0095 to 96.1%, valley's 0.0009 to 85.2%
DEFAULT_RULE = "steep"
RULE_TEXT = {"valley": "the longest falling stretch of the loss, fastai's default",
             "steep": "steepest descent of the smoothed loss",
             "minimum": "the lr of the minimum loss / 10"}


def _trim(n: int) -> slice:
    """fastai's window for the rules: without the first 10% of the sweep and its last 5 steps."""
    return slice(n // 10, max(n // 10 + 2, n - 5))


def valley(lrs: list[float], losses: list[float]) -> float:
    """fastai's ``valley``: the longest strictly decreasing subsequence of the losses, and the lr at its start
    plus int(len/3) + int(len/6) points, about half-way along it (O(n^2), n <= a few hundred)."""
    n = len(losses)
    lds = [1] * n
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
        if lds[max_end] < lds[i]:
            max_end = i
            max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    return lrs[max_start + int(sections) + int(sections / 2)]


def steep(lrs: list[float], losses: list[float]) -> float:
    """fastai's ``steep``: the lr where d loss / d log lr is most negative."""
    grads = [(losses[i + 1] - losses[i]) / (math.log(lrs[i + 1]) - math.log(lrs[i])) for i in range(len(lrs) - 1)]
    return lrs[min(range(len(grads)), key=grads.__getitem__)]


def minimum(lrs: list[float], losses: list[float]) -> float:
    """fastai's ``minimum``: the lr of the lowest loss, divided by 10."""
    return lrs[min(range(len(losses)), key=losses.__getitem__)] / 10


def suggest(lrs: list[float], smoothed: list[float], raw: list[float]) -> tuple[dict[str, float | None], str]:
    """Each rule's lr for a sweep (``smoothed`` and ``raw``: its finite smoothed and batch losses), and a note
    when the loss did not fall (then every suggestion is None).

    "Fell" is judged on the batch losses, a running median of 5 against the first step's: the smoothed loss lags
    by about 1 / (1 - beta) = 50 steps, and a short sweep that diverges early may end before it shows the fall."""
    from .doctor import LOSS_FALL, _g

    window = _trim(len(smoothed))
    x, y = lrs[window], smoothed[window]
    if len(x) < 3:
        return dict.fromkeys(RULES), (f"the sweep stopped after {len(smoothed)} steps, too few to suggest a rate; "
                                      "start lower (--start) or sweep longer (--steps)")
    medians = [statistics.median(raw[max(0, i - 2):i + 3]) for i in range(len(raw))]
    if min(medians) > LOSS_FALL * raw[0]:
        return dict.fromkeys(RULES), (
            f"the loss did not fall during the sweep ({_g(raw[0])} at lr {_g(lrs[0])}, lowest running median "
            f"{_g(min(medians))}, a fall of {100 * (1 - min(medians) / raw[0]):.0f}% where "
            f"{100 * (1 - LOSS_FALL):.0f}% is asked): no learning rate trains this model as it is; "
            "`convscope train --check` says why")
    return {"valley": valley(x, y), "steep": steep(x, y), "minimum": minimum(x, y)}, ""
