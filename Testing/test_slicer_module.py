"""The 3D Slicer extension, checked outside Slicer: its pure logic, the files it loads, its UI and CMake files.

What needs Slicer itself (``PilletGANTest`` in ``PilletGAN/PilletGAN.py`` and ``PilletGAN/Testing/Python``) runs
only inside Slicer; here the module file is compiled and parsed, never imported.
"""

from __future__ import annotations

import ast
import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_model
from dicom_factory import DX_8BIT, JPEG_BASELINE, SAMPLE_SHAPE

from PilletGANLib import load_cxr
from PilletGANLib.inference import LesionBox, LesionResult
from PilletGANLib.localization import Calibration
from PilletGANLib.outputs import slicer_terminology_entry, write_result_files

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "PilletGAN"
MODULE_FILE = MODULE_DIR / "PilletGAN.py"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "PilletGAN.ui"
HELPER_DIR = MODULE_DIR / "PilletGANModuleLib"
SLICER_SIDE_TEST = MODULE_DIR / "Testing" / "Python" / "PilletGANWidgetTest.py"
sys.path.insert(0, str(MODULE_DIR))

from PilletGANModuleLib import (  # noqa: E402  (the helper lives in the module folder, as in Slicer)
    SLICER_PROVIDED,
    OutputPump,
    ResultFileError,
    box_roi_geometry,
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

#: The mask rule the panel's threshold slider runs: the library's own.
clean_mask = library_postprocess(MODULE_DIR).clean_mask

EXPECTED_TERMINOLOGY = ("PilletGAN - pneumonia opacity~SCT^49755003^Morphologically Abnormal Structure"
                        "~DCM^112001^Opacity~^^~Anatomic codes - DICOM master list~SCT^39607008^Lung~^^")
QT_WIDGET_CLASSES = {"QLabel", "QComboBox", "QPushButton", "QPlainTextEdit", "QWidget", "QCheckBox", "QLineEdit"}


# --- the CLI command ---------------------------------------------------------------------------------------------


def test_infer_command_is_an_argument_list_the_cli_accepts(tmp_path: Path) -> None:
    prefix = cli_prefix("/opt/Slicer/bin/PythonSlicer")
    assert prefix == ["/opt/Slicer/bin/PythonSlicer", "-m", "PilletGANLib.cli"]
    model = tmp_path / "my model.pt"
    model.write_bytes(b"")
    command = build_infer_command(prefix, tmp_path / "in put.nrrd", tmp_path / "out", model_path=str(model),
                                  device="cuda")
    assert command == [*prefix, "infer", str(tmp_path / "in put.nrrd"), "--out", str(tmp_path / "out"),
                       "--model", str(model), "--device", "cuda"]
    assert all(isinstance(part, str) for part in command)
    assert build_infer_command(prefix, "a.dcm", "o") == [*prefix, "infer", "a.dcm", "--out", "o"]
    with pytest.raises(ValueError, match="device"):
        build_infer_command(prefix, "a.dcm", "o", device="tpu; rm -rf /")

    from PilletGANLib.cli import build_parser

    args = build_parser().parse_args(command[3:])
    assert args.command == "infer" and args.inputs == [str(tmp_path / "in put.nrrd")]
    assert args.out == tmp_path / "out" and args.model == model and args.device == "cuda"


def test_console_script_prefix() -> None:
    assert cli_prefix("PythonSlicer", "/slicer/lib/Python/bin/pilletgan") == ["PythonSlicer",
                                                                              "/slicer/lib/Python/bin/pilletgan"]
    assert cli_prefix("PythonSlicer.exe", r"C:\Slicer\Scripts\pilletgan.exe") == [r"C:\Slicer\Scripts\pilletgan.exe"]


def test_model_argument(tmp_path: Path) -> None:
    assert model_argument(None) is None
    assert model_argument("") is None
    assert model_argument(Path()) is None
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"x")
    assert model_argument(weights) == str(weights.resolve())
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        model_argument(tmp_path / "missing.pt")


