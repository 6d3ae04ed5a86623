"""Install PilletGANLib and the ``pilletgan`` command."""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = {}
PACS_REQUIREMENTS = ["dicomweb-client>=0.61,<0.70", "pynetdicom>=2.1,<4", "requests>=2.31"]
exec((HERE / "PilletGANLib" / "version.py").read_text(), VERSION)

setup(
    name="pilletgan",
    version=VERSION["__version__"],
    description="Pneumonia localization on chest X-rays with PILLET-GAN (Fixed-Point GAN + lesion traversal attention)",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["PilletGANLib", "PilletGANLib.*"]),
    # the lesion terminology, a Slicer terminology context that the outputs and the Slicer module read
    package_data={"PilletGANLib.outputs": ["*.term.json"]},
    # the shipped default model (found by PilletGANLib.model_store.default_model_path() after a regular install)
    # and the Fixed-Point GAN baseline of the model card
    data_files=[("share/pilletgan/bundle/PilletGAN_CXR/models",
                 sorted(glob("Resources/bundle/PilletGAN_CXR/models/*.*")))],
    install_requires=[
        "torch>=2.8,<2.15",
        "monai>=1.6,<1.7",
        "pytorch-ignite>=0.5,<0.6",
        "numpy>=1.26",
        "scipy>=1.11",
        "pydicom>=3.0,<4",
        "pylibjpeg>=2.0",
        "pylibjpeg-openjpeg>=2.3",
        "pylibjpeg-libjpeg>=2.1",
        "highdicom>=0.23",
        "SimpleITK>=2.3",
        "nibabel>=5.0",
        "pillow>=10.1",
        "slicerio>=1.0",
        "tqdm>=4.60",
        "pyyaml>=6.0",
        "fire>=0.5",
        "tensorboard>=2.14",
        "matplotlib>=3.8",
        "pynrrd>=1.0",
        "platformdirs>=3.0",
    ],
    extras_require={
        # PACS network front doors (pilletgan pacs, pilletgan listen)
        "pacs": PACS_REQUIREMENTS,
        "test": [
            *PACS_REQUIREMENTS,
            "pytest>=8.0",
            "ruff>=0.6",
            "onnx>=1.16",
            "onnxruntime>=1.18",
            "onnxscript>=0.1",
            "jsonschema>=4.0",
        ],
        # Slicer's MRML, Segmentations, Markups and Terminologies classes without the application: the optional
        # CI stage that tests the Slicer module's scene building (Testing/test_slicer_scene.py)
        "slicer": ["slicer-core>=5.13.31053,<5.14"],
    },
    entry_points={"console_scripts": ["pilletgan=PilletGANLib.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Medical Science Apps.",
        "Intended Audience :: Science/Research",
    ],
)
