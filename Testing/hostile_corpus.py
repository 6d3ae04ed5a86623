"""A hostile PACS export made by the project: every kind of input a batch run must account for.

:func:`build_hostile_corpus` writes, from the sample radiographs of :mod:`dicom_factory` (the demo phantom),
radiographs that must be analysed despite odd encodings or names (no preamble, no file meta, a file name that is not
UTF-8, names a spreadsheet would run as formulas, header text with path traversal and terminal escapes, invalid
values the SEG must repair, a MONOCHROME1 header over MONOCHROME2 pixels, with and without a Presentation LUT Shape
that says so, a window of width 1, pixel padding written as text, a window over a negative rescale, unsigned pixels
labelled signed, a Patient Orientation that says the image is mirrored), files that must
be reported as errors (truncated, empty, random bytes named ``.dcm``, a fake DICOMDIR, garbage after ``DICM``, 2 GiB
element lengths, a 3,000-deep sequence, an unknown private transfer syntax, JPEG 2000 / JPEG / JPEG-LS codestreams
that claim far more pixels than the header, a JPEG 2000 codestream whose tile data is garbage, a Modality LUT
without data, invalid UIDs, absurd dimensions, a 64 x 1024 strip, Pixel Data twice, multi-frame and colour images,
no Pixel Data, a DICOMDIR entry that is absent, a dangling link) and files an export is expected to hold besides
radiographs (an SR, a presentation state, a CT, a text file, a FIFO, a folder link loop, a DICOMDIR with a ``..``
reference, a duplicate SOP Instance UID).

Each entry says where a batch run must list it (``summary.csv``, ``errors.csv`` or ``skipped.csv``), with which
kind (the :mod:`PilletGANLib.errors` taxonomy), at which stage and which words its reason must hold. The builder
is deterministic; ``python Testing/hostile_corpus.py DIR`` writes the corpus for a manual or benchmark run.
"""

from __future__ import annotations

import io
import json
import os
import random
import struct
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from dicom_factory import (
    DX_8BIT,
    JPEG_BASELINE,
    JPEG_HEADER_MONO1,
    JPEG_LS,
    MONO1_J2K_LOSSLESS,
    MONO1_UNCOMPRESSED,
    RLE,
    VOI_LUT_16BIT,
    dicomdir_ready,
    renew_uids,
    write_ct_image,
    write_dangling_symlink,
    write_dicomdir,
    write_fifo,
    write_not_dicom,
    write_sample_dicoms,
    write_sr_document,
    write_symlink_loop,
    write_truncated,
)
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.filewriter import dcmwrite
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

__all__ = ["ERRORS", "SKIPPED", "SUMMARY", "HostileCorpus", "HostileEntry", "build_hostile_corpus", "run_measured"]

#: Where a batch run lists an entry.
SUMMARY, ERRORS, SKIPPED = "summary", "errors", "skipped"
#: Claimed size of the decompression bombs (rows = columns).
BOMB_SIDE = 20000


@dataclass(frozen=True)
class HostileEntry:
    """One input of the corpus and how a batch run must account for it."""

    path: Path
    listed_in: str  # SUMMARY, ERRORS or SKIPPED
    kind: str | None = None  # the taxonomy kind in errors.csv / skipped.csv (None for summary rows)
    words: tuple[str, ...] = ()  # words the reason must contain (case-insensitive)
    warning: str | None = None  # a word the record's warnings must contain (summary rows)
    stage: str = "discovery"  # the stage that finds an error (errors.csv)


@dataclass
class HostileCorpus:
    root: Path
    entries: list[HostileEntry] = field(default_factory=list)

    def add(self, path: Path, listed_in: str, kind: str | None = None, *words: str, warning: str | None = None,
            stage: str = "discovery") -> Path:
        self.entries.append(HostileEntry(path, listed_in, kind, tuple(words), warning, stage))
        return path

    def where(self, listed_in: str) -> list[HostileEntry]:
        return [e for e in self.entries if e.listed_in == listed_in]


def _fresh(source: Path, **changes: object) -> Dataset:
    """A full read of ``source`` with new UIDs and the given attribute values."""
    ds = renew_uids(pydicom.dcmread(source), str(generate_uid()), str(generate_uid()))
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    return ds