def test_library_root_and_environment(tmp_path: Path) -> None:
    assert find_library_root(MODULE_DIR) == REPO
    installed = tmp_path / "qt-scripted-modules"
    (installed / "PilletGANLib").mkdir(parents=True)
    (installed / "PilletGANLib" / "__init__.py").write_text("")
    assert find_library_root(installed) == installed
    assert find_library_root(tmp_path / "elsewhere") is None

    environment = subprocess_environment(installed, "/slicer/lib/python")
    assert environment["PYTHONPATH"] == os.pathsep.join([str(installed), "/slicer/lib/python"])
    assert environment["PYTHONUNBUFFERED"] == "1" and environment["PYTHONIOENCODING"] == "utf-8"
    assert "PYTHONPATH" not in subprocess_environment(None)


# --- the files the module loads ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inference_folder(tmp_path_factory: pytest.TempPathFactory, dicom_dir: Path) -> tuple[Path, LesionResult]:
    """What ``pilletgan infer`` writes for a radiograph, made with the library's writers."""
    image, meta = load_cxr(dicom_dir / JPEG_BASELINE)
    rows, cols = np.mgrid[: image.shape[0], : image.shape[1]]
    heatmap = np.exp(-(((rows - 150) / 22.0) ** 2 + ((cols - 75) / 18.0) ** 2)).astype(np.float32)
    mask = heatmap >= 0.4
    box = LesionBox(57.0, 132.0, 93.0, 168.0, 1.0, int(mask.sum()))
    result = LesionResult(image=image, healed=image, difference=heatmap, heatmap=heatmap, score=0.73,
                          calibration=Calibration(threshold=0.4),
                          mask=mask, boxes=[box], meta=meta)
    folder = tmp_path_factory.mktemp("results")
    write_result_files(result, folder, "input", extra={"min_component_fraction": 0.001})
    return folder, result


@pytest.mark.slow
def test_load_inference_outputs_reads_what_the_library_writes(inference_folder) -> None:
    folder, result = inference_folder
    outputs = load_inference_outputs(folder)
    np.testing.assert_array_equal(outputs.heatmap, result.heatmap)
    np.testing.assert_array_equal(outputs.mask, result.mask)
    assert outputs.segment.name == "Lesion"
    assert outputs.segment.terminology == EXPECTED_TERMINOLOGY == slicer_terminology_entry()
    np.testing.assert_allclose(outputs.segment.color, (0.902, 0.2, 0.102), atol=1e-6)
    assert outputs.threshold == pytest.approx(0.4) and outputs.score == pytest.approx(0.73)
    assert outputs.min_component_fraction == pytest.approx(0.001)
    assert outputs.boxes[0]["x1"] == 57.0 and outputs.boxes[0]["y2"] == 168.0


@pytest.mark.slow
def test_load_inference_outputs_reports_broken_results(inference_folder, tmp_path: Path) -> None:
    folder, _ = inference_folder
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / ".input.json.0123.partial.json").write_text("{")  # a hidden partial file is ignored
    assert load_inference_outputs(broken).heatmap.shape == SAMPLE_SHAPE
    (broken / "input.seg.nrrd").unlink()
    with pytest.raises(ResultFileError, match="missing"):
        load_inference_outputs(broken)
    record = json.loads((broken / "input.json").read_text())
    record["files"]["seg_nrrd"] = "../../etc/passwd"
    (broken / "input.json").write_text(json.dumps(record))
    with pytest.raises(ResultFileError, match="plain"):
        load_inference_outputs(broken)
    (broken / "other.json").write_text("{}")
    with pytest.raises(ResultFileError, match="found 2"):
        load_inference_outputs(broken)


