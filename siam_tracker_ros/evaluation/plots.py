"""OTB success and precision plots, one labelled curve per tracker (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

from pathlib import Path

from .metrics import PRECISION_AT, PRECISION_THRESHOLDS, SUCCESS_THRESHOLDS

LEGEND_INSIDE_MAX = 10  # trackers whose legend still fits inside the axes
COLOUR_CYCLE = 10  # matplotlib's default colour cycle: the next line style starts after it


def plot_runs(runs: dict, path: str | Path, title: str = "") -> Path:
    """`runs`: {name: TrackerRun} (or anything with .overall() giving .success/.precision). Writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [(name, run.overall()) for name, run in runs.items()]
    # Past ten curves the colours repeat and an inside legend covers the plot: line styles tell the repeats apart
    # and the legends go below the axes, the figure growing to hold them.
    many = len(scored) > LEGEND_INSIDE_MAX
    legend_rows = -(-len(scored) // 2) if many else 0
    fig, (ax_s, ax_p) = plt.subplots(1, 2, figsize=(11, 4.5 + 0.2 * legend_rows), dpi=100)
    styles = ["-", "--", ":"]
    for name, o in sorted(scored, key=lambda item: -item[1].auc):
        ax_s.plot(SUCCESS_THRESHOLDS, o.success, lw=2, label=f"{name} [{o.auc:.3f}]",
                  ls=styles[(len(ax_s.lines) // COLOUR_CYCLE) % 3])
    for name, o in sorted(scored, key=lambda item: -item[1].precision20):
        ax_p.plot(PRECISION_THRESHOLDS, o.precision, lw=2, label=f"{name} [{o.precision20:.3f}]",
                  ls=styles[(len(ax_p.lines) // COLOUR_CYCLE) % 3])
    n = scored[0][1].sequences if scored else 0
    ax_s.set(xlabel="overlap threshold", ylabel="success rate", xlim=(0, 1), ylim=(0, 1.02),
             title=f"Success plots of OPE (AUC), {n} sequences")
    ax_p.set(xlabel="location error threshold (px)", ylabel="precision", xlim=(0, PRECISION_THRESHOLDS[-1]),
             ylim=(0, 1.02), title=f"Precision plots of OPE (at {PRECISION_AT:.0f} px)")
    ax_p.axvline(PRECISION_AT, color="grey", lw=0.8, ls="--")
    for ax in (ax_s, ax_p):
        ax.grid(alpha=0.3)
        if many:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8, frameon=False)
        else:
            ax.legend(loc="lower left" if ax is ax_s else "lower right", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