def _save(ds: Dataset, path: Path, **options: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if options:
        dcmwrite(path, ds, **options)
    else:
        ds.save_as(path, enforce_file_format=True)
    return path


def _bytes_of(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _pixel_data_offset(data: bytes) -> int:
    """Offset of the (7FE0,0010) Pixel Data tag in an Explicit VR Little Endian file."""
    return data.rindex(b"\xe0\x7f\x10\x00")


def _deep_sequence(depth: int) -> bytes:
    """``depth`` nested (0040,A730) Content Sequences of undefined length, in Explicit VR Little Endian."""
    opening = b"\x40\x00\x30\xa7SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    closing = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    return opening * depth + closing * depth


def _patch_codestream(ds: Dataset, patch) -> Dataset:
    """``ds`` with its single encapsulated fragment replaced by ``patch(fragment)``."""
    fragment = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([patch(bytearray(fragment))])
    return ds


def _j2k_bomb(fragment: bytearray) -> bytes:
    siz = fragment.index(b"\xff\x51")  # SIZ: Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz, XTsiz, YTsiz ...
    struct.pack_into(">IIIIII", fragment, siz + 6, BOMB_SIDE, BOMB_SIDE, 0, 0, BOMB_SIDE, BOMB_SIDE)
    return bytes(fragment)


def _j2k_scrambled_body(rng: random.Random):
    """A valid SIZ (the header check passes) over tile data replaced by random bytes: it fails when decoded."""
    def patch(fragment: bytearray) -> bytes:
        body = fragment.index(b"\xff\x93") + 2  # SOD: start of the first tile's data
        return bytes(fragment[:body]) + rng.randbytes(len(fragment) - body)
    return patch


def _sof_bomb(marker: bytes):
    def patch(fragment: bytearray) -> bytes:
        sof = fragment.index(marker)  # SOF: marker, length, precision, height, width
        struct.pack_into(">HH", fragment, sof + 5, BOMB_SIDE, BOMB_SIDE)
        return bytes(fragment)
    return patch


def build_hostile_corpus(root: Path, samples: Path | None = None) -> HostileCorpus:
    """Write the corpus under ``root`` (which must not exist yet); ``samples`` is a folder of
    :func:`~dicom_factory.write_sample_dicoms` files (written under ``root``'s parent when not given)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pydicom warns about the invalid values written on purpose
        return _build(root, samples)


def _build(root: Path, samples: Path | None) -> HostileCorpus:
    if samples is None:
        samples = root.parent / f"{root.name}_samples"
        write_sample_dicoms(samples)
    root.mkdir(parents=True)
    corpus = HostileCorpus(root)
    rng = random.Random(25)
    good = root / "good"

    # -- radiographs to analyse ---------------------------------------------------------------------
    for name, target in ((MONO1_UNCOMPRESSED, "mono1.dcm"), (MONO1_J2K_LOSSLESS, "J2K_LOSSLESS"), (JPEG_LS, "jpegls.dcm"),
                         (RLE, "rle.DCM"), (VOI_LUT_16BIT, "voi_lut.dcm"), (JPEG_BASELINE, "jpeg.dcm")):
        corpus.add(_save(_fresh(samples / name), good / target), SUMMARY)
    corpus.add(_save(_fresh(samples / JPEG_HEADER_MONO1), good / "header_mono1_pixels_mono2.dcm"), SUMMARY,
               warning="negative (polarity score")
    corpus.add(_save(_fresh(samples / JPEG_HEADER_MONO1, PresentationLUTShape="IDENTITY"),
                     good / "header_mono1_shape_identity.dcm"), SUMMARY, warning="IDENTITY was followed")
    corpus.add(_save(_fresh(samples / DX_8BIT, WindowCenter=128, WindowWidth=1), good / "window_width_1.dcm"), SUMMARY,
               warning="grey levels")
    padding_text = _fresh(samples / DX_8BIT)
    padding_text.add_new(0x00280120, "LO", "none")  # Pixel Padding Value as text: optional, so ignored
    corpus.add(_save(padding_text, good / "padding_as_text.dcm"), SUMMARY, warning="pixel padding ignored")
    corpus.add(_save(_fresh(samples / DX_8BIT, RescaleSlope=-1, RescaleIntercept=255, WindowCenter=128,
                            WindowWidth=256), good / "negative_slope_windowed.dcm"), SUMMARY,
               warning="negative Rescale Slope")
    corpus.add(_save(_fresh(samples / DX_8BIT, PixelRepresentation=1), good / "unsigned_labelled_signed.dcm"), SUMMARY,
               warning="read as unsigned")
    corpus.add(_save(_fresh(samples / DX_8BIT, PatientOrientation=["R", "F"]), good / "stored_mirrored.dcm"), SUMMARY,
               warning="mirrored left to right")
    rotated = np.ascontiguousarray(np.rot90(pydicom.dcmread(samples / DX_8BIT).pixel_array))  # upright is its F\\R turn
    corpus.add(_save(_fresh(samples / DX_8BIT, PatientOrientation=["F", "R"], PixelData=rotated.tobytes()),
                     good / "stored_rotated.dcm"), SUMMARY, warning="turned to L\\F for the model")
    corpus.add(_save(_fresh(samples / DX_8BIT, PatientOrientation=["F", "R"]), good / "orientation_lies.dcm"), SUMMARY,
               warning="Patient Orientation is probably wrong")
    no_preamble = _fresh(samples / DX_8BIT)
    no_preamble.preamble = None
    corpus.add(_save(no_preamble, good / "no_preamble", enforce_file_format=False), SUMMARY)
    bare = _fresh(samples / DX_8BIT)
    bare.preamble, bare.file_meta = None, FileMetaDataset()
    corpus.add(_save(bare, good / "no_file_meta", implicit_vr=True, little_endian=True, enforce_file_format=False),
               SUMMARY)
    undecodable_name = os.fsdecode(b"caf\xe9_\xff\xfe.dcm")  # Latin-1 bytes: not UTF-8
    corpus.add(_save(_fresh(samples / DX_8BIT), good / undecodable_name), SUMMARY)
    for prefix in ("=", "+", "-", "@"):  # at the top of the export, so the CSV cells start with them
        name = f"{prefix}HYPERLINK(1).dcm" if prefix != "@" else "@SUM(1+1).dcm"
        corpus.add(_save(_fresh(samples / DX_8BIT), root / name), SUMMARY)
    injected = _fresh(samples / JPEG_BASELINE, PatientName="../../../etc/passwd", PatientID="$(rm -rf /)",
                      SeriesDescription="=cmd|'/C calc'!A0", InstitutionName="\x1b[31mred\x1b[0m; DROP TABLE")
    corpus.add(_save(injected, good / "header_injection.dcm"), SUMMARY)
    invalid_vrs = _fresh(samples / DX_8BIT, StudyDate="2001-02-03", StudyTime="12:30", PatientSex="m",
                         PatientBirthDate="not a date")
    corpus.add(_save(invalid_vrs, good / "invalid_vrs.dcm"), SUMMARY)
    media = [dicomdir_ready(_fresh(samples / JPEG_BASELINE), "1")]
    dicomdir, referenced = write_dicomdir(root / "MEDIA", media)
    corpus.add(dicomdir, SKIPPED, "dicomdir", "DICOMDIR")
    corpus.add(referenced[0], SUMMARY)

    # -- errors: each named for what is wrong ---------------------------------------------------------
    bad = root / "bad"
    bad.mkdir()
    write_truncated(samples / MONO1_UNCOMPRESSED, bad / "truncated.dcm", fraction=0.6)
    corpus.add(bad / "truncated.dcm", ERRORS, "truncated", "truncated")
    (bad / "empty.dcm").write_bytes(b"")
    corpus.add(bad / "empty.dcm", ERRORS, "empty", "empty", "0 bytes")
    (bad / "random.dcm").write_bytes(rng.randbytes(4096))
    corpus.add(bad / "random.dcm", ERRORS, "not_dicom", ".dcm", "not")
    fake = bad / "fake_media"
    fake.mkdir()
    (fake / "DICOMDIR").write_bytes(rng.randbytes(2048))
    corpus.add(fake / "DICOMDIR", ERRORS, "not_dicom", "DICOMDIR")
    (bad / "garbage_after_dicm.dcm").write_bytes(b"\x00" * 128 + b"DICM" + rng.randbytes(4096))
    corpus.add(bad / "garbage_after_dicm.dcm", ERRORS, "corrupt", "DICM")

    data = bytearray(_bytes_of(_fresh(samples / MONO1_UNCOMPRESSED)))
    offset = _pixel_data_offset(bytes(data))  # Pixel Data: tag, 'OW', 2 reserved bytes, 4-byte length
    struct.pack_into("<I", data, offset + 8, 0x7FFFFFFE)
    (bad / "pixel_length_2gib.dcm").write_bytes(bytes(data))
    corpus.add(bad / "pixel_length_2gib.dcm", ERRORS, "corrupt", "2147483646")
    data = _bytes_of(_fresh(samples / MONO1_UNCOMPRESSED))
    offset = _pixel_data_offset(data)
    private = b"\x09\x00\x10\x00LO\x08\x00PILLETGN" + b"\x09\x00\x01\x10OB\x00\x00" + struct.pack("<I", 0x7FFFFFFE)
    (bad / "element_length_2gib.dcm").write_bytes(data[:offset] + private + data[offset:])
    corpus.add(bad / "element_length_2gib.dcm", ERRORS, "corrupt", "(0009,1001)", "2147483646")
    data = _bytes_of(_fresh(samples / MONO1_UNCOMPRESSED))
    offset = _pixel_data_offset(data)
    (bad / "deep_sequence.dcm").write_bytes(data[:offset] + _deep_sequence(3000) + data[offset:])
    corpus.add(bad / "deep_sequence.dcm", ERRORS, "corrupt", "nested")

    private_syntax = _fresh(samples / MONO1_UNCOMPRESSED)
    private_syntax.file_meta.TransferSyntaxUID = UID("1.3.6.1.4.1.25.1.2.4.99")
    corpus.add(_save(private_syntax, bad / "private_syntax.dcm", enforce_file_format=True), ERRORS, "unsupported",
               "1.3.6.1.4.1.25.1.2.4.99")
    corpus.add(_save(_patch_codestream(_fresh(samples / MONO1_J2K_LOSSLESS), _j2k_bomb), bad / "j2k_bomb.dcm"),
               ERRORS, "corrupt", "JPEG 2000", str(BOMB_SIDE))
    corpus.add(_save(_patch_codestream(_fresh(samples / JPEG_BASELINE), _sof_bomb(b"\xff\xc0")), bad / "jpeg_bomb.dcm"),
               ERRORS, "corrupt", "JPEG", str(BOMB_SIDE))
    corpus.add(_save(_patch_codestream(_fresh(samples / JPEG_LS), _sof_bomb(b"\xff\xf7")), bad / "jpegls_bomb.dcm"),
               ERRORS, "corrupt", "JPEG-LS", str(BOMB_SIDE))
    corpus.add(_save(_patch_codestream(_fresh(samples / MONO1_J2K_LOSSLESS), _j2k_scrambled_body(rng)),
                     bad / "j2k_corrupt_body.dcm"), ERRORS, "corrupt", "decod", stage="inference")
    no_lut_data = Dataset()
    no_lut_data.add_new(0x00283002, "US", [256, 0, 16])  # a LUT Descriptor without LUT Data
    corpus.add(_save(_fresh(samples / DX_8BIT, ModalityLUTSequence=[no_lut_data]), bad / "modality_lut_no_data.dcm"),
               ERRORS, "corrupt", "Modality LUT has no LUT Data", stage="inference")
    undecodable = _fresh(samples / JPEG_BASELINE)
    undecodable.PixelData = encapsulate([b"\xff\xd8" + bytes(rng.randbytes(600))])
    corpus.add(_save(undecodable, bad / "undecodable_jpeg.dcm"), ERRORS, "corrupt", "JPEG", "no frame header")
    traversal = _fresh(samples / DX_8BIT)
    traversal.SOPInstanceUID = traversal.file_meta.MediaStorageSOPInstanceUID = "../../../tmp/pilletgan_escape"
    corpus.add(_save(traversal, bad / "uid_traversal.dcm"), ERRORS, "corrupt", "SOPInstanceUID")
    letters = _fresh(samples / DX_8BIT, StudyInstanceUID="1.2.840.ABC.7")
    corpus.add(_save(letters, bad / "uid_letters.dcm"), ERRORS, "corrupt", "StudyInstanceUID")
    huge = _fresh(samples / DX_8BIT, Rows=60000, Columns=60000)
    corpus.add(_save(huge, bad / "absurd_dimensions.dcm"), ERRORS, "unsupported", "60000")
    explicit = _fresh(samples / DX_8BIT)
    explicit.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian  # the sample is Implicit VR; the copy below is not
    twice = _save(explicit, bad / "pixel_data_twice.dcm")
    at = pydicom.dcmread(twice, defer_size=1024).get_item("PixelData", keep_deferred=True).value_tell - 12
    data, inverted = twice.read_bytes(), bytes(255 - v for v in pydicom.dcmread(twice).PixelData)
    twice.write_bytes(data[:at] + b"\xe0\x7f\x10\x00OB\x00\x00" + len(inverted).to_bytes(4, "little") + inverted
                      + data[at:])  # an inverted copy first: pydicom would keep the last
    corpus.add(twice, ERRORS, "corrupt", "Pixel Data twice")
    strip = _fresh(samples / DX_8BIT, Rows=64, Columns=1024)  # the same 65,536 bytes: a strip, not a chest
    corpus.add(_save(strip, bad / "strip_64x1024.dcm"), ERRORS, "unsupported", "16.0 times", "not a chest")
    no_pixels = _fresh(samples / DX_8BIT)
    del no_pixels.PixelData
    corpus.add(_save(no_pixels, bad / "no_pixel_data.dcm"), ERRORS, "no_pixel_data", "Pixel Data")
    write_dangling_symlink(bad / "dangling.dcm")
    corpus.add(bad / "dangling.dcm", ERRORS, "unreadable", "link")
    listed_but_absent = [dicomdir_ready(_fresh(samples / DX_8BIT), "2")]
    gone_dicomdir, gone = write_dicomdir(root / "MEDIA_GONE", listed_but_absent)
    gone[0].unlink()
    corpus.add(gone_dicomdir, SKIPPED, "dicomdir", "DICOMDIR")
    corpus.add(gone[0], ERRORS, "missing", "DICOMDIR")

    # -- expected besides radiographs ----------------------------------------------------------------
    other = root / "other"
    study = str(generate_uid())
    write_sr_document(other / "report.dcm", study)
    corpus.add(other / "report.dcm", SKIPPED, "not_an_image", "SR")
    state = _fresh(samples / DX_8BIT)
    state.SOPClassUID = state.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.11.1")
    del state.PixelData
    corpus.add(_save(state, other / "presentation_state.dcm"), SKIPPED, "not_an_image", "Presentation State")
    write_ct_image(samples, other / "ct_slice", study, source=DX_8BIT)
    corpus.add(other / "ct_slice", SKIPPED, "not_selected", "Modality")
    frames = _fresh(samples / DX_8BIT, NumberOfFrames=2)
    frames.PixelData = frames.PixelData * 2
    corpus.add(_save(frames, other / "multiframe.dcm"), ERRORS, "unsupported", "multi-frame")
    colour = _fresh(samples / DX_8BIT)
    grey = colour.pixel_array
    colour.PixelData = np.stack([grey, grey, grey], axis=-1).tobytes()
    colour.SamplesPerPixel, colour.PhotometricInterpretation, colour.PlanarConfiguration = 3, "RGB", 0
    corpus.add(_save(colour, other / "colour.dcm"), ERRORS, "unsupported", "colour")
    write_not_dicom(other / "README.txt")
    corpus.add(other / "README.txt", SKIPPED, "not_dicom", "not a DICOM")
    write_fifo(other / "pipe")
    corpus.add(other / "pipe", SKIPPED, "not_a_file", "FIFO")
    corpus.add(write_symlink_loop(other / "nested"), SKIPPED, "symlink_loop", "loop")
    duplicate = pydicom.dcmread(good / "jpeg.dcm")
    corpus.add(_save(duplicate, other / "same_uid_again.dcm"), SKIPPED, "duplicate", "SOP Instance UID")
    traversal_media = [dicomdir_ready(_fresh(samples / DX_8BIT), "3")]
    traversal_dir, traversal_files = write_dicomdir(root / "MEDIA_TRAVERSAL", traversal_media)
    directory = pydicom.dcmread(traversal_dir)
    for record in directory.DirectoryRecordSequence:
        if "ReferencedFileID" in record:
            record.ReferencedFileID = ["..", "..", "good", "mono1.dcm"]  # ".." is no valid file ID component
    directory.save_as(traversal_dir, enforce_file_format=True)
    corpus.add(traversal_dir, SKIPPED, "dicomdir", "invalid Referenced File ID")
    corpus.add(traversal_files[0], SUMMARY)  # still in the export: found by the walk
    return corpus


_MEASURE = """
import json, resource, subprocess, sys
with open(sys.argv[1], "wb") as out, open(sys.argv[2], "wb") as err:
    code = subprocess.call(sys.argv[3:], stdout=out, stderr=err)
print(json.dumps({"returncode": code, "peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def run_measured(command: list[str], stdout: Path, stderr: Path, env: dict[str, str] | None = None,
                 timeout: float = 900) -> tuple[int, float]:
    """Run ``command`` from a fresh Python process that is its only parent; returns its exit code and peak
    resident memory in MiB (``ru_maxrss`` of that one child: the largest process, workers included only if
    they were larger). Its output goes to the files ``stdout`` and ``stderr``."""
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(stdout), str(stderr), *command], env=env,
                          capture_output=True, text=True, timeout=timeout, check=True)
    result = json.loads(done.stdout)
    return int(result["returncode"]), float(result["peak_rss_mib"])


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python Testing/hostile_corpus.py NEW_FOLDER", file=sys.stderr)
        return 2
    corpus = build_hostile_corpus(Path(argv[1]))
    counts = {where: len(corpus.where(where)) for where in (SUMMARY, ERRORS, SKIPPED)}
    print(f"{len(corpus.entries)} entries under {corpus.root}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
