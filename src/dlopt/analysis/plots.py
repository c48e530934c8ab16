"""The analysis pictures, drawn with matplotlib (headless) and written as PNGs next to curves.png."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MOST_CONFUSED = 20  # classes shown when there are more: the ones with the most mistakes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> Path:
    save_figure(fig, path)
    return path


def save_figure(fig, path: Path, tight: bool = True) -> None:
    """A matplotlib figure as a PNG, written under a temporary name and renamed into place."""
    import matplotlib.pyplot as plt

    if tight and fig.get_layout_engine() is None:  # a figure laid out by its own engine keeps it
        fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def confusion_matrix(matrix: np.ndarray, class_names: list[str], split: str):
    """Counts and row-normalised (recall per class) side by side; for many classes, the classes
    with the most mistakes (as truth or as prediction) only."""
    plt = _pyplot()
    shown = list(range(len(class_names)))
    title = f"confusion matrix ({split})"
    if len(shown) > MOST_CONFUSED:
        off = matrix - np.diag(np.diag(matrix))
        shown = sorted(np.argsort(-(off.sum(axis=0) + off.sum(axis=1)), kind="stable")[:MOST_CONFUSED].tolist())
        title += f": the {MOST_CONFUSED} most confused of {len(class_names)} classes"
    counts = matrix[np.ix_(shown, shown)]
    rows = matrix[shown].sum(axis=1, keepdims=True)  # recall over every prediction, not just the shown ones
    normalised = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=float), where=rows > 0)
    names = [class_names[i] for i in shown]
    size = max(4.5, 0.45 * len(names) + 2)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size))
    for ax, values, heading, fmt in ((axes[0], counts, "counts", "d"), (axes[1], normalised, "share of each true class", ".2f")):
        image = ax.imshow(values, cmap="Blues")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        ax.set_title(heading)
        ax.set_xticks(range(len(names)), names, rotation=90 if len(names) > 6 else 0, fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if len(names) <= 15:  # numbers in the cells while they stay readable
            limit = values.max() / 2 if values.size else 0
            for (r, c), value in np.ndenumerate(values):
                ax.text(c, r, format(value, fmt), ha="center", va="center", fontsize=7, color="white" if value > limit else "black")
    fig.suptitle(title)
    return fig


def mistakes(found: list[dict], class_names: list[str], split: str):
    """The most confidently wrong images, each titled true / predicted (probability)."""
    plt = _pyplot()
    columns = min(4, len(found))
    rows = int(np.ceil(len(found) / columns))
    # constrained layout keeps each row's two-line titles clear of the images above them
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.9 * rows), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, m in zip(axes.flat, found):
        image = np.asarray(m["input"], dtype=np.float64)
        image = image[..., 0] if image.shape[-1] == 1 else image
        lo, hi = image.min(), image.max()
        ax.imshow((image - lo) / (hi - lo or 1), cmap="gray" if image.ndim == 2 else None)
        ax.set_title(f"true {class_names[m['truth']]}\npredicted {class_names[m['predicted']]} ({m['probability']:.2f})", fontsize=8)
    fig.suptitle(f"most confident mistakes ({split})")
    return fig


def binary_curves(truth: np.ndarray, scores: np.ndarray, class_names: list[str], split: str):
    """ROC and precision-recall curves for the second class, with their areas."""
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    plt = _pyplot()
    fpr, tpr, _ = roc_curve(truth, scores)
    precision, recall, _ = precision_recall_curve(truth, scores)
    roc_auc, ap = float(auc(fpr, tpr)), float(average_precision_score(truth, scores))
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    axes[0].plot(fpr, tpr, label=f"AUC {roc_auc:.3f}")
    axes[0].plot([0, 1], [0, 1], ":", color="gray")
    axes[0].set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    axes[1].plot(recall, precision, label=f"average precision {ap:.3f}")
    axes[1].axhline(float(np.mean(truth)), linestyle=":", color="gray")
    axes[1].set(xlabel="recall", ylabel="precision", title="precision-recall")
    for ax in axes:
        ax.legend(loc="lower right")
        ax.grid(alpha=0.3)
    fig.suptitle(f"'{class_names[1]}' against '{class_names[0]}' ({split})")
    return {"roc_auc": roc_auc, "average_precision": ap}, fig


def regression(truth: np.ndarray, predicted: np.ndarray, split: str):
    plt = _pyplot()
    residuals = predicted - truth
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    axes[0].scatter(truth, predicted, s=6, alpha=0.5)
    lo, hi = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
    axes[0].plot([lo, hi], [lo, hi], ":", color="gray", label="predicted = true")
    axes[0].set(xlabel="true", ylabel="predicted", title="predicted against true")
    axes[0].legend(loc="upper left")
    axes[1].hist(residuals, bins=min(50, max(10, len(residuals) // 10)))
    axes[1].set(xlabel="predicted - true", ylabel="examples", title=f"residuals (mean {residuals.mean():.3g}, std {residuals.std():.3g})")
    fig.suptitle(f"regression ({split})")
    return fig


def forecast(model, series, pipelines, split: str):
    """The split's series (the first target column) with the model's and the naive forecasts over
    it, in the series' units: the first step ahead and, for longer horizons, the last."""
    from ..data.timeseries import NAIVE, errors, naive_forecasts

    plt = _pyplot()
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in pipelines[split]])
    x, y = np.concatenate(xs), np.concatenate(ys)
    y = y.reshape(len(y), -1, len(series.target_index))
    horizon = y.shape[1]
    forecasts = {"model": np.asarray(model.predict(x, verbose=0, batch_size=1024)).reshape(y.shape)}
    forecasts.update(naive_forecasts(x, series, horizon, series.season))
    unscale = series.target_scaling.invert
    steps = [0] if horizon == 1 else [0, horizon - 1]
    fig, axes = plt.subplots(len(steps), 1, figsize=(10, 3.4 * len(steps)), squeeze=False)
    labels = {"seasonal_naive": "seasonal naive", "seasonal_naive_trend": "seasonal naive + trend"}
    for ax, step in zip(axes[:, 0], steps):
        ax.plot(unscale(y)[:, step, 0], color="black", linewidth=1.5, label="true")
        for name in ("model", *NAIVE):
            rmse = errors(forecasts[name], y, series)["rmse"]
            ax.plot(unscale(forecasts[name])[:, step, 0], linewidth=1.2 if name == "model" else 0.8, linestyle="-" if name == "model" else "--", label=f"{labels.get(name, name)} (RMSE {rmse:.4g})")
        ax.set(xlabel="window", ylabel="value", title=f"{step + 1} step{'s' if step else ''} ahead")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="upper left")
    fig.suptitle(f"forecasts over the {split} part, in the series' units")
    return fig
