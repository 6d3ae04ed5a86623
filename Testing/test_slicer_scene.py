"""The Slicer module's scene building with real MRML classes, from the ``slicer-core`` wheel (``pip install -e .[slicer]``).

``PilletGANModuleLib.scene.build_scene`` runs here exactly as in the Slicer application, on a volume Slicer's own
archetype storage node reads from a real DICOM file and on result files the library writes for it: the heat-map
volume and its colour node, the lesion segment's voxels and terminology (resolved by Slicer's Terminologies logic
from the shipped ``PilletGAN.term.json``), the geometry of each node against the radiograph's IJK-to-RAS matrix,
the box ROIs, and the ``.seg.nrrd`` round trip in both directions (Slicer's segmentation storage node reads the
library's file; the library's reader reads the file Slicer writes).

What only the full application can test (``PilletGANTest`` in ``PilletGAN/PilletGAN.py``, run by ``ctest`` inside
Slicer): the panel (Qt widgets, the parameter node wrapper), slice-view layers and fitting, the Inferno colour table
that the Colors module loads from Slicer's colour files (the wheel ships none, so this test adds a colour node under
the same ID), the DICOM database and the QuantitativeReporting DICOM SEG exporter, the DICOM-module loading of the
radiograph (here the archetype reader stands in), and the CLI run through ``PythonSlicer``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("PILLETGAN_REQUIRE_SLICER_CORE"):  # the CI stage that installed the wheel: no skipping
    import slicer_core  # noqa: F401
else:
    pytest.importorskip("slicer_core", reason="the slicer-core wheel is not installed: pip install -e '.[slicer]'")

import slicer
import vtk
from conftest import REPO_ROOT
from dicom_factory import JPEG_BASELINE, JPEG_SPACING_MM

from PilletGANLib import load_cxr
from PilletGANLib.inference import LesionBox, LesionResult
from PilletGANLib.localization import Calibration
from PilletGANLib.outputs import slicer_terminology_entry, write_result_files
from PilletGANLib.outputs.terminology import LESION_CATEGORY, LESION_REGION, LESION_TYPE, TERMINOLOGY_FILE

sys.path.insert(0, str(REPO_ROOT / "PilletGAN"))
from PilletGANModuleLib import load_inference_outputs, terminology_file
from PilletGANModuleLib.scene import (
    HEATMAP_COLOR_NODE_ID,
    HEATMAP_VISIBLE_FROM,
    SEGMENT_ID_ATTRIBUTE,
    build_scene,
    load_terminology_context,
)

#: Importing slicer-core takes seconds: out of the fast tier.
pytestmark = pytest.mark.slow

#: A DICOM CR radiograph, JPEG baseline, with Pixel Spacing (the project-made sample corpus of ``dicom_factory``).
RADIOGRAPH = JPEG_BASELINE


def segment_mask(segmentation_node, segment_id: str, volume) -> np.ndarray:
    """The segment's voxels as a ``rows x cols`` mask on ``volume``'s grid, read from the segment's own binary
    labelmap after checking that its image-to-world matrix is the volume's IJK-to-RAS matrix."""
    from vtk.util import numpy_support

    labelmap = slicer.vtkOrientedImageData()
    segmentation_node.GetBinaryLabelmapRepresentation(segment_id, labelmap)
    image_to_world = vtk.vtkMatrix4x4()
    labelmap.GetImageToWorldMatrix(image_to_world)
    np.testing.assert_allclose(slicer.util.arrayFromVTKMatrix(image_to_world), matrix(volume), atol=1e-9)
    rows, columns = slicer.util.arrayFromVolume(volume).shape[1:]
    mask = np.zeros((rows, columns), dtype=bool)
    x0, x1, y0, y1, z0, z1 = labelmap.GetExtent()
    if x1 < x0:  # an empty segment
        return mask
    assert z0 == z1 == 0
    voxels = numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars()).reshape(y1 - y0 + 1, x1 - x0 + 1)
    mask[y0 : y1 + 1, x0 : x1 + 1] = voxels > 0
    return mask


def matrix(node) -> np.ndarray:
    """A node's IJK-to-RAS matrix as an array."""
    values = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(values)
    return slicer.util.arrayFromVTKMatrix(values)


