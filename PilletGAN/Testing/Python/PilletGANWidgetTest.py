"""Slicer-side test of the PilletGAN panel: widgets bound to the parameter node, sliders acting on the results.

Runs inside Slicer only (``slicer_add_python_unittest``); needs no model and no torch.
"""

import unittest

import numpy as np
import slicer
from PilletGANModuleLib import DEVICES

from PilletGAN import SEGMENT_ID_ATTRIBUTE, PilletGANTest


class PilletGANWidgetTest(unittest.TestCase):
    def setUp(self):
        slicer.mrmlScene.Clear()
        slicer.util.selectModule("PilletGAN")
        self.widget = slicer.modules.pilletgan.widgetRepresentation().self()
        self.parameters = self.widget.logic.getParameterNode()

    def test_device_choices_and_apply_button(self):
        combo = self.widget.ui.deviceComboBox
        self.assertEqual([combo.itemText(i) for i in range(combo.count)], list(DEVICES))
        self.parameters.inputVolume = None
        self.assertFalse(self.widget.ui.applyButton.enabled)
        self.parameters.inputVolume = PilletGANTest.syntheticRadiograph()
        self.assertTrue(self.widget.ui.applyButton.enabled)
        self.assertFalse(self.widget.ui.cancelButton.enabled)

    def test_model_path_follows_the_parameter_node_both_ways(self):
        self.assertEqual(self.widget.ui.modelPathLineEdit.currentPath, "")
        self.parameters.modelPath = "/models/pilletgan.pt"
        self.assertEqual(self.widget.ui.modelPathLineEdit.currentPath, "/models/pilletgan.pt")
        self.widget.ui.modelPathLineEdit.currentPath = "/models/other.pt"
        self.assertEqual(self.parameters.modelPath, "/models/other.pt")
        self.parameters.modelPath = ""

    def test_sliders_rethreshold_and_blend(self):
        volume = PilletGANTest.syntheticRadiograph()
        outputs = PilletGANTest.syntheticOutputs(volume)
        self.parameters.inputVolume = volume
        nodes = self.widget.logic.showOutputs(volume, outputs)
        self.parameters.outputSegmentation = nodes.segmentation
        self.parameters.outputHeatmap = nodes.heatmap
        self.assertTrue(self.widget.ui.exportDicomSegButton.enabled)

        self.widget.ui.thresholdSliderWidget.value = 0.1
        self.assertAlmostEqual(self.parameters.threshold, 0.1)
        segment_id = nodes.segmentation.GetAttribute(SEGMENT_ID_ATTRIBUTE)
        labelmap = slicer.util.arrayFromSegmentBinaryLabelmap(nodes.segmentation, segment_id, volume)
        np.testing.assert_array_equal(labelmap[0] > 0, outputs.heatmap >= 0.1)
        self.assertIn(str(int((outputs.heatmap >= 0.1).sum())), self.widget.ui.maskSummaryLabel.text)

        self.widget.ui.opacitySliderWidget.value = 0.25
        composite_node = slicer.app.layoutManager().sliceWidget("Red").sliceLogic().GetSliceCompositeNode()
        self.assertEqual(composite_node.GetForegroundVolumeID(), nodes.heatmap.GetID())
        self.assertAlmostEqual(composite_node.GetForegroundOpacity(), 0.25)
