"""Report files of an evaluation: ``metrics.json``, ``per_image.csv`` and ``index.html``.

Every file is written to a temporary name in its folder and renamed when complete.
"""

from __future__ import annotations

import csv
import html
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..outputs import json_ready
from ..text import csv_cell
from .accumulator import LATERALITY_SUBSETS, ImageScores

__all__ = ["PerImageCSV", "atomic_output", "rate_label", "write_index", "write_json"]

#: Metric rows of the HTML table: (key in the metrics dict, label, what it measures).
_TABLE_ROWS = (
    ("detection_auc", "Detection ROC AUC", "image score, disease vs healthy (all images)"),
    ("pointing_game", "Pointing game", "map maximum inside the truth (disease images with truth)"),
    ("pixel_auroc", "Pixel AUROC", "all pixels of disease images with truth, pooled"),
    ("dice", "Dice (mask)", "predicted mask vs truth; n/a without a mask"),
    ("iou", "IoU (mask)", "predicted mask vs truth; n/a without a mask"),
    ("dice_top15", "Dice (top 15 %)", "map's top 15 % of pixels vs truth"),
    ("rsna_map", "RSNA mAP", "predicted boxes, IoU 0.40-0.75 (all images)"),
    ("froc", "FROC mean sensitivity", "box centre inside a truth box; 1/8 to 8 FP per image"),
    ("laterality_mass", "Laterality (mass)", "half with more map mass is the sick half (truth in one half only)"),
    ("laterality_peak", "Laterality (peak)", "half with the higher maximum is the sick half (truth in one half only)"),
)


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` when the block completes, else delete it."""
    path = Path(path)
    tmp = _tmp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(data: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``data`` as indented JSON (NaN refused; paths and other objects as strings)."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(json_ready(data), indent=2, allow_nan=False, default=str) + "\n", encoding="utf-8")
    return Path(path)


class PerImageCSV:
    """``per_image.csv`` written row by row to a temporary file, renamed by :meth:`close`."""

    COLUMNS = tuple(f.name for f in fields(ImageScores))

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._tmp = _tmp_path(self.path)
        self._handle = open(self._tmp, "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self._writer = csv.DictWriter(self._handle, fieldnames=self.COLUMNS)
        self._writer.writeheader()

    def write(self, row: ImageScores) -> None:
        values = row.to_row()
        values["pointing_hit"] = "" if row.pointing_hit is None else int(row.pointing_hit)
        values["localization_only"] = int(row.localization_only) or ""
        for subset in LATERALITY_SUBSETS.values():
            flag = getattr(row, subset.flag)
            values[subset.flag] = "" if flag is None else int(flag)
        self._writer.writerow({k: "" if v is None else csv_cell(v) for k, v in values.items()})

    def close(self, complete: bool = True) -> None:
        """Rename the finished file into place (``complete``) or delete it."""
        self._handle.close()
        if complete:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> PerImageCSV:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.close(complete=kind is None)


def rate_label(rate: float) -> str:
    """A false-positive rate as people write it: ``1/8``, ``1``, ``4``."""
    return f"{rate:g}" if rate >= 1 else f"1/{round(1 / rate)}"


def _cell(value: Any, interval: Sequence[float] | None = None) -> str:
    if isinstance(value, dict):  # FROC
        value = value.get("mean_sensitivity")
    if value is None:
        return '<td class="na" title="the data cannot give this metric">n/a</td>'
    if interval is None:
        return f"<td>{value:.3f}</td>"
    return f'<td>{value:.3f} <span class="ci">({interval[0]:.3f} to {interval[1]:.3f})</span></td>'


def _info_table(info: Mapping[str, Any]) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in info.items())
    return f"<table>{rows}</table>"


def _froc_table(methods: Mapping[str, Mapping[str, Any]]) -> str:
    results = {name: m.get("froc") for name, m in methods.items()}
    rates = next((r["fp_rates"] for r in results.values() if r), None)
    if rates is None:
        return "<p>No truth boxes: no FROC.</p>"
    head = "".join(f"<th>{rate_label(r)}</th>" for r in rates)
    rows = ""
    for name, result in results.items():
        if result:
            cells = "".join(f"<td>{s:.3f}</td>" for s in result["sensitivities"])
        else:
            cells = '<td class="na">n/a</td>' * len(rates)
        rows += f"<tr><th>{html.escape(name)}</th>{cells}</tr>"
    return f"<table><tr><th>FP per image</th>{head}</tr>{rows}</table>"


_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.7em; text-align: left; }
td { font-variant-numeric: tabular-nums; }
td.na { color: #999; }
span.ci { color: #666; font-size: 0.85em; }
.note { color: #555; font-size: 0.9em; max-width: 60em; }
figure { display: inline-block; margin: 0 1.5em 1.5em 0; vertical-align: top; }
img { max-width: 100%; border: 1px solid #ddd; }
"""

# Marks the body with how many figures decoded, so a headless browser can check the page rendered.
_IMAGES_LOADED_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images-loaded", loaded + "/" + images.length);
});
"""


def _paired_section(comparison: Mapping[str, Any] | None) -> str:
    """The model against its own location prior, image by image (``metrics["vs_model_prior"]``)."""
    if not comparison:
        return ""
    rows = []
    for key, label, _ in _TABLE_ROWS:
        entry = comparison.get(key)
        if entry is None:  # a metric the comparison does not give, or one the data cannot give
            continue
        low, high = entry["interval"]
        extra = (f"{entry['a_only']} / {entry['b_only']}, p = {entry['mcnemar_p']:.3g}" if "mcnemar_p" in entry
                 else "")
        rows.append(f"<tr><th>{html.escape(label)}</th>{_cell(entry['a'])}{_cell(entry['b'])}"
                    f"<td>{entry['difference']:+.4f}</td><td>{low:+.4f} to {high:+.4f}</td><td>{extra}</td></tr>")
    level = round(100 * float(comparison["confidence"]))
    return f"""<h2>The model against its location prior alone</h2>
<table><tr><th>metric</th><th>model</th><th>prior alone</th><th>difference</th><th>{level} % interval</th>
<th>hits only the model / only the prior (exact McNemar)</th></tr>{"".join(rows)}</table>
<p class="note">The model's map includes a learned location prior; here the prior alone is scored on the same
{comparison["images"]} images ({comparison["localized"]} with truth). Intervals: paired bootstrap,
{comparison["resamples"]} resamples. Where an interval includes 0, this data does not show that the map adds to
the prior.</p>
"""


def _interval_text(interval: Sequence[float] | None) -> str:
    return "" if interval is None else f"{interval[0]:.3f} to {interval[1]:.3f}"


def _laterality_section(methods: Mapping[str, Mapping[str, Any]]) -> str:
    """Laterality of every method beside its floors, with the count of unilateral images and intervals."""
    summaries = {name: m.get("laterality") for name, m in methods.items() if m.get("laterality")}
    first = summaries.get("model") or next(iter(summaries.values()), None)
    if not first or not first["images"]:
        return ("<h2>Laterality</h2>\n<p>No disease image has its truth in one half of the image: no laterality."
                "</p>\n")
    level = round(100 * float(first["confidence"]))
    for name, subset in LATERALITY_SUBSETS.items():
        summary = (summaries.get("model") or {}).get(name)
        if summary and summary["images"]:
            summaries = {**summaries, f"model, {subset.label} ({summary['images']} images)": summary}
    rows = "".join(
        f"<tr><th>{html.escape(name)}</th>{_cell(summary['laterality_mass'])}"
        f"<td>{_interval_text(summary['laterality_mass_interval'])}</td>{_cell(summary['laterality_peak'])}"
        f"<td>{_interval_text(summary['laterality_peak_interval'])}</td></tr>" for name, summary in summaries.items())
    return f"""<h2>Laterality</h2>
<table><tr><th>method</th><th>mass</th><th>{level} % interval</th><th>peak</th><th>{level} % interval</th></tr>
{rows}<tr><th>always the commoner side ({html.escape(str(first["majority_side"]))})</th>{_cell(first["majority_floor"])}
<td></td>{_cell(first["majority_floor"])}<td></td></tr>
<tr><th>any left-right symmetric map</th>{_cell(first["symmetric_floor"])}<td></td>{_cell(first["symmetric_floor"])}
<td></td></tr></table>
<p class="note">Over the {first["images"]} disease images whose truth lies entirely in one half of the image
({first["left"]} left, {first["right"]} right, halves of the image as displayed, split at its middle column): the
share where the half holding more of the map's mass (resp. its higher maximum) is the sick half; an exact tie counts
one half. A location prior cannot pass this test: a symmetric map scores 0.5, always answering the commoner side
scores the majority share. Dense opacity is bright, so the image's own grey levels (the grey_level floor) already
lean to the sick half on many images; where they lean to the healthy half, or where the opacity is no brighter than
the same place in the other half, a map that reads lesions rather than density still scores above 0.5. Intervals:
bootstrap over these images, {first["resamples"]} resamples.</p>
"""


def _sanity_section(sanity: Mapping[str, Any] | None) -> str:
    """The sanity checks of the map (``metrics["sanity"]``), or why there are none."""
    if not sanity:
        return ("<h2>Sanity checks</h2>\n<p>Not run (pilletgan evaluate --sanity N runs them on N images).</p>\n")
    if not sanity.get("available", True):
        return f"<h2>Sanity checks</h2>\n<p>Not available: {html.escape(str(sanity.get('reason')))}</p>\n"
    rows = ""
    for key, label in (("inverted", "grey-inverted image"), ("randomized", "randomized weights")):
        entry = sanity[key]
        rows += (f"<tr><th>{label}</th>{_cell(entry['spearman_median'])}{_cell(entry['pearson_median'])}"
                 f"<td>{entry['defined']}</td><td>{entry.get('constant', 'n/a')}</td></tr>")
    return f"""<h2>Sanity checks</h2>
<table><tr><th>the map against the map of the</th><th>median Spearman</th><th>median Pearson</th>
<th>images with a defined correlation</th><th>images where that map is constant</th></tr>{rows}</table>
<p class="note">Adebayo et al. 2018, "Sanity checks for saliency maps": on {sanity["images"]} images
({sanity["disease"]} disease first, then healthy, chosen with seed {sanity["seed"]}), the correlation of the map with
the map of the same image with its grey levels inverted (the network input negated, everything else the same), and
with the map of the same network with randomized weights (re-initialized with seed
{sanity["randomization_seed"]}). A map that reads the image changes with both: correlations near 1 say the map
shows where lesions usually are, or the image's edges, not what the network found. A constant map has no
correlation: a map that vanishes when the weights are randomized passes that check. Time: {sanity["seconds"]:.0f} s.
</p>
"""


def write_index(metrics: Mapping[str, Any], figures: Sequence[tuple[str, str]], path: str | os.PathLike) -> Path:
    """Write ``index.html``: the metrics of the model beside the floors, counts, and the figures.

    ``figures`` are ``(file name relative to the page, caption)``.
    """
    methods = {"model": metrics, **metrics.get("floors", {})}
    head = "".join(f"<th>{html.escape(name)}</th>" for name in methods)
    rows = "".join(
        f'<tr><th title="{html.escape(hint)}">{html.escape(label)}</th>'
        f'{"".join(_cell(m.get(key), (m.get("intervals") or {}).get(key)) for m in methods.values())}</tr>'
        for key, label, hint in _TABLE_ROWS)
    images = "".join(
        f'<figure><img src="{html.escape(name)}" alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}'
        "</figcaption></figure>" for name, caption in figures)
    page = f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>PilletGAN evaluation</title><style>{_STYLE}</style></head>
<body>
<h1>PilletGAN evaluation</h1>
<h2>Metrics</h2>
<table><tr><th>metric</th>{head}</tr>{rows}</table>
<p class="note">Floors are scored by the same code as the model: a smooth random map and a fixed two-lung prior
(two Gaussians over the usual lung positions). Their mask is their top 15 % of pixels and their boxes its connected
components, so their Dice equals their Dice (top 15 %). A model localizes only where it beats the lung prior.
Truth: the manifest's pixel mask where it gives one, else its boxes. In brackets: bootstrap 95 % intervals over the
images (detection AUC: disease and healthy images resampled separately). Localization-only images (counts below) enter
the map's rows and laterality, not detection AUC, RSNA mAP or FROC. n/a: the data cannot give the metric.
Definitions: docs/metrics.md.</p>
{_laterality_section(methods)}{_sanity_section(metrics.get("sanity"))}
{_paired_section(metrics.get("vs_model_prior"))}<h2>FROC sensitivity</h2>
{_froc_table(methods)}
<h2>Counts</h2>
{_info_table(metrics.get("counts", {}))}
<h2>Model</h2>
{_info_table(metrics.get("model", {}))}
<h2>Data</h2>
{_info_table(metrics.get("data", {}))}
<h2>Figures</h2>
{images}
<script>{_IMAGES_LOADED_SCRIPT}</script>
</body>
</html>
"""
    with atomic_output(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return Path(path)
