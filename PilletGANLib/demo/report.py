"""The demo's ``index.html``: one self-contained page (images embedded, no external resources).

It shows the phantom with its known opacity outlined and the lesion-map peak marked, the batch's
overlay PNG, the score and boxes, the pointing-game verdict, the model, and links (relative) to
every file the demo and the batch wrote.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from ..outputs import NO_FINDING, atomic_path
from ..version import __version__

if TYPE_CHECKING:
    from .run import DemoSummary

__all__ = ["phantom_preview_png", "write_demo_index"]

#: Longest side of the embedded phantom preview.
PREVIEW_SIDE = 768
TRUTH_RGB = (40, 220, 40)
PEAK_RGB = (0, 200, 255)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
.images { display: flex; flex-wrap: wrap; gap: 1.5em; }
figure { margin: 0; flex: 1 1 480px; } figure img { width: 100%; height: auto; background: #000; }
figcaption { font-size: 0.9em; color: #555; margin-top: 0.4em; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
.hit { color: #0a7a0a; font-weight: bold; } .miss { color: #b00; font-weight: bold; }
.note { background: #fff7e0; border: 1px solid #e8d38a; padding: 0.6em 1em; }
code { background: #f3f3f3; padding: 0 0.25em; }
"""


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def phantom_preview_png(pixels: np.ndarray, truth: np.ndarray, peak_xy: tuple[int, int] | None = None,
                        max_side: int = PREVIEW_SIDE) -> bytes:
    """PNG bytes of the phantom (grey, downscaled to ``max_side``) with the truth mask outlined in green and,
    when given, the lesion-map peak marked by a cyan cross."""
    rows, cols = pixels.shape
    scale = min(1.0, max_side / max(rows, cols))
    size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
    image = pixels.astype(np.float32)
    low, high = np.percentile(image, (0.5, 99.5))
    grey = np.clip((image - low) / max(high - low, 1e-6) * 255.0, 0, 255).astype(np.uint8)
    canvas = Image.fromarray(grey).resize(size, Image.Resampling.LANCZOS).convert("RGB")
    small_truth = np.asarray(Image.fromarray(truth.astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)) > 0
    outline = small_truth & ~ndimage.binary_erosion(small_truth, iterations=max(1, round(max(size) / 400)))
    rgb = np.asarray(canvas).copy()
    rgb[outline] = TRUTH_RGB
    canvas = Image.fromarray(rgb)
    if peak_xy is not None:
        x, y = (peak_xy[0] + 0.5) * scale, (peak_xy[1] + 0.5) * scale
        arm, width = max(6, max(size) // 40), max(2, max(size) // 300)
        draw = ImageDraw.Draw(canvas)
        draw.line((x - arm, y, x + arm, y), fill=PEAK_RGB, width=width)
        draw.line((x, y - arm, x, y + arm), fill=PEAK_RGB, width=width)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def _link(path: Path, folder: Path, label: str | None = None) -> str:
    """A relative link; a long path is shown as its first folder, an ellipsis and its file name."""
    href = Path(os.path.relpath(path, folder)).as_posix()
    parts = href.split("/")
    shown = label or (href if len(parts) <= 3 else f"{parts[0]}/…/{parts[-1]}")
    return f'<a href="{html.escape(href)}">{html.escape(shown)}</a>'


def _rows(pairs: list[tuple[str, Any]]) -> str:
    return "\n".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in pairs)


def _boxes_table(boxes: list[dict[str, Any]]) -> str:
    if not boxes:
        return "<p>No box: no part of the heat map reached the threshold over a large enough area.</p>"
    head = "<tr><th>#</th><th>x1</th><th>y1</th><th>x2</th><th>y2</th><th>score</th><th>area (pixels)</th></tr>"
    body = "".join(
        f"<tr><td>{i}</td>" + "".join(f"<td>{round(float(b[k]))}</td>" for k in ("x1", "y1", "x2", "y2"))
        + f"<td>{float(b['score']):.3f}</td><td>{int(b['area_pixels'])}</td></tr>"
        for i, b in enumerate(boxes, 1))
    return f"<table>{head}{body}</table>"