@pytest.fixture
def scene():
    """A real MRML scene with the node classes of the Segmentations, Markups and Colors modules registered."""
    mrml = slicer.vtkMRMLScene()
    slicer.mrmlScene = mrml  # slicer.util's helpers use the global scene, as in the application
    mrml.AddNode(slicer.vtkMRMLSelectionNode())  # the application's singleton, which the Markups logic uses
    logics = [logic() for logic in (slicer.vtkSlicerSegmentationsModuleLogic, slicer.vtkSlicerMarkupsLogic)]
    for logic in logics:
        logic.SetMRMLScene(mrml)
    inferno = slicer.vtkMRMLColorTableNode()  # what the Colors module loads from ColorFiles/Inferno.txt
    inferno.SetTypeToUser()
    inferno.SetNumberOfColors(256)
    inferno.SetSingletonTag("FileInferno.txt")
    mrml.AddNode(inferno)
    yield mrml
    for logic in logics:
        logic.SetMRMLScene(None)
    mrml.Clear(True)


@pytest.fixture
def radiograph(scene, dicom_dir: Path):
    """The radiograph as Slicer reads it: a scalar volume node filled by the archetype storage node (ITK / GDCM)."""
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "radiograph")
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(dicom_dir / RADIOGRAPH))
    storage.SetSingleFile(True)
    assert storage.ReadData(volume), "Slicer could not read the DICOM file"
    return volume


@pytest.fixture
def results(tmp_path: Path, dicom_dir: Path, radiograph):
    """The files ``pilletgan infer`` writes for the radiograph (a heat blob, its mask and box), and the module's
    reading of them."""
    image, meta = load_cxr(dicom_dir / RADIOGRAPH)
    assert image.shape == slicer.util.arrayFromVolume(radiograph).shape[1:]
    rows, cols = np.mgrid[: image.shape[0], : image.shape[1]]
    height, width = image.shape
    heatmap = np.exp(-(((rows - 0.6 * height) / (0.09 * height)) ** 2
                     + ((cols - 0.3 * width) / (0.07 * width)) ** 2)).astype(np.float32)
    mask = heatmap >= 0.4
    ys, xs = np.nonzero(mask)
    box = LesionBox(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1), 0.9, int(mask.sum()))
    result = LesionResult(image=image, healed=image, difference=heatmap, heatmap=heatmap, score=0.73,
                          calibration=Calibration(threshold=0.4), mask=mask, boxes=[box], meta=meta)
    write_result_files(result, tmp_path, "input", extra={"min_component_fraction": 0.001})
    return tmp_path, load_inference_outputs(tmp_path)


def test_scene_from_a_real_dicom(scene, radiograph, results) -> None:
    _, outputs = results
    nodes = build_scene(scene, radiograph, outputs)
    volume_matrix = matrix(radiograph)
    np.testing.assert_allclose(np.diag(volume_matrix)[:2], [-JPEG_SPACING_MM, -JPEG_SPACING_MM])  # LPS file, RAS scene

    # heat map: a float volume on the radiograph's grid, Inferno, transparent below the visible level
    np.testing.assert_array_equal(matrix(nodes.heatmap), volume_matrix)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(nodes.heatmap)[0], outputs.heatmap)
    display = nodes.heatmap.GetDisplayNode()
    assert display.GetColorNodeID() == HEATMAP_COLOR_NODE_ID and display.GetColorNode() is not None
    assert display.GetApplyThreshold() and display.GetLowerThreshold() == pytest.approx(HEATMAP_VISIBLE_FROM)
    assert (display.GetWindowLevelMin(), display.GetWindowLevelMax()) == (0.0, 1.0)

    # lesion segment: voxels, name, colour, terminology, geometry
    segment_id = nodes.segmentation.GetAttribute(SEGMENT_ID_ATTRIBUTE)
    segment = nodes.segmentation.GetSegmentation().GetSegment(segment_id)
    assert segment.GetName() == "Lesion"
    np.testing.assert_allclose(segment.GetColor(), outputs.segment.color, atol=1e-6)
    voxels = segment_mask(nodes.segmentation, segment_id, radiograph)  # also checks the geometry
    np.testing.assert_array_equal(voxels, outputs.mask)
    assert int(voxels.sum()) == int(outputs.mask.sum()) > 100

    tag = vtk.reference("")
    assert segment.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), tag)
    assert str(tag) == slicer_terminology_entry()
    terminologies = slicer.vtkSlicerTerminologiesModuleLogic()
    assert load_terminology_context(terminologies, terminology_file(REPO_ROOT / "PilletGAN")) == \
        str(tag).split("~")[0]
    entry = slicer.vtkSlicerTerminologyEntry()
    assert terminologies.DeserializeTerminologyEntry(str(tag), entry)
    assert (entry.GetCategoryObject().GetCodingSchemeDesignator(), entry.GetCategoryObject().GetCodeValue(),
            entry.GetCategoryObject().GetCodeMeaning()) == tuple(LESION_CATEGORY)
    assert (entry.GetTypeObject().GetCodingSchemeDesignator(), entry.GetTypeObject().GetCodeValue(),
            entry.GetTypeObject().GetCodeMeaning()) == tuple(LESION_TYPE)
    assert entry.GetRegionObject().GetCodeValue() == LESION_REGION.value
    assert terminologies.GetNumberOfTypesInTerminologyCategory(entry.GetTerminologyContextName(),
                                                               entry.GetCategoryObject()) == 1

    # one locked ROI per box, centred on the box in RAS, with the box's size in mm
    (roi,) = nodes.boxes
    (box,) = outputs.boxes
    centre = [0.0, 0.0, 0.0]
    roi.GetCenter(centre)
    ijk = [(box["x1"] + box["x2"]) / 2 - 0.5, (box["y1"] + box["y2"]) / 2 - 0.5, 0.0, 1.0]
    np.testing.assert_allclose(centre, (volume_matrix @ ijk)[:3], atol=1e-6)
    np.testing.assert_allclose(roi.GetSize()[:2], [JPEG_SPACING_MM * (box["x2"] - box["x1"]),
                                                   JPEG_SPACING_MM * (box["y2"] - box["y1"])], atol=1e-6)
    assert roi.GetLocked() and roi.GetAttribute("PilletGAN.BoxesOf") == nodes.segmentation.GetID()

    # a second run on the same nodes replaces the boxes and the segment, not adds to them
    again = build_scene(scene, radiograph, outputs, nodes.segmentation, nodes.heatmap)
    assert scene.GetNumberOfNodesByClass("vtkMRMLMarkupsROINode") == 1 and again.heatmap is nodes.heatmap
    assert nodes.segmentation.GetSegmentation().GetNumberOfSegments() == 1


