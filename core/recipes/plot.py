"""``loss.png``: train loss (raw and smoothed) and eval loss against the step, from logging.jsonl;
``plot_metric`` draws any other logged value the same way (rlhf's reward margin)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence


def smoothing_weight(points: int) -> float:
    """Smooth over about a tenth of the points (none for a handful), so the line follows a short run."""
    return min(0.9, max(0.0, 1.0 - 10.0 / max(points, 1)))


def smooth(values: Sequence[float], weight: float | None = None) -> list[float]:
    """Debiased exponential moving average (TensorBoard's smoothing); the weight follows the length."""
    weight = smoothing_weight(len(values)) if weight is None else weight
    out, avg = [], 0.0
    for i, v in enumerate(values, start=1):
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight**i))
    return out


def plot_loss(records: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path | None:
    """Write the loss plot; returns its path, or None when nothing was logged."""
    return _plot_logged(records, "loss", path, title, color="tab:blue", ylabel="loss",
                        labels=("train loss", "train loss (smoothed)", "eval loss"), zero_line=False)


def plot_metric(records: Sequence[dict[str, Any]], key: str, path: str | Path, title: str = "") -> Path | None:
    """``key`` (train, raw and smoothed) and ``eval_<key>`` against the step; None when never logged."""
    return _plot_logged(records, key, path, title, color="tab:green", ylabel=key,
                        labels=(key, f"{key} (smoothed)", f"eval_{key}"), zero_line=True)


def _plot_logged(records: Sequence[dict[str, Any]], key: str, path: str | Path, title: str, *, color: str,
                 ylabel: str, labels: tuple[str, str, str], zero_line: bool) -> Path | None:
    """``key`` raw and smoothed in ``color``, ``eval_<key>`` in orange; ``labels``: raw, smoothed, eval."""
    train = [(r["step"], r[key]) for r in records if r.get(key) is not None]
    evals = [(r["step"], r[f"eval_{key}"]) for r in records if r.get(f"eval_{key}") is not None]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        steps, values = zip(*train)
        ax.plot(steps, values, color=color, alpha=0.3, linewidth=1, label=labels[0])
        ax.plot(steps, smooth(values), color=color, linewidth=2, label=labels[1])
    if evals:
        steps, values = zip(*evals)
        ax.plot(steps, values, color="tab:orange", marker="o", linewidth=1.5, label=labels[2])
    if zero_line:
        ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
