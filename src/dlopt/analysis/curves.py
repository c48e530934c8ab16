"""plots/curves.png: loss, metrics and learning rate per epoch, of one run or of several overlaid
(`dlopt plot`), read from metrics.csv and summary.json."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..runs import RunFolder, read_json_if_any, read_metrics, short_names
from ..runs.metrics_csv import TIMING
from .plots import save_figure

PANEL_SKIP = ("epoch", "learning_rate", *TIMING)


def panels(runs: dict[str, list[dict]]) -> list[str]:
    """The same order everywhere: loss, the metrics alphabetically, then the learning rate."""
    names = {k for rows in runs.values() for row in rows[:1] for k in row if k not in PANEL_SKIP and not k.startswith("val_")}
    ordered = (["loss"] if "loss" in names else []) + sorted(names - {"loss"})
    if any("learning_rate" in row for rows in runs.values() for row in rows[:1]):
        ordered.append("learning_rate")
    return ordered


def plot_curves(runs: dict[str, list[dict]], path: Path, title: str, best_epochs: dict[str, int | None] | None = None) -> None:
    """The curves of `runs` (label -> metrics.csv rows) as a PNG at `path`."""
    fig = curves_figure(runs, title, best_epochs)
    if fig is not None:
        save_figure(fig, path, tight=False)


def curves_figure(runs: dict[str, list[dict]], title: str, best_epochs: dict[str, int | None] | None = None):
    """One panel per quantity, per epoch: train dashed, validation solid. One run: train and
    validation in two colours; several: a colour per run, named in a legend beside the panels.
    The best epoch (by checkpoint.monitor) is marked with a dotted line. None if nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    names = panels(runs)
    if not names:
        return None
    single = len(runs) == 1
    # constrained layout places a legend "outside" right beside the panels, whatever its width
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names) + (0 if single else 2.2), 3.6), squeeze=False, layout="constrained")
    for ax, name in zip(axes[0], names):
        for index, (label, rows) in enumerate(runs.items()):
            epochs = [row["epoch"] for row in rows]
            train_colour, val_colour = ("C0", "C1") if single else (f"C{index % 10}",) * 2
            if all(name in row for row in rows):
                ax.plot(epochs, [row[name] for row in rows], "--" if name != "learning_rate" else "-", color=train_colour, marker=".", label="train" if name != "learning_rate" else None)
            if all(f"val_{name}" in row for row in rows):
                ax.plot(epochs, [row[f"val_{name}"] for row in rows], "-", color=val_colour, marker=".", label="validation")
            best = (best_epochs or {}).get(label)
            if best:
                ax.axvline(best, color=val_colour, linestyle=":", linewidth=1)
        ax.set_title(name.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if name == "learning_rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        elif single:
            ax.legend(fontsize="small")
    if not single:  # the runs and the line styles, once, outside the panels
        handles = [Line2D([], [], color=f"C{i % 10}", label=label) for i, label in enumerate(runs)]
        handles += [Line2D([], [], color="gray", linestyle="--", label="train"), Line2D([], [], color="gray", label="validation"), Line2D([], [], color="gray", linestyle=":", label="best epoch")]
        fig.legend(handles=handles, loc="outside right center", fontsize="small", frameon=False)
    fig.suptitle(title)
    return fig


def plot_runs(folders: list[Path], path: Path) -> None:
    """`dlopt plot`: the curves of run folders, read from their metrics.csv and summary.json."""
    labels = short_names([folder.name for folder in folders])
    curves, best = {}, {}
    for label, folder in zip(labels, map(RunFolder, folders)):
        if not folder.metrics.exists():
            raise ConfigError(f"{folder}: no metrics.csv (not a run folder, or no epoch finished yet)")
        curves[label] = read_metrics(folder.metrics)
        best[label] = read_json_if_any(folder.summary).get("best", {}).get("epoch")
    title = folders[0].name if len(folders) == 1 else f"{len(folders)} runs"
    plot_curves(curves, path, title, best)