# --- re-thresholding and boxes -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_panel_thresholds_with_the_librarys_mask_rule_without_torch() -> None:
    """No copy of the mask rule in the module: it imports :mod:`PilletGANLib.postprocess`, which loads neither
    torch nor MONAI into Slicer's process."""
    import PilletGANLib.postprocess

    assert library_postprocess(MODULE_DIR) is PilletGANLib.postprocess
    assert not [p for p in HELPER_DIR.glob("*.py") if "ndimage" in p.read_text(encoding="utf-8")]
    code = ("import sys; from PilletGANModuleLib import library_postprocess; import numpy as np; "
            "mask = library_postprocess(sys.argv[1]).clean_mask(np.eye(4, dtype=np.float32), 0.5); "
            "assert mask.sum() == 4, mask; "
            "bad = {'torch', 'monai', 'pydicom', 'slicer'} & {m.split('.')[0] for m in sys.modules}; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code, str(MODULE_DIR)], cwd=MODULE_DIR, check=True, timeout=120,
                   env={**os.environ, "PYTHONPATH": str(MODULE_DIR)})


def test_threshold_heatmap_removes_small_components() -> None:
    heatmap = np.zeros((10, 10), dtype=np.float32)
    heatmap[0, 0:2] = 0.9  # 2 pixels
    heatmap[5:8, 5:8] = 0.7  # 9 pixels
    heatmap[2, 2] = heatmap[3, 3] = 0.95  # diagonal neighbours: two 1-pixel components (4-connectivity)
    assert clean_mask(heatmap, 0.5).sum() == 13
    assert clean_mask(heatmap, 0.5, 0.05).sum() == 9  # components under 5 pixels dropped
    assert not clean_mask(heatmap, 0.99).any()


def test_box_roi_geometry_follows_the_volume_geometry() -> None:
    box = {"x1": 10.0, "y1": 20.0, "x2": 30.0, "y2": 60.0}
    centre, size, axes = box_roi_geometry(box, np.eye(4))
    np.testing.assert_allclose(centre, (19.5, 39.5, 0.0))
    np.testing.assert_allclose(size, (20.0, 40.0, 1.0))
    np.testing.assert_allclose(axes, np.eye(3))

    ijk_to_ras = np.array([[-0.3, 0.0, 0.0, 100.0], [0.0, 0.0, 2.5, -4.0], [0.0, -0.4, 0.0, 50.0], [0, 0, 0, 1]])
    centre, size, axes = box_roi_geometry(box, ijk_to_ras)
    np.testing.assert_allclose(centre, (ijk_to_ras @ [19.5, 39.5, 0.0, 1.0])[:3])
    np.testing.assert_allclose(size, (6.0, 16.0, 2.5))
    np.testing.assert_allclose(axes, [[-1, 0, 0], [0, 0, 1], [0, -1, 0]])


# --- the child process -------------------------------------------------------------------------------------------