def _result_section(summary: DemoSummary) -> str:
    record = summary.record
    if record is None:
        return ('<p class="miss">The batch run did not select the phantom; see '
                f'{_link(summary.batch.skipped_csv, summary.out_dir)}.</p>')
    if summary.pointing is None:
        return f'<p class="miss">The phantom could not be analysed: {html.escape(str(record.error))}</p>'
    pointing = summary.pointing
    verdict = ('<span class="hit">hit: the peak lies inside the known opacity</span>' if pointing.hit
               else '<span class="miss">miss: the peak lies outside the known opacity</span>')
    truth_box = summary.study.truth["opacity"]["box"]
    rows = [
        ("Detection score", f"{record.score:.4f} (higher: more likely pneumonia)"),
        ("Finding", html.escape(record.finding or NO_FINDING)
         + " (a research operating point, not a diagnosis)"),
        ("Heat-map threshold", f"{record.threshold:.4f} (the mask and boxes are where the heat map reaches it)"),
        ("Lesion-map peak", f"x = {pointing.peak_x}, y = {pointing.peak_y} (heat shown there {pointing.peak_heat:.3f})"),
        ("Pointing game", verdict),
        ("Known opacity", "box x1={x1}, y1={y1}, x2={x2}, y2={y2}".format(**truth_box)
         + f", {summary.study.truth['opacity']['area_pixels']} pixels, patient's {summary.study.truth['opacity']['lung']} lung"),
        ("Mask Dice vs. opacity", f"{summary.mask_dice:.3f}"),
    ]
    return f"<table>{_rows(rows)}</table>\n<h2>Boxes</h2>\n{_boxes_table(record.boxes)}"


def _images_section(summary: DemoSummary) -> str:
    peak = None if summary.pointing is None else (summary.pointing.peak_x, summary.pointing.peak_y)
    preview = phantom_preview_png(summary.study.phantom.pixels, summary.study.phantom.opacity_mask, peak)
    figures = [f'<figure><img alt="the phantom" src="{_data_uri(preview)}"><figcaption>The sample study: a synthetic '
               'chest radiograph phantom. Green: the known opacity; cyan cross: the lesion-map peak.</figcaption></figure>']
    overlay = summary.files().get("overlay")
    if overlay is not None and overlay.is_file():
        figures.append(f'<figure><img alt="PilletGAN overlay" src="{_data_uri(overlay.read_bytes())}"><figcaption>'
                       f'{_link(overlay, summary.out_dir, "overlay.png")} from the batch run: the lesion heat map and '
                       'the predicted boxes with their scores.</figcaption></figure>')
    return '<div class="images">' + "".join(figures) + "</div>"


def _files_section(summary: DemoSummary) -> str:
    labels = {"dicom": "the phantom (DICOM CR, the batch's input)", "truth_json": "ground truth (JSON)",
              "truth_mask": "ground-truth opacity mask (PNG)", "seg": "lesion mask (DICOM SEG, BINARY)",
              "heatmap_seg": "heat map (DICOM SEG, FRACTIONAL)", "overlay": "overlay (PNG)",
              "result": "result record (JSON)", "summary_csv": "batch summary (CSV)", "errors_csv": "batch errors (CSV)",
              "skipped_csv": "files the batch skipped (CSV)", "run_json": "batch run record (JSON)",
              "demo_json": "this demo's record (JSON)"}
    items = [f"<li>{html.escape(labels[kind])}: {_link(path, summary.out_dir)}</li>"
             for kind, path in summary.files().items() if kind in labels and path.exists()]
    return "<ul>" + "\n".join(items) + "</ul>"


def _model_section(summary: DemoSummary) -> str:
    model = summary.batch.model
    rows = [("Name", html.escape(str(model.get("name")))), ("Weights", html.escape(str(model.get("path")))),
            ("SHA-256", f"<code>{html.escape(str(model.get('sha256')))}</code>"),
            ("Device", html.escape(str(summary.batch.settings.get("device"))))]
    return f"<table>{_rows(rows)}</table>"


def write_demo_index(summary: DemoSummary) -> Path:
    """Write ``summary.index_html`` (temporary name, then renamed) and return its path."""
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>PilletGAN demo</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>PilletGAN demo: pneumonia localization on a synthetic chest radiograph</h1>
<p class="note">The image is a phantom drawn by PilletGAN itself, with one pneumonia-like opacity whose
position is known; no patient data is involved. PilletGAN is research software, not for clinical use.</p>
<h2>Result</h2>
{_result_section(summary)}
<h2>Images</h2>
{_images_section(summary)}
<h2>Files</h2>
{_files_section(summary)}
<h2>Model</h2>
{_model_section(summary)}
<p>Made by <code>pilletgan demo</code> (PilletGAN {html.escape(__version__)}); the files were written by the same
runner as <code>pilletgan batch</code>.</p>
</body>
</html>
"""
    with atomic_path(summary.index_html) as temporary:
        temporary.write_text(page, encoding="utf-8")
    return summary.index_html
