"""The MRML scene one run builds: the heat-map volume, the lesion segmentation with its terminology, the box ROIs.

Only MRML, Segmentations, Markups and Terminologies classes and ``slicer.util``'s array helpers are used, so the
same code runs in the Slicer application and against the ``slicer-core`` wheel, where
``Testing/test_slicer_scene.py`` checks it with real nodes. What needs the application (slice views, layouts, the
colour files of the Colors module, the DICOM database and exporter) stays in ``PilletGAN.py``.

Not imported by the package's ``__init__``: the rest of ``PilletGANModuleLib`` imports without Slicer.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import slicer
import vtk

from .results import InferenceOutputs, box_roi_geometry

__all__ = [
    "BOXES_OF_ATTRIBUTE",
    "HEATMAP_COLOR_NODE_ID",
    "HEATMAP_REFERENCE_ROLE",
    "HEATMAP_VISIBLE_FROM",
    "MIN_COMPONENT_ATTRIBUTE",
    "SEGMENT_ID_ATTRIBUTE",
    "SceneNodes",
    "build_scene",
    "load_terminology_context",
    "set_segment_mask",
]

#: The heat map's colour table: the Inferno table Slicer's Colors module loads from its colour files.
HEATMAP_COLOR_NODE_ID = "vtkMRMLColorTableNodeFileInferno.txt"
#: Heat below this level is transparent in the slice views.
HEATMAP_VISIBLE_FROM = 0.05
#: Node attribute / reference names that tie the outputs of one run together (saved with the scene).
SEGMENT_ID_ATTRIBUTE = "PilletGAN.SegmentID"
MIN_COMPONENT_ATTRIBUTE = "PilletGAN.MinComponentFraction"
BOXES_OF_ATTRIBUTE = "PilletGAN.BoxesOf"
HEATMAP_REFERENCE_ROLE = "PilletGANHeatmap"


@dataclasses.dataclass
class SceneNodes:
    """The nodes one run fills."""

    segmentation: object
    heatmap: object
    boxes: list


def load_terminology_context(terminologies_logic, path: str | os.PathLike) -> str:
    """Load the lesion's terminology context (``PilletGAN.term.json``) into Slicer's Terminologies logic, once;
    returns its context name.

    Raises:
        RuntimeError: the logic cannot read the file.
    """
    with open(path, encoding="utf-8") as handle:
        name = json.load(handle)["SegmentationCategoryTypeContextName"]
    if not terminologies_logic.IsTerminologyContextLoaded(name) and not terminologies_logic.LoadContextFromFile(
            str(path)):
        raise RuntimeError(f"Slicer could not load the terminology context {path}")
    return name


def _update_heatmap(scene, input_volume, outputs: InferenceOutputs, heatmap_node):
    if heatmap_node is None:
        heatmap_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode",
                                               scene.GenerateUniqueName(f"{input_volume.GetName()} heat map"))
    ijk_to_ras = vtk.vtkMatrix4x4()
    input_volume.GetIJKToRASMatrix(ijk_to_ras)
    heatmap_node.SetIJKToRASMatrix(ijk_to_ras)
    heatmap_node.SetAndObserveTransformNodeID(input_volume.GetTransformNodeID())
    slicer.util.updateVolumeFromArray(heatmap_node, outputs.heatmap[np.newaxis].astype(np.float32))
    heatmap_node.SetAttribute(MIN_COMPONENT_ATTRIBUTE, repr(outputs.min_component_fraction))
    heatmap_node.CreateDefaultDisplayNodes()
    display = heatmap_node.GetDisplayNode()
    display.SetAndObserveColorNodeID(HEATMAP_COLOR_NODE_ID)
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, 1.0)
    display.AutoThresholdOff()
    display.SetLowerThreshold(HEATMAP_VISIBLE_FROM)
    display.SetUpperThreshold(1.0)
    display.ApplyThresholdOn()
    return heatmap_node


def set_segment_mask(segmentation_node, segment_id: str, mask: np.ndarray, reference_volume) -> None:
    """Replace the segment's voxels by ``mask`` (``rows x cols``) on ``reference_volume``'s grid.

    The mask becomes an oriented image with the volume's IJK-to-RAS matrix, set into the segment by the
    Segmentations logic (no temporary label-map node, so no application module is needed).
    """
    from vtk.util import numpy_support

    rows, columns = mask.shape
    labelmap = slicer.vtkOrientedImageData()
    labelmap.SetDimensions(columns, rows, 1)
    labelmap.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars())[:] = mask.astype(np.uint8).ravel()
    ijk_to_ras = vtk.vtkMatrix4x4()
    reference_volume.GetIJKToRASMatrix(ijk_to_ras)
    labelmap.SetImageToWorldMatrix(ijk_to_ras)
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    if not logic.SetBinaryLabelmapToSegment(labelmap, segmentation_node, segment_id, logic.MODE_REPLACE,
                                            labelmap.GetExtent()):
        raise RuntimeError(f"Slicer could not set the lesion mask into segment {segment_id}")


def _update_segmentation(scene, input_volume, outputs: InferenceOutputs, segmentation_node, heatmap_node):
    if segmentation_node is None:
        segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode",
                                                    scene.GenerateUniqueName(f"{input_volume.GetName()} lesion"))
    segmentation_node.CreateDefaultDisplayNodes()
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(input_volume)
    segmentation_node.SetAndObserveTransformNodeID(input_volume.GetTransformNodeID())
    segmentation = segmentation_node.GetSegmentation()
    segment_id = segmentation_node.GetAttribute(SEGMENT_ID_ATTRIBUTE)
    if not segment_id or segmentation.GetSegment(segment_id) is None:
        segment_id = segmentation.AddEmptySegment("", outputs.segment.name, list(outputs.segment.color))
    segment = segmentation.GetSegment(segment_id)
    segment.SetName(outputs.segment.name)
    segment.SetColor(*outputs.segment.color)
    if outputs.segment.terminology:
        segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), outputs.segment.terminology)
    segmentation_node.SetAttribute(SEGMENT_ID_ATTRIBUTE, segment_id)
    segmentation_node.SetNodeReferenceID(HEATMAP_REFERENCE_ROLE, heatmap_node.GetID())
    set_segment_mask(segmentation_node, segment_id, outputs.mask, heatmap_node)
    return segmentation_node


def _update_boxes(scene, input_volume, outputs: InferenceOutputs, segmentation_node) -> list:
    """One locked Markups ROI per lesion box, replacing the boxes of an earlier run on the same segmentation."""
    earlier = [scene.GetNthNodeByClass(i, "vtkMRMLMarkupsROINode")
               for i in range(scene.GetNumberOfNodesByClass("vtkMRMLMarkupsROINode"))]
    for roi in earlier:
        if roi.GetAttribute(BOXES_OF_ATTRIBUTE) == segmentation_node.GetID():
            scene.RemoveNode(roi)
    ijk_to_ras = vtk.vtkMatrix4x4()
    input_volume.GetIJKToRASMatrix(ijk_to_ras)
    ijk_to_ras_array = slicer.util.arrayFromVTKMatrix(ijk_to_ras)
    box_nodes = []
    for index, box in enumerate(outputs.boxes, start=1):
        centre, size, axes = box_roi_geometry(box, ijk_to_ras_array)
        roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", f"{segmentation_node.GetName()} box {index}")
        roi.CreateDefaultDisplayNodes()
        orientation = vtk.vtkMatrix4x4()
        for row in range(3):
            for column in range(3):
                orientation.SetElement(row, column, float(axes[row, column]))
        roi.SetAndObserveObjectToNodeMatrix(orientation)
        roi.SetCenter(centre.tolist())
        roi.SetSize(size.tolist())
        roi.SetAndObserveTransformNodeID(input_volume.GetTransformNodeID())
        roi.SetLocked(True)
        if box.get("score") is not None:
            roi.SetDescription(f"score {float(box['score']):.3f}")
        roi.SetAttribute(BOXES_OF_ATTRIBUTE, segmentation_node.GetID())
        roi.GetDisplayNode().SetSelectedColor(*outputs.segment.color)
        roi.GetDisplayNode().SetFillOpacity(0.0)
        box_nodes.append(roi)
    return box_nodes


def build_scene(scene, input_volume, outputs: InferenceOutputs, segmentation_node=None, heatmap_node=None
                ) -> SceneNodes:
    """Put one run's heat map, lesion segment and boxes into ``scene`` on ``input_volume``'s geometry.

    The heat map is a float volume with ``input_volume``'s IJK-to-RAS matrix and the Inferno colour table; the
    segment carries the outputs' name, colour and terminology entry; each box is a locked ROI in RAS. Existing
    ``segmentation_node`` / ``heatmap_node`` are refilled (nodes are created when ``None``).

    Raises:
        ValueError: the outputs do not have the radiograph's pixel grid.
    """
    expected = tuple(slicer.util.arrayFromVolume(input_volume).shape[1:])
    if outputs.heatmap.shape != expected:
        raise ValueError(f"The results have {outputs.heatmap.shape} pixels but the radiograph has {expected}.")
    heatmap_node = _update_heatmap(scene, input_volume, outputs, heatmap_node)
    segmentation_node = _update_segmentation(scene, input_volume, outputs, segmentation_node, heatmap_node)
    return SceneNodes(segmentation_node, heatmap_node, _update_boxes(scene, input_volume, outputs, segmentation_node))
