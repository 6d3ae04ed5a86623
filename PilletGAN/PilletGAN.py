"""PilletGAN 3D Slicer module: localize pneumonia on a chest radiograph, show it as a heat map and a lesion segment.

The model runs out of process: the logic hands the radiograph to ``pilletgan infer`` (the ``PilletGANLib`` CLI run
by ``PythonSlicer``), streams its log into the panel, and loads the files it writes. Everything that does not need
Slicer lives in ``PilletGANModuleLib`` and is tested with pytest.
"""

import dataclasses
import importlib
import importlib.util
import logging
import os
import pathlib
import shutil
import time
from typing import Annotated

import numpy as np
import slicer
import vtk
from PilletGANModuleLib import (
    DEVICES,
    LIBRARY_PACKAGE,
    InferenceOutputs,
    OutputPump,
    SegmentInfo,
    build_infer_command,
    cli_prefix,
    find_library_root,
    library_postprocess,
    load_inference_outputs,
    model_argument,
    no_downgrade_constraints,
    read_requirements,
    start_process,
    stop_process_tree,
    subprocess_environment,
    terminology_file,
    unmet_requirements,
)
from PilletGANModuleLib.scene import (
    HEATMAP_REFERENCE_ROLE,
    MIN_COMPONENT_ATTRIBUTE,
    SEGMENT_ID_ATTRIBUTE,
    SceneNodes,
    build_scene,
    load_terminology_context,
    set_segment_mask,
)
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

MODULE_DIR = os.path.dirname(os.path.abspath(__file__))
REQUIREMENTS_PATH = os.path.join(MODULE_DIR, "Resources", "requirements.txt")
MINIMUM_TORCH = "2.8"

HELP_TEXT = """
Localizes pneumonia on a chest radiograph with PILLET-GAN: the model "heals" the image and the difference
between the image and its healed twin is shown as a heat map, a lesion segment and boxes, with a detection score.
Press <b>Apply</b>; move <b>Mask threshold</b> to re-threshold the heat map into the segment without running the
model again; <b>Export DICOM SEG</b> stores the segment with Slicer's DICOM SEG exporter.
<br><br><b>Limits.</b> Research use only, not for clinical use or diagnosis. The model was trained on adult
frontal (PA/AP) chest radiographs; lateral views, children, other modalities and other diseases are outside what it
was trained for, and its output there is meaningless. The heat map shows where the image differs from a healthy
one; it is not a delineation of the lesion, and the mask is that map thresholded at a level calibrated on healthy
images, so it is coarse and can mark devices, markers or bone. The score ranks images; it is not a probability.
On public data the opacity boxes are generous: a fixed lung-field prior already points inside them two times in
three, so judge the maps against that floor (see the project documentation).
"""

ACKNOWLEDGEMENT_TEXT = """
PilletGAN is an open implementation of PILLET-GAN (Fixed-Point GAN with lesion traversal attention) built on
MONAI, PyTorch, pydicom, highdicom, SimpleITK and slicerio. The module follows the design of the
SlicerTotalSegmentator and SlicerMONAIAuto3DSeg extensions.
"""