def test_seg_nrrd_round_trip_between_the_library_and_slicer(scene, radiograph, results, tmp_path: Path) -> None:
    folder, outputs = results
    (library_file,) = folder.glob("*.seg.nrrd")
    # Slicer reads the library's .seg.nrrd onto the radiograph's geometry, with the segment's terminology
    loaded = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "from the library")
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(library_file))
    assert storage.ReadData(loaded)
    (segment_id,) = [loaded.GetSegmentation().GetNthSegmentID(i)
                     for i in range(loaded.GetSegmentation().GetNumberOfSegments())]
    segment = loaded.GetSegmentation().GetSegment(segment_id)
    tag = vtk.reference("")
    assert segment.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), tag) and str(tag) == slicer_terminology_entry()
    np.testing.assert_array_equal(segment_mask(loaded, segment_id, radiograph), outputs.mask)

    # the module's segmentation, written by Slicer, reads back in Slicer and in the library's reader
    nodes = build_scene(scene, radiograph, outputs)
    written = tmp_path / "slicer" / "lesion.seg.nrrd"
    written.parent.mkdir()
    writer = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    writer.SetFileName(str(written))
    assert writer.WriteData(nodes.segmentation)
    import slicerio

    segmentation = slicerio.read_segmentation(str(written))
    (segment_info,) = segmentation["segments"]
    assert segment_info["name"] == "Lesion"
    assert slicerio.segmentation.terminology_entry_to_string(segment_info["terminology"]) == slicer_terminology_entry()
    voxels = slicerio.extract_segments(segmentation, [(segment_info["name"], 1)])["voxels"]
    assert int((voxels > 0).sum()) == int(outputs.mask.sum())
    # map every written voxel back to the radiograph's pixel: the file may be cropped to the segment's extent
    ijk_to_lps = np.asarray(segmentation["ijkToLPS"])
    ijk = np.argwhere(voxels > 0).T
    ras = (ijk_to_lps[:3, :3] @ ijk + ijk_to_lps[:3, 3:4]) * np.array([[-1.0], [-1.0], [1.0]])
    pixel = np.linalg.inv(matrix(radiograph)) @ np.vstack([ras, np.ones(ras.shape[1])])
    back = np.zeros_like(outputs.mask)
    back[np.rint(pixel[1]).astype(int), np.rint(pixel[0]).astype(int)] = True
    np.testing.assert_array_equal(back, outputs.mask)
    assert TERMINOLOGY_FILE.is_file()