def test_process_output_is_streamed_and_exit_code_kept() -> None:
    script = "import sys\nfor i in range(3):\n    print(f'line {i}', flush=True)\nprint('oops', file=sys.stderr)\nsys.exit(3)"
    process = start_process([sys.executable, "-c", script], dict(os.environ))
    pump = OutputPump(process)
    lines = []
    deadline = time.time() + 30
    while (not pump.finished or process.poll() is None) and time.time() < deadline:
        lines += pump.drain()
        time.sleep(0.01)
    lines += pump.drain()
    assert process.returncode == 3
    assert lines[:3] == ["line 0", "line 1", "line 2"] and "oops" in lines


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="checks /proc")
def test_stop_process_tree_kills_the_launcher_and_its_child() -> None:
    # Like PythonSlicer: a launcher process that starts the real interpreter as its child.
    launcher = textwrap.dedent("""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        print(child.pid, flush=True)
        time.sleep(120)
    """)
    process = start_process([sys.executable, "-c", launcher], dict(os.environ))
    child_pid = int(process.stdout.readline())
    started = time.time()
    assert stop_process_tree(process) is not None
    assert time.time() - started < 10

    def alive(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        return state not in ("Z", "X")

    deadline = time.time() + 5
    while alive(child_pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not alive(child_pid), "the interpreter started by the launcher survived Cancel"


# --- dependencies --------------------------------------------------------------------------------------------------


def test_requirements_file_never_touches_what_slicer_ships() -> None:
    from packaging.requirements import Requirement

    requirements = [Requirement(r) for r in read_requirements(MODULE_DIR / "Resources" / "requirements.txt")]
    names = {r.name.lower() for r in requirements}
    assert not names & {p.lower() for p in SLICER_PROVIDED}, "torch and Slicer's own packages must not be listed"
    for requirement in requirements:
        assert all(spec.operator in (">=", "<") for spec in requirement.specifier), f"pinned: {requirement}"

    # Every runtime dependency of PilletGANLib (except torch, what Slicer ships, and tools the module never runs) is listed.
    setup_tree = ast.parse((REPO / "setup.py").read_text())
    install_requires = next(node.value for node in ast.walk(setup_tree)
                            if isinstance(node, ast.keyword) and node.arg == "install_requires")
    runtime = {Requirement(ast.literal_eval(item)).name.lower() for item in install_requires.elts}
    not_used_in_slicer = {"tensorboard", "fire"}  # training logs; the `python -m monai.bundle` command line
    missing = runtime - names - {p.lower() for p in SLICER_PROVIDED} - not_used_in_slicer
    assert not missing, f"add to PilletGAN/Resources/requirements.txt: {sorted(missing)}"


def test_unmet_requirements_and_constraints() -> None:
    versions = {"monai": "1.6.1", "numpy": "2.1.0", "pydicom": "2.4.4"}
    lookup = versions.get
    requirements = ["monai>=1.6,<1.7", "pydicom>=3.0,<4", "nibabel>=5.0", "colorama>=0.4; python_version < '3'"]
    assert unmet_requirements(requirements, lookup) == ["pydicom>=3.0,<4", "nibabel>=5.0"]
    assert unmet_requirements(["pytest>=1.0"]) == []
    assert unmet_requirements(["pytest>=999", "surely-not-an-installed-package>=1"]) == [
        "pytest>=999", "surely-not-an-installed-package>=1"]
    assert no_downgrade_constraints(["numpy", "scipy", "monai"], lookup) == ["numpy>=2.1.0", "monai>=1.6.1"]


# --- the module file, its UI and the helper's isolation from Slicer -----------------------------------------------


def _module_tree() -> ast.Module:
    return ast.parse(MODULE_FILE.read_text(encoding="utf-8"))


def test_module_files_compile(tmp_path: Path) -> None:
    for path in (MODULE_FILE, SLICER_SIDE_TEST, *sorted(HELPER_DIR.glob("*.py"))):
        py_compile.compile(str(path), cfile=str(tmp_path / f"{path.stem}.pyc"), doraise=True)
    classes = {node.name for node in _module_tree().body if isinstance(node, ast.ClassDef)}
    assert {"PilletGAN", "PilletGANWidget", "PilletGANLogic", "PilletGANTest", "PilletGANParameterNode"} <= classes
    constants = {node.targets[0].id: node.value for node in _module_tree().body
                 if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}
    assert ast.literal_eval(constants["TEST_TERMINOLOGY"]) == slicer_terminology_entry(), "the in-Slicer test is stale"


def _parameter_names() -> set[str]:
    parameter_class = next(node for node in _module_tree().body
                           if isinstance(node, ast.ClassDef) and node.name == "PilletGANParameterNode")
    return {node.target.id for node in parameter_class.body if isinstance(node, ast.AnnAssign)}


def test_ui_file_has_every_widget_the_code_uses() -> None:
    root = ET.parse(UI_FILE).getroot()
    widgets = {w.get("name"): w.get("class") for w in root.iter("widget")}
    assert widgets["PilletGAN"] == "qMRMLWidget"

    used = set()
    for path in (MODULE_FILE, SLICER_SIDE_TEST):
        used |= set(re.findall(r"\.ui\.(\w+)", path.read_text(encoding="utf-8")))
    assert used, "the module code does not use any widget?"
    assert used <= set(widgets), f"used in code but missing from PilletGAN.ui: {sorted(used - set(widgets))}"

    custom = {c.findtext("class") for c in root.iter("customwidget")}
    undeclared = {cls for cls in widgets.values() if cls not in QT_WIDGET_CLASSES} - custom
    assert not undeclared, f"custom widget classes not declared in <customwidgets>: {undeclared}"
    for connection in root.iter("connection"):
        assert connection.findtext("sender") in widgets and connection.findtext("receiver") in widgets

    bound = {}
    for widget in root.iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[prop.findtext("string")] = widget.get("class")
    # modelPath is a str synchronised by hand with the path line edit (a Path parameter would show "" as ".")
    assert set(bound) | {"modelPath"} == _parameter_names(), "every parameter needs one bound widget and vice versa"
    assert "modelPath" not in bound and widgets["modelPathLineEdit"] == "ctkPathLineEdit"
    assert 'modelPathLineEdit.connect("currentPathChanged(QString)"' in MODULE_FILE.read_text(encoding="utf-8")
    assert bound["threshold"] == bound["heatmapOpacity"] == "ctkSliderWidget" and bound["device"] == "QComboBox"


@pytest.mark.slow
def test_helper_never_imports_slicer() -> None:
    """Only ``scene.py`` uses Slicer, and only its MRML classes (it runs against slicer-core too); importing the
    package imports none of it."""
    for path in HELPER_DIR.glob("*.py"):
        forbidden = {"qt", "ctk", "__main__", "PilletGANLib"} | (set() if path.name == "scene.py" else {"slicer", "vtk"})
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"
    code = ("import sys; import PilletGANModuleLib; "
            "bad = {'slicer', 'qt', 'ctk', 'vtk', 'PilletGANLib'} & set(sys.modules); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=MODULE_DIR, check=True, timeout=120,
                   env={**os.environ, "PYTHONPATH": str(MODULE_DIR)})


# --- CMake ---------------------------------------------------------------------------------------------------------


def _cmake_list(text: str, variable: str, module_name: str) -> list[str]:
    body = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S).group(1)
    return [item.replace("${MODULE_NAME}", module_name) for item in body.split()]


def test_cmake_files_list_every_file_that_exists() -> None:
    text = (MODULE_DIR / "CMakeLists.txt").read_text()
    scripts = _cmake_list(text, "MODULE_PYTHON_SCRIPTS", "PilletGAN")
    resources = _cmake_list(text, "MODULE_PYTHON_RESOURCES", "PilletGAN")
    for item in scripts + resources:
        assert (MODULE_DIR / item).is_file(), f"listed in PilletGAN/CMakeLists.txt but missing: {item}"
    on_disk_scripts = {"PilletGAN.py"} | {f"PilletGANModuleLib/{p.name}" for p in HELPER_DIR.glob("*.py")}
    assert set(scripts) == on_disk_scripts, "every module script must be listed"
    on_disk_resources = {p.relative_to(MODULE_DIR).as_posix() for p in (MODULE_DIR / "Resources").rglob("*")
                         if p.is_file()}
    assert set(resources) == on_disk_resources, "every resource must be listed"

    top = (REPO / "CMakeLists.txt").read_text()
    for directory in re.findall(r"add_subdirectory\((\w+)\)", top):
        assert (REPO / directory / "CMakeLists.txt").is_file()
    assert re.search(r'set\(EXTENSION_DEPENDS "[^"]*\bPyTorch\b', top)
    testing = (MODULE_DIR / "Testing" / "Python" / "CMakeLists.txt").read_text()
    for script in re.findall(r"slicer_add_python_unittest\(SCRIPT (\S+)\)", testing):
        assert (MODULE_DIR / "Testing" / "Python" / script).is_file()


FAKE_SLICER = {
    "SlicerConfig.cmake": """
        set(Slicer_USE_FILE ${CMAKE_CURRENT_LIST_DIR}/UseSlicer.cmake)
        set(Slicer_EXTENSION_GENERATE_CONFIG ${CMAKE_CURRENT_LIST_DIR}/GenerateConfig.cmake)
        set(Slicer_EXTENSION_CPACK ${CMAKE_CURRENT_LIST_DIR}/Empty.cmake)
    """,
    "UseSlicer.cmake": """
        set(BUILD_TESTING ON)
        set(Slicer_QTSCRIPTEDMODULES_LIB_DIR lib/Slicer-5.10/qt-scripted-modules)
        set(Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR ${Slicer_QTSCRIPTEDMODULES_LIB_DIR})
        function(slicerMacroBuildScriptedModule)
          cmake_parse_arguments(MY "WITH_GENERIC_TESTS" "NAME" "SCRIPTS;RESOURCES" ${ARGN})
          string(REPLACE ";" "," scripts "${MY_SCRIPTS}")
          string(REPLACE ";" "," resources "${MY_RESOURCES}")
          file(APPEND ${RECORD} "module|${MY_NAME}|${scripts}|${resources}|${MY_WITH_GENERIC_TESTS}\n")
        endfunction()
        function(ctkMacroCompilePythonScript)
          cmake_parse_arguments(MY "NO_INSTALL_SUBDIR" "TARGET_NAME;SOURCE_DIR;DESTINATION_DIR;INSTALL_DIR"
            "SCRIPTS;RESOURCES" ${ARGN})
          string(REPLACE ";" "," scripts "${MY_SCRIPTS}")
          string(REPLACE ";" "," resources "${MY_RESOURCES}")
          file(APPEND ${RECORD} "library|${MY_SOURCE_DIR}|${scripts}|${resources}|${MY_DESTINATION_DIR}\n")
        endfunction()
        function(slicer_add_python_unittest)
          cmake_parse_arguments(MY "" "SCRIPT" "" ${ARGN})
          file(APPEND ${RECORD} "unittest|${CMAKE_CURRENT_SOURCE_DIR}|${MY_SCRIPT}\n")
        endfunction()
    """,
    "GenerateConfig.cmake": """
        foreach(name HOMEPAGE CATEGORY CONTRIBUTORS DESCRIPTION ICONURL DEPENDS)
          file(APPEND ${RECORD} "extension|${name}|${EXTENSION_${name}}\\n")
        endforeach()
    """,
    "Empty.cmake": "",
}


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")
def test_extension_configures_against_a_stand_in_slicer(tmp_path: Path) -> None:
    """Configure the extension with a stand-in for Slicer's CMake package that records what the macros receive."""
    fake = tmp_path / "FakeSlicer"
    fake.mkdir()
    for name, text in FAKE_SLICER.items():
        (fake / name).write_text(textwrap.dedent(text))
    record = tmp_path / "record.txt"
    result = subprocess.run(["cmake", "-S", str(REPO), "-B", str(tmp_path / "build"), f"-DSlicer_DIR={fake}",
                             f"-DRECORD={record}"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr

    entries = [line.split("|") for line in record.read_text().splitlines()]
    extension = {e[1]: e[2] for e in entries if e[0] == "extension"}
    assert extension["CATEGORY"] and extension["DESCRIPTION"] and extension["HOMEPAGE"].startswith("https://")
    assert "PyTorch" in extension["DEPENDS"].split()

    (module,) = [e for e in entries if e[0] == "module"]
    assert module[1] == "PilletGAN" and module[4] == "TRUE"
    for item in module[2].split(",") + module[3].split(","):
        assert (MODULE_DIR / item).is_file(), item

    (library,) = [e for e in entries if e[0] == "library"]
    source_root = Path(library[1]).resolve()
    expected = {p.relative_to(REPO).as_posix() for p in (REPO / "PilletGANLib").rglob("*.py")
                if "__pycache__" not in p.parts}
    assert source_root == REPO and set(library[2].split(",")) == expected, "all of PilletGANLib must ship"
    for item in filter(None, library[3].split(",")):
        assert (REPO / item).is_file() and not item.endswith((".py", ".pyc")), item
    assert library[4].endswith("lib/Slicer-5.10/qt-scripted-modules"), "the library goes next to PilletGAN.py"

    sources = {(Path(e[1]) / e[2]).resolve() for e in entries if e[0] == "unittest"}
    assert sources == {MODULE_FILE.resolve(), SLICER_SIDE_TEST.resolve()}


# --- the module's out-of-process run, end to end -------------------------------------------------------------------


@pytest.mark.slow
def test_module_pipeline_runs_the_cli_and_loads_its_results(dicom_dir: Path, tmp_path: Path) -> None:
    """What ``PilletGANLogic.process`` does, minus Slicer: export a one-slice NRRD, run ``pilletgan infer`` as a
    child process with the module's command line and environment, stream its log, load the result files."""
    import SimpleITK as sitk

    model = make_tiny_model(tmp_path / "tiny.pt")

    image, _ = load_cxr(dicom_dir / DX_8BIT)
    volume = sitk.GetImageFromArray(image[::2, :171][np.newaxis].astype(np.int16))  # 128 x 171, as Slicer exports it
    volume.SetSpacing((0.8, 0.6, 1.0))
    volume.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    sitk.WriteImage(volume, str(tmp_path / "input.nrrd"))

    command = build_infer_command(cli_prefix(sys.executable), tmp_path / "input.nrrd", tmp_path / "results",
                                  model_path=model_argument(model), device="cpu")
    environment = {**os.environ, **subprocess_environment(find_library_root(MODULE_DIR), os.environ.get("PYTHONPATH"))}
    process = start_process(command, environment, cwd=str(tmp_path))
    pump = OutputPump(process)
    log = []
    deadline = time.time() + 240
    while (not pump.finished or process.poll() is None) and time.time() < deadline:
        log += pump.drain()
        time.sleep(0.05)
    log += pump.drain()
    assert process.returncode == 0, "\n".join(log)

    outputs = load_inference_outputs(tmp_path / "results")
    assert outputs.heatmap.shape == outputs.mask.shape == (128, 171)
    assert outputs.heatmap.min() >= 0.0 and outputs.heatmap.max() <= 1.0
    assert outputs.segment.terminology == EXPECTED_TERMINOLOGY
    assert outputs.record["model_name"] == "tiny-untrained"
    assert not (outputs.mask & (outputs.heatmap < outputs.threshold)).any()
    np.testing.assert_array_equal(clean_mask(outputs.heatmap, outputs.threshold, outputs.min_component_fraction),
                                  outputs.mask)


def test_module_finds_the_library_terminology_context() -> None:
    """The module loads the same ``PilletGAN.term.json`` into Slicer that the library's outputs are coded from."""
    from PilletGANLib.outputs.terminology import SEGMENTATION_CONTEXT, TERMINOLOGY_FILE

    found = terminology_file(MODULE_DIR)
    assert found.resolve() == TERMINOLOGY_FILE.resolve()
    context = json.loads(found.read_text(encoding="utf-8"))
    assert context["SegmentationCategoryTypeContextName"] == SEGMENTATION_CONTEXT == EXPECTED_TERMINOLOGY.split("~")[0]
    assert '"PilletGANLib.outputs": ["*.term.json"]' in (REPO / "setup.py").read_text()  # shipped as package data