class PilletGAN(ScriptedLoadableModule):
    """Module metadata."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("PilletGAN")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["PilletGAN contributors"]
        self.parent.helpText = _(HELP_TEXT)
        self.parent.acknowledgementText = _(ACKNOWLEDGEMENT_TEXT)


@parameterNodeWrapper
class PilletGANParameterNode:
    """Panel state saved with the scene.

    inputVolume: the radiograph. modelPath: model file, empty for the shipped model (a ``str`` bound by hand, because
    a ``pathlib.Path`` parameter would show an empty path as "."). device: where the model runs.
    threshold: heat-map level of the lesion mask. heatmapOpacity: opacity of the heat-map layer.
    outputSegmentation / outputHeatmap: where the results go (created on Apply when empty).
    """

    inputVolume: vtkMRMLScalarVolumeNode
    modelPath: str = ""
    device: Annotated[str, Choice(list(DEVICES))] = "auto"
    threshold: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    heatmapOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.6
    outputSegmentation: vtkMRMLSegmentationNode
    outputHeatmap: vtkMRMLScalarVolumeNode


@dataclasses.dataclass
class PilletGANNodes:
    """The nodes one run fills."""

    segmentation: vtkMRMLSegmentationNode
    heatmap: vtkMRMLScalarVolumeNode
    boxes: list
    outputs: InferenceOutputs


class PilletGANWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._running = False
        self._shownThreshold = None
        self._shownOpacity = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/PilletGAN.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = PilletGANLogic()
        self.logic.logCallback = self.addLog

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.modelPathLineEdit.connect("currentPathChanged(QString)", self.onModelPathChanged)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.exportDicomSegButton.connect("clicked(bool)", self.onExportDicomSegButton)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.logic.cancel()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
            self._shownThreshold = self._parameterNode.threshold
            self._shownOpacity = self._parameterNode.heatmapOpacity
            self.onParameterNodeModified()

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        """Keep buttons in step with the parameters; re-threshold or re-blend when the sliders move."""
        parameters = self._parameterNode
        if parameters is None:
            return
        if self.ui.modelPathLineEdit.currentPath != parameters.modelPath:
            self.ui.modelPathLineEdit.currentPath = parameters.modelPath
        self.ui.applyButton.enabled = bool(parameters.inputVolume) and not self._running
        self.ui.applyButton.toolTip = _("Localize pneumonia on the radiograph.") if parameters.inputVolume else _(
            "Select a radiograph.")
        self.ui.cancelButton.enabled = self._running
        hasResult = self.logic.isPilletGANSegmentation(parameters.outputSegmentation)
        self.ui.exportDicomSegButton.enabled = hasResult and not self._running
        if self._running:
            return
        if parameters.threshold != self._shownThreshold:
            self._shownThreshold = parameters.threshold
            if hasResult:
                with slicer.util.tryWithErrorDisplay(_("Could not re-threshold the heat map.")):
                    self.showMaskSummary(self.logic.applyThreshold(parameters.outputSegmentation, parameters.threshold))
        if parameters.heatmapOpacity != self._shownOpacity:
            self._shownOpacity = parameters.heatmapOpacity
            if parameters.outputHeatmap:
                slicer.util.setSliceViewerLayers(foreground=parameters.outputHeatmap,
                                                 foregroundOpacity=parameters.heatmapOpacity)

    def onModelPathChanged(self, path: str) -> None:
        if self._parameterNode is not None:
            self._parameterNode.modelPath = path

    def addLog(self, text: str) -> None:
        self.ui.logTextEdit.appendPlainText(text)

    def showMaskSummary(self, maskPixels: int) -> None:
        self.ui.maskSummaryLabel.text = _("{pixels} pixels").format(pixels=maskPixels)

    def setRunning(self, running: bool) -> None:
        self._running = running
        self.onParameterNodeModified()

    def onApplyButton(self) -> None:
        parameters = self._parameterNode
        self.ui.logTextEdit.clear()
        self.ui.scoreValueLabel.text = "-"
        with slicer.util.tryWithErrorDisplay(_("PilletGAN could not process the radiograph."), waitCursor=False):
            self.logic.setupPythonRequirements()
            self.setRunning(True)
            try:
                nodes = self.logic.process(parameters.inputVolume, parameters.outputSegmentation,
                                           parameters.outputHeatmap, modelPath=parameters.modelPath,
                                           device=parameters.device, opacity=parameters.heatmapOpacity)
            finally:
                self.setRunning(False)
            if nodes is None:
                return
            threshold = min(1.0, max(0.0, nodes.outputs.threshold))
            self._shownThreshold = threshold
            with slicer.util.NodeModify(parameters):
                parameters.outputSegmentation = nodes.segmentation
                parameters.outputHeatmap = nodes.heatmap
                parameters.threshold = threshold
            score = nodes.outputs.score
            self.ui.scoreValueLabel.text = "-" if score is None else f"{score:.3f}"
            self.showMaskSummary(int(nodes.outputs.mask.sum()))
            self.addLog(_("Done: {boxes} lesion box(es).").format(boxes=len(nodes.boxes)))

    def onCancelButton(self) -> None:
        self.logic.cancel()

    def onExportDicomSegButton(self) -> None:
        parameters = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("DICOM SEG export failed."), waitCursor=True):
            folder = self.logic.exportDicomSegmentation(parameters.outputSegmentation, parameters.inputVolume)
            self.addLog(_("DICOM SEG written to {folder} and added to the DICOM database.").format(folder=folder))


class PilletGANLogic(ScriptedLoadableModuleLogic):
    """Runs PilletGAN on a volume node and shows the results; usable without the GUI."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.logCallback = None
        self.pollIntervalSeconds = 0.05
        self._cancelRequested = False

    def getParameterNode(self):
        return PilletGANParameterNode(super().getParameterNode())

    def log(self, text: str) -> None:
        logging.info(text)
        if self.logCallback:
            self.logCallback(text)

    # Dependencies -----------------------------------------------------------------------------------------

    def setupPythonRequirements(self, askConfirmation: bool = True) -> None:
        """Get torch through the PyTorch extension, then the packages of ``Resources/requirements.txt``.

        Packages Slicer ships are never downgraded: pip runs with constraints ``name>=installed version``.
        """
        self._ensureTorch(askConfirmation)
        requirements = read_requirements(REQUIREMENTS_PATH)
        if not unmet_requirements(requirements):
            return
        folder = slicer.util.tempDirectory(key="PilletGAN-pip")
        try:
            constraintsPath = os.path.join(folder, "constraints.txt")
            with open(constraintsPath, "w", encoding="utf-8") as handle:
                handle.write("\n".join(no_downgrade_constraints()) + "\n")
            self._installRequirements(requirements, constraintsPath, askConfirmation)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        importlib.invalidate_caches()
        stillMissing = unmet_requirements(requirements)
        if stillMissing:
            raise RuntimeError(_("These Python packages are still missing: {packages}. Restart Slicer and try again, "
                                 "or install them from the Python console.").format(packages=", ".join(stillMissing)))

    def _installRequirements(self, requirements, constraintsPath: str, askConfirmation: bool) -> None:
        """Install with Slicer's ``pip_ensure`` where it exists (it asks, shows progress, offers a restart),
        otherwise ask here and use ``slicer.util.pip_install`` for the unmet requirements only."""
        slicerPackaging = self._slicerPackaging()
        if slicerPackaging is not None:
            from packaging.requirements import Requirement

            slicerPackaging.pip_ensure([Requirement(r) for r in requirements], constraints=constraintsPath,
                                       prompt_install=askConfirmation, requester="PilletGAN")
            return
        missing = unmet_requirements(requirements)
        if askConfirmation and not slicer.util.confirmOkCancelDisplay(
                _("PilletGAN needs these Python packages, which will now be downloaded and installed "
                  "(this can take a few minutes):") + "\n\n" + "\n".join(missing), _("Install Python packages")):
            raise RuntimeError(_("Installation of the Python packages PilletGAN needs was cancelled."))
        self.log(_("Installing: {packages}").format(packages=", ".join(missing)))
        slicer.util.pip_install(["-c", constraintsPath, *missing])

    @staticmethod
    def _slicerPackaging():
        """Slicer's ``pip_ensure`` module (``slicer.packaging``, earlier ``slicer.pydeps``), or None before it existed."""
        for name in ("slicer.packaging", "slicer.pydeps"):
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            if hasattr(module, "pip_ensure"):
                return module
        return None

    def _ensureTorch(self, askConfirmation: bool) -> None:
        try:
            import PyTorchUtils
        except ModuleNotFoundError as err:
            raise RuntimeError(_("PilletGAN needs the PyTorch extension: install 'PyTorch' from the Extensions "
                                 "Manager and restart Slicer.")) from err
        torchLogic = PyTorchUtils.PyTorchUtilsLogic()
        if not torchLogic.torchInstalled():
            self.log(_("Installing PyTorch (this can take several minutes)..."))
            if torchLogic.installTorch(askConfirmation=askConfirmation,
                                       torchVersionRequirement=f">={MINIMUM_TORCH}") is None:
                raise RuntimeError(_("PilletGAN needs PyTorch, which was not installed."))
        elif unmet_requirements([f"torch>={MINIMUM_TORCH}"]):
            raise RuntimeError(_("PilletGAN needs PyTorch {version} or newer: update it in the 'PyTorch Util' module "
                                 "with the version requirement '>={version}'.").format(version=MINIMUM_TORCH))

    # Inference --------------------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Ask the running :meth:`process` to stop the CLI process and return ``None``."""
        self._cancelRequested = True

    def process(self, inputVolume, outputSegmentation=None, outputHeatmap=None, modelPath=None, device="auto",
                opacity=0.6):
        """Run ``pilletgan infer`` on ``inputVolume`` and show the results; ``None`` if cancelled.

        Args:
            inputVolume: a single-slice scalar volume (the radiograph).
            outputSegmentation: segmentation node to fill; created when ``None``.
            outputHeatmap: scalar volume node to fill; created when ``None``.
            modelPath: model file; empty or ``None`` uses the model shipped with PilletGAN.
            device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
            opacity: opacity of the heat-map layer.
        """
        self._checkInput(inputVolume, outputHeatmap)
        model = model_argument(modelPath)
        started = time.time()
        folder = slicer.util.tempDirectory(key="PilletGAN")
        try:
            inputFile = self._writeInputFile(inputVolume, folder)
            outputFolder = os.path.join(folder, "results")
            prefix, libraryRoot = self._cliPrefix()
            command = build_infer_command(prefix, inputFile, outputFolder, model_path=model, device=device)
            environment = slicer.util.startupEnvironment()
            environment.update(subprocess_environment(libraryRoot, environment.get("PYTHONPATH")))
            returnCode = self.runCommand(command, environment)
            if returnCode is None:
                self.log(_("Cancelled."))
                return None
            if returnCode != 0:
                raise RuntimeError(_("pilletgan infer failed (exit code {code}); see the log in the panel.").format(
                    code=returnCode))
            outputs = load_inference_outputs(outputFolder)
            nodes = self.showOutputs(inputVolume, outputs, outputSegmentation, outputHeatmap, opacity)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.log(_("Finished in {seconds:.1f} s.").format(seconds=time.time() - started))
        return nodes

    @staticmethod
    def _checkInput(inputVolume, outputHeatmap) -> None:
        if inputVolume is None or inputVolume.GetImageData() is None:
            raise ValueError(_("Select a radiograph (a scalar volume with image data)."))
        dimensions = inputVolume.GetImageData().GetDimensions()
        if dimensions[2] != 1:
            raise ValueError(_("'{name}' has {slices} slices; PilletGAN needs one 2D radiograph.").format(
                name=inputVolume.GetName(), slices=dimensions[2]))
        if outputHeatmap is not None and outputHeatmap is inputVolume:
            raise ValueError(_("The heat map cannot be written into the input radiograph; choose another volume."))

    def _writeInputFile(self, inputVolume, folder: str) -> str:
        """The source DICOM file when the volume came from the DICOM database (so the library applies the
        modality/VOI LUT and MONOCHROME1 inversion itself), otherwise the voxels written to a temporary NRRD."""
        uids = (inputVolume.GetAttribute("DICOM.instanceUIDs") or "").split()
        if len(uids) == 1 and slicer.dicomDatabase:
            dicomFile = slicer.dicomDatabase.fileForInstance(uids[0])
            if dicomFile and os.path.isfile(dicomFile):
                self.log(_("Input: {file} (from the DICOM database)").format(file=dicomFile))
                return dicomFile
        path = os.path.join(folder, "input.nrrd")
        storageNode = slicer.mrmlScene.CreateNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
        try:
            storageNode.SetFileName(path)
            storageNode.UseCompressionOff()
            if not storageNode.WriteData(inputVolume):
                raise RuntimeError(_("Could not write the radiograph to {path}.").format(path=path))
        finally:
            storageNode.UnRegister(None)
        return path

    @staticmethod
    def _cliPrefix():
        """How to start the CLI and which folder to put on PYTHONPATH for it."""
        python = shutil.which("PythonSlicer")
        if not python:
            raise RuntimeError(_("PythonSlicer was not found; PilletGAN must run inside 3D Slicer."))
        libraryRoot = find_library_root(MODULE_DIR)
        if libraryRoot is not None or importlib.util.find_spec(LIBRARY_PACKAGE) is not None:
            return cli_prefix(python), libraryRoot
        consoleScript = shutil.which("pilletgan")
        if consoleScript:
            return cli_prefix(python, consoleScript), None
        raise RuntimeError(_("The PilletGANLib library was found neither next to the module nor in Slicer's Python. "
                             "Reinstall the PilletGAN extension."))

    def runCommand(self, command, environment):
        """Run ``command``, stream its output into the log, keep the GUI responsive; exit code, or None if cancelled."""
        self._cancelRequested = False
        self.log(_("Running: {command}").format(command=" ".join(command)))
        process = start_process(command, environment)
        pump = OutputPump(process)
        try:
            while not pump.finished or process.poll() is None:
                for line in pump.drain():
                    self.log(line)
                if self._cancelRequested:
                    stop_process_tree(process)
                    pump.join(timeout=5.0)
                    for line in pump.drain():
                        self.log(line)
                    return None
                slicer.app.processEvents()
                time.sleep(self.pollIntervalSeconds)
        finally:
            if process.poll() is None:
                stop_process_tree(process)
        for line in pump.drain():
            self.log(line)
        return process.returncode

    # Results ----------------------------------------------------------------------------------------------

    def showOutputs(self, inputVolume, outputs: InferenceOutputs, segmentationNode=None, heatmapNode=None,
                    opacity: float = 0.6) -> PilletGANNodes:
        """Put one run's heat map, lesion segment and boxes into the scene on ``inputVolume``'s geometry
        (:func:`PilletGANModuleLib.scene.build_scene`) and show the heat map over the radiograph."""
        load_terminology_context(slicer.modules.terminologies.logic(), terminology_file(MODULE_DIR))
        try:
            nodes: SceneNodes = build_scene(slicer.mrmlScene, inputVolume, outputs, segmentationNode, heatmapNode)
        except ValueError as err:
            raise ValueError(_("The results do not have the radiograph's pixel grid: {error}").format(error=err)) from err
        slicer.util.setSliceViewerLayers(background=inputVolume, foreground=nodes.heatmap, foregroundOpacity=opacity,
                                         fit=True)
        return PilletGANNodes(nodes.segmentation, nodes.heatmap, nodes.boxes, outputs)

    @staticmethod
    def isPilletGANSegmentation(segmentationNode) -> bool:
        """True when ``segmentationNode`` holds a lesion segment and heat map from a PilletGAN run."""
        if segmentationNode is None:
            return False
        segmentId = segmentationNode.GetAttribute(SEGMENT_ID_ATTRIBUTE)
        return bool(segmentId and segmentationNode.GetSegmentation().GetSegment(segmentId)
                    and segmentationNode.GetNodeReference(HEATMAP_REFERENCE_ROLE))

    def applyThreshold(self, segmentationNode, threshold: float) -> int:
        """Re-threshold the run's heat map into its lesion segment; returns the number of lesion pixels."""
        if not self.isPilletGANSegmentation(segmentationNode):
            raise ValueError(_("This segmentation was not made by PilletGAN (or its heat map was deleted)."))
        heatmapNode = segmentationNode.GetNodeReference(HEATMAP_REFERENCE_ROLE)
        fraction = float(heatmapNode.GetAttribute(MIN_COMPONENT_ATTRIBUTE) or 0.0)
        mask = library_postprocess(MODULE_DIR).clean_mask(slicer.util.arrayFromVolume(heatmapNode)[0], threshold,
                                                          fraction)
        set_segment_mask(segmentationNode, segmentationNode.GetAttribute(SEGMENT_ID_ATTRIBUTE), mask, heatmapNode)
        return int(mask.sum())

    # Export -----------------------------------------------------------------------------------------------

    def exportDicomSegmentation(self, segmentationNode, referenceVolume, outputFolder=None) -> str:
        """Export ``segmentationNode`` with Slicer's DICOM SEG exporter and import the result into the DICOM database.

        The radiograph must come from the DICOM database (the SEG references its study, series and instance).
        """
        if not self.isPilletGANSegmentation(segmentationNode):
            raise ValueError(_("Run PilletGAN first: there is no lesion segmentation to export."))
        if referenceVolume is None or not referenceVolume.GetAttribute("DICOM.instanceUIDs"):
            raise ValueError(_("DICOM SEG export needs a radiograph loaded from the DICOM database."))
        try:
            import DICOMSegmentationPlugin
        except ImportError as err:
            raise RuntimeError(_("Slicer's DICOM SEG exporter is missing: install the QuantitativeReporting "
                                 "extension.")) from err
        from DICOMLib import DICOMUtils

        shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
        studyItem = shNode.GetItemParent(shNode.GetItemByDataNode(referenceVolume))
        segmentationItem = shNode.GetItemByDataNode(segmentationNode)
        shNode.SetItemParent(segmentationItem, studyItem)
        exporter = DICOMSegmentationPlugin.DICOMSegmentationPluginClass()
        exportables = exporter.examineForExport(segmentationItem)
        if not exportables:
            raise RuntimeError(_("The DICOM SEG exporter cannot export this segmentation."))
        folder = outputFolder or slicer.util.tempDirectory(key="PilletGAN-DICOM-SEG")
        for exportable in exportables:
            exportable.directory = folder
        exporter.export(exportables)
        if not DICOMUtils.importDicom(folder, copyFiles=True):
            raise RuntimeError(_("The DICOM SEG was written to {folder} but could not be added to the DICOM "
                                 "database.").format(folder=folder))
        return folder


