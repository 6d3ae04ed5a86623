"""Render ``docs/figures/slicer_panel.png`` from the MRML scene the PilletGAN Slicer module builds.

3D Slicer itself cannot run on the machines this project is built on, so this is not a screen capture: the
sample study's phantom radiograph (made by the project, no patient data) is read by Slicer's own DICOM reader
and the shipped model's results are put into a real MRML scene by ``PilletGANModuleLib.scene.build_scene``, both
from the ``slicer-core`` wheel; matplotlib then draws what the red slice view and the panel show from those
nodes: the radiograph, the heat map above its visible level in the Inferno colours at the panel's default
opacity, the lesion segment's outline, the box ROIs, and the panel's score and settings.

    pip install -e ".[slicer]"
    python docs/figures/render_slicer_panel.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import slicer
import vtk
from matplotlib.patches import Rectangle
from vtk.util import numpy_support

from PilletGANLib.demo.study import write_sample_study
from PilletGANLib.inference import Predictor
from PilletGANLib.outputs import write_result_files

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "PilletGAN"))
from PilletGANModuleLib import load_inference_outputs  # noqa: E402
from PilletGANModuleLib.scene import SEGMENT_ID_ATTRIBUTE, build_scene  # noqa: E402

OUT = Path(__file__).with_name("slicer_panel.png")
OPACITY = 0.6  # the panel's default heat-map opacity


def ijk_to_ras(node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def segment_mask(segmentation_node, segment_id: str, shape: tuple[int, int]) -> np.ndarray:
    """The segment's binary labelmap on the radiograph's grid (the module builds it on that grid)."""
    labelmap = slicer.vtkOrientedImageData()
    segmentation_node.GetBinaryLabelmapRepresentation(segment_id, labelmap)
    mask = np.zeros(shape, dtype=bool)
    x0, x1, y0, y1, _, _ = labelmap.GetExtent()
    if x1 >= x0:
        voxels = numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars()).reshape(y1 - y0 + 1, x1 - x0 + 1)
        mask[y0 : y1 + 1, x0 : x1 + 1] = voxels > 0
    return mask


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="pilletgan-screenshot-"))
    study = write_sample_study(work / "export", work / "truth")
    predictor = Predictor.from_path(None, device="cpu")
    result = predictor.predict_path(study.dicom_path)
    write_result_files(result, work / "results", "input",
                       extra={"min_component_fraction": predictor.localizer.recipe.min_component_fraction})
    outputs = load_inference_outputs(work / "results")

    scene = slicer.vtkMRMLScene()
    slicer.mrmlScene = scene
    scene.AddNode(slicer.vtkMRMLSelectionNode())
    logics = [logic() for logic in (slicer.vtkSlicerSegmentationsModuleLogic, slicer.vtkSlicerMarkupsLogic)]
    for logic in logics:
        logic.SetMRMLScene(scene)
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "sample study")
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(study.dicom_path))
    storage.SetSingleFile(True)
    if not storage.ReadData(volume):
        raise SystemExit(f"Slicer could not read {study.dicom_path}")
    nodes = build_scene(scene, volume, outputs)

    image = slicer.util.arrayFromVolume(volume)[0].astype(np.float32)
    heat = slicer.util.arrayFromVolume(nodes.heatmap)[0]
    display = nodes.heatmap.GetDisplayNode()
    visible_from = display.GetLowerThreshold()
    segment_id = nodes.segmentation.GetAttribute(SEGMENT_ID_ATTRIBUTE)
    segment = nodes.segmentation.GetSegmentation().GetSegment(segment_id)
    mask = segment_mask(nodes.segmentation, segment_id, image.shape)
    ras_to_ijk = np.linalg.inv(ijk_to_ras(volume))

    figure = plt.figure(figsize=(11.0, 6.4), dpi=100, facecolor="#2b2b2b")
    view = figure.add_axes((0.0, 0.0, 0.62, 1.0))
    low, high = np.percentile(image, [0.5, 99.5])
    view.imshow(image, cmap="gray", vmin=low, vmax=high, interpolation="bilinear")
    view.imshow(np.ma.masked_less(heat, visible_from), cmap="inferno", vmin=0.0, vmax=1.0, alpha=OPACITY,
                interpolation="bilinear")
    if mask.any():
        view.contour(mask.astype(float), levels=[0.5], colors=[segment.GetColor()], linewidths=1.5)
    for roi in nodes.boxes:
        bounds = [0.0] * 6
        roi.GetRASBounds(bounds)
        corners = np.array([[bounds[0], bounds[2], bounds[4], 1.0], [bounds[1], bounds[3], bounds[4], 1.0]])
        ijk = (ras_to_ijk @ corners.T)[:2]
        x0, x1 = sorted(ijk[0])
        y0, y1 = sorted(ijk[1])
        view.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="#f4e04d", linewidth=1.2))
    view.set_axis_off()
    view.text(0.015, 0.95, "R", color="#f0c040", fontsize=12, fontweight="bold", transform=view.transAxes)

    panel = figure.add_axes((0.62, 0.0, 0.38, 1.0))
    panel.set_facecolor("#3c3c3c")
    panel.set_axis_off()
    lines = [
        ("PilletGAN", 15, "bold"),
        ("Input volume:  sample study", 11, "normal"),
        ("Model:  shipped (models/model.pt)", 11, "normal"),
        ("Device:  cpu", 11, "normal"),
        (f"Mask threshold:  {outputs.threshold:.3f}", 11, "normal"),
        (f"Heat-map opacity:  {OPACITY:.2f}", 11, "normal"),
        ("", 11, "normal"),
        (f"Detection score:  {outputs.score:.3f}", 12, "bold"),
        (f"Lesion mask:  {int(mask.sum())} pixels", 11, "normal"),
        (f"Done: {len(nodes.boxes)} lesion box(es).", 11, "normal"),
        ("", 11, "normal"),
        (f"Segment '{segment.GetName()}'", 11, "normal"),
        ("  SCT 49755003 Morphologically Abnormal Structure", 9, "normal"),
        ("  DCM 112001 Opacity, in SCT 39607008 Lung", 9, "normal"),
        ("", 11, "normal"),
        ("Rendered from the module's MRML nodes with", 9, "italic"),
        ("slicer-core + matplotlib: not an application", 9, "italic"),
        ("screen capture. Project-made phantom image.", 9, "italic"),
        ("Research use only.", 9, "italic"),
    ]
    y = 0.94
    for text, size, weight in lines:
        panel.text(0.06, y, text, color="#e8e8e8", fontsize=size, fontweight="bold" if weight == "bold" else "normal",
                   fontstyle="italic" if weight == "italic" else "normal", transform=panel.transAxes)
        y -= 0.05 if text else 0.025
    figure.savefig(OUT, facecolor=figure.get_facecolor())
    for logic in logics:
        logic.SetMRMLScene(None)
    print(OUT)


if __name__ == "__main__":
    main()
