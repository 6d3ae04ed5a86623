"""Report figures (matplotlib, Agg canvas, no pyplot state): ROC curve, FROC curve, overlay grid."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..metrics import roc_curve
from .overlays import GROUPS, OverlayPanel
from .report import atomic_output, rate_label

__all__ = ["plot_froc", "plot_overlays", "plot_roc"]

#: Opacity of the heat map where it is highest; it fades to transparent where the map is lowest.
_HEAT_ALPHA = 0.6


def _save(figure: Figure, path: str | os.PathLike) -> None:
    FigureCanvasAgg(figure)
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)


def plot_roc(curves: Mapping[str, tuple[Sequence[float], Sequence[bool], float | None]], path: str | os.PathLike) -> None:
    """ROC curves of each method from its ``(scores, labels, auc)``; ``auc`` None: one class only, no curve."""
    figure = Figure(figsize=(5, 5))
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    for name, (scores, labels, auc) in curves.items():
        if auc is None:
            axes.plot([], [], label=f"{name} (one class only: no ROC)")
            continue
        fpr, tpr, _ = roc_curve(scores, labels)
        axes.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    axes.set(xlabel="false positive rate (healthy images)", ylabel="true positive rate (disease images)",
             xlim=(0, 1), ylim=(0, 1.02), title="Detection ROC")
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    _save(figure, path)


def plot_froc(curves: Mapping[str, dict | None], path: str | os.PathLike) -> None:
    """FROC curves (sensitivity against false positives per image, log axis) of each method."""
    figure = Figure(figsize=(6, 4.5))
    axes = figure.add_subplot()
    rates: Sequence[float] = (1 / 8, 8)
    for name, result in curves.items():
        if result is None:
            axes.plot([], [], label=f"{name} (no truth boxes: no FROC)")
            continue
        rates = result["fp_rates"]
        fp, sensitivity = np.asarray(result["curve"]["fp_per_image"]), np.asarray(result["curve"]["sensitivity"])
        # extend the last point to the right edge so a method with few false positives stays visible
        fp, sensitivity = np.r_[fp, max(rates[-1], fp[-1])], np.r_[sensitivity, sensitivity[-1]]
        axes.step(np.clip(fp, rates[0] / 2, None), sensitivity, where="post",
                  label=f"{name} (mean sens. {result['mean_sensitivity']:.3f})")
    axes.set_xscale("log", base=2)
    axes.set(xlim=(rates[0] / 2, rates[-1] * 2), ylim=(0, 1.02), xlabel="false positives per image",
             ylabel="lesion sensitivity", title="FROC (hit = box centre inside a truth box)")
    axes.set_xticks(list(rates), [rate_label(r) for r in rates])
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    _save(figure, path)


def _draw_boxes(axes, boxes: np.ndarray, colour: str) -> None:
    for x1, y1, x2, y2 in boxes:
        # boxes are in continuous pixel coordinates; imshow puts pixel centres on integers
        axes.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=1.2))


def _draw_panel(axes, panel: OverlayPanel) -> None:
    heat = panel.heatmap
    span = float(heat.max() - heat.min())
    heat = (heat - heat.min()) / span if span > 0 else np.zeros_like(heat)
    colours = colormaps["jet"](heat)
    colours[..., 3] = _HEAT_ALPHA * heat
    axes.imshow(panel.image, cmap="gray", interpolation="nearest")
    axes.imshow(colours, interpolation="nearest")
    _draw_boxes(axes, panel.truth_boxes, "lime")
    _draw_boxes(axes, panel.predicted_boxes, "red")
    axes.set_title(panel.caption, fontsize=7)


def plot_overlays(panels: Mapping[str, Sequence[OverlayPanel]], path: str | os.PathLike) -> None:
    """Grid of overlays, one row per group (best, worst, random): image grey, map jet (transparent where low),
    truth boxes green, predicted boxes red."""
    groups = [g for g in GROUPS if panels.get(g)]
    columns = max([len(panels[g]) for g in groups], default=1)
    figure = Figure(figsize=(2.6 * columns, 2.9 * max(1, len(groups))))
    if not groups:
        figure.text(0.5, 0.5, "no disease image with truth to show", ha="center", va="center")
    for row, group in enumerate(groups):
        for column, panel in enumerate(panels[group]):
            axes = figure.add_subplot(len(groups), columns, row * columns + column + 1)
            _draw_panel(axes, panel)
            axes.set_xticks([])
            axes.set_yticks([])
            if column == 0:
                axes.set_ylabel(group, fontsize=10)
    figure.suptitle("map (jet), truth boxes (green), predicted boxes (red)", fontsize=9)
    figure.tight_layout()
    _save(figure, path)