#: Terminology of the lesion segment as PilletGANLib writes it (PilletGANLib.outputs.terminology).
TEST_TERMINOLOGY = ("PilletGAN - pneumonia opacity~SCT^49755003^Morphologically Abnormal "
                    "Structure~DCM^112001^Opacity~^^~Anatomic codes - DICOM master list~SCT^39607008^Lung~^^")


class PilletGANTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (``slicer_add_python_unittest``): the logic on a test-made radiograph.

    ``test_ShowOutputs`` needs no model; ``test_Inference`` runs the CLI with the model given by the environment
    variable ``PILLETGAN_TEST_MODEL`` (default: the shipped model) and needs torch in Slicer's Python.
    """

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_ShowOutputs()
        self.setUp()
        self.test_Inference()

    @staticmethod
    def syntheticRadiograph(rows: int = 256, columns: int = 224):
        """A test-made chest radiograph: bright body, two dark lung fields, a bright opacity in the right lung."""
        r, c = np.mgrid[:rows, :columns]
        image = np.full((rows, columns), 900.0)
        for centreColumn in (0.3 * columns, 0.7 * columns):
            lung = ((r - 0.5 * rows) / (0.33 * rows)) ** 2 + ((c - centreColumn) / (0.14 * columns)) ** 2 <= 1.0
            image[lung] = 250.0
        opacity = ((r - 0.6 * rows) / (0.08 * rows)) ** 2 + ((c - 0.3 * columns) / (0.06 * columns)) ** 2 <= 1.0
        image[opacity] = 600.0
        volume = slicer.util.addVolumeFromArray(image[np.newaxis].astype(np.int16), name="PilletGANTest radiograph")
        volume.SetSpacing(0.4, 0.3, 1.0)
        volume.SetOrigin(-12.0, 30.0, 5.0)
        return volume

    @staticmethod
    def syntheticOutputs(volume) -> InferenceOutputs:
        """Hand-made results for ``volume``: a Gaussian heat blob in the right lung, its mask at 0.5 and its box."""
        rows, columns = slicer.util.arrayFromVolume(volume).shape[1:]
        r, c = np.mgrid[:rows, :columns]
        heatmap = np.exp(-(((r - 0.6 * rows) / 20.0) ** 2 + ((c - 0.3 * columns) / 15.0) ** 2)).astype(np.float32)
        mask = heatmap >= 0.5
        ys, xs = np.nonzero(mask)
        box = {"x1": float(xs.min()), "y1": float(ys.min()), "x2": float(xs.max() + 1), "y2": float(ys.max() + 1),
               "score": 1.0}
        return InferenceOutputs(
            record={"score": 0.8, "threshold": 0.5, "min_component_fraction": 0.0}, heatmap=heatmap, mask=mask,
            segment=SegmentInfo("Lesion", (0.902, 0.2, 0.102), TEST_TERMINOLOGY),
            folder=pathlib.Path(slicer.app.temporaryPath), boxes=[box])

    def test_ShowOutputs(self):
        """Results land on the radiograph's geometry with the segment's terminology; the threshold re-thresholds."""
        self.delayDisplay("Showing hand-made results")
        volume = self.syntheticRadiograph()
        outputs = self.syntheticOutputs(volume)
        heatmap = outputs.heatmap
        logic = PilletGANLogic()
        nodes = logic.showOutputs(volume, outputs)

        self.assertEqual(nodes.heatmap.GetSpacing(), volume.GetSpacing())
        self.assertEqual(nodes.heatmap.GetOrigin(), volume.GetOrigin())
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(nodes.heatmap)[0], heatmap)
        segmentId = nodes.segmentation.GetAttribute(SEGMENT_ID_ATTRIBUTE)
        segment = nodes.segmentation.GetSegmentation().GetSegment(segmentId)
        self.assertEqual(segment.GetName(), "Lesion")
        tag = vtk.reference("")
        self.assertTrue(segment.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), tag))
        self.assertEqual(str(tag), TEST_TERMINOLOGY)
        labelmap = slicer.util.arrayFromSegmentBinaryLabelmap(nodes.segmentation, segmentId, volume)
        np.testing.assert_array_equal(labelmap[0] > 0, heatmap >= 0.5)

        self.assertEqual(len(nodes.boxes), 1)
        box = outputs.boxes[0]
        centre = [0.0, 0.0, 0.0]
        nodes.boxes[0].GetCenter(centre)
        expected = [0.0, 0.0, 0.0, 1.0]
        ijkToRas = vtk.vtkMatrix4x4()
        volume.GetIJKToRASMatrix(ijkToRas)
        ijkToRas.MultiplyPoint([(box["x1"] + box["x2"]) / 2 - 0.5, (box["y1"] + box["y2"]) / 2 - 0.5, 0.0, 1.0],
                               expected)
        np.testing.assert_allclose(centre, expected[:3], atol=1e-6)

        pixels = logic.applyThreshold(nodes.segmentation, 0.1)
        self.assertEqual(pixels, int((heatmap >= 0.1).sum()))
        self.assertGreater(pixels, int((heatmap >= 0.5).sum()))
        self.delayDisplay("Test passed")

    def test_Inference(self):
        """The whole logic on a test-made radiograph: a heat map volume and a non-empty lesion segment appear."""
        self.delayDisplay("Running PilletGAN on a test-made radiograph")
        volume = self.syntheticRadiograph()
        logic = PilletGANLogic()
        logic.setupPythonRequirements(askConfirmation=False)
        nodes = logic.process(volume, modelPath=os.environ.get("PILLETGAN_TEST_MODEL"), device="cpu")
        self.assertIsNotNone(nodes)
        heatmap = slicer.util.arrayFromVolume(nodes.heatmap)
        self.assertEqual(heatmap.shape, slicer.util.arrayFromVolume(volume).shape)
        self.assertGreaterEqual(float(heatmap.min()), 0.0)
        self.assertLessEqual(float(heatmap.max()), 1.0)
        # An untrained or tiny model may leave the calibrated mask empty: the lowest heat level keeps every pixel.
        pixels = logic.applyThreshold(nodes.segmentation, float(heatmap.min()))
        self.assertGreater(pixels, 0)
        segmentId = nodes.segmentation.GetAttribute(SEGMENT_ID_ATTRIBUTE)
        labelmap = slicer.util.arrayFromSegmentBinaryLabelmap(nodes.segmentation, segmentId, volume)
        self.assertGreater(int(labelmap.sum()), 0)
        self.delayDisplay("Test passed")
