"""One exception family for everything PilletGAN refuses or cannot do, and one taxonomy of what went wrong.

Every message names the file (when there is one), says what was wrong with it and, where
possible, what to do about it. Callers that process many files (``batch``, ``infer``, ``inspect``) catch
:class:`PilletGANError`, record ``str(err)`` and go on.

Each class has a ``kind``: the short word the reports of ``inspect``, ``infer`` and ``batch`` (``errors.csv``,
``skipped.csv``) all use for it, so one file gets the same name for its problem whichever command met it.
:func:`error_kind` gives the kind of any exception (``internal`` for one PilletGAN did not raise on purpose).
File paths in messages go through :func:`~PilletGANLib.text.path_text`, so a name that is not UTF-8 can
still be printed and stored.
"""

from __future__ import annotations

from os import PathLike
from typing import ClassVar

from .text import path_text

#: The kind of an exception that is not a :class:`PilletGANError` (a bug or an environment failure).
INTERNAL_KIND = "internal"


class PilletGANError(Exception):
    """Base class of every error PilletGAN raises on purpose."""

    kind: ClassVar[str] = "error"

    def __init__(self, message: str, path: str | PathLike | None = None) -> None:
        self.path = None if path is None else path_text(path)
        self.reason = path_text(message)
        super().__init__(f"{self.path}: {self.reason}" if self.path else self.reason)


class InputFileError(PilletGANError):
    """A file given as input cannot be used."""

    kind = "unusable"


class FileNotFoundInputError(InputFileError):
    """The input path does not exist."""

    kind = "missing"


class NotARegularFileError(InputFileError):
    """The input path is a FIFO, socket, device or folder where a file is expected."""

    kind = "not_a_file"


class UnreadableFileError(InputFileError):
    """The operating system refuses to read the file (permissions, I/O error, broken link)."""

    kind = "unreadable"


class UnrecognizedFormatError(InputFileError):
    """The file is neither DICOM nor a supported image format."""

    kind = "not_dicom"


class TruncatedFileError(InputFileError):
    """The file ends before the data its header announces."""

    kind = "truncated"


class EmptyFileError(TruncatedFileError):
    """The file has no bytes at all."""

    kind = "empty"


class CorruptFileError(InputFileError):
    """The file is damaged in a way that is not a plain truncation."""

    kind = "corrupt"


class NotAnImageError(InputFileError):
    """A valid file that carries no radiograph: a DICOM object without an image (structured report, presentation
    state, ...) or an image without contrast (blank)."""

    kind = "not_an_image"


class MissingPixelDataError(InputFileError):
    """A DICOM image object without its Pixel Data element."""

    kind = "no_pixel_data"


class UnsupportedImageError(InputFileError):
    """A valid image of a kind PilletGAN does not analyse."""

    kind = "unsupported"


class MultiFrameError(UnsupportedImageError):
    """A multi-frame object where one projection radiograph is expected."""


class ColourImageError(UnsupportedImageError):
    """A colour image where a greyscale radiograph is expected."""


class UnsupportedTransferSyntaxError(UnsupportedImageError):
    """No installed decoder handles the file's transfer syntax."""


class ImplausibleDimensionsError(UnsupportedImageError):
    """The header announces dimensions no radiograph has; refused before allocating memory."""


class ModelError(PilletGANError):
    """A model file is missing, damaged, does not match its checksum or its configuration."""

    kind = "model"


class ConfigurationError(PilletGANError):
    """Settings or command-line values that cannot work together."""

    kind = "configuration"


class DataError(PilletGANError):
    """A dataset, manifest or label table that is inconsistent or incomplete."""

    kind = "data"


class OutputError(PilletGANError):
    """An output cannot be written where it was asked to go."""

    kind = "output"


def error_kind(err: BaseException) -> str:
    """The taxonomy word for ``err``: its class's ``kind``, or :data:`INTERNAL_KIND` for any other exception."""
    return err.kind if isinstance(err, PilletGANError) else INTERNAL_KIND


def error_reason(err: BaseException) -> str:
    """What went wrong, without the path: the message of a :class:`PilletGANError`, else ``Type: message``."""
    if isinstance(err, PilletGANError):
        return err.reason
    return path_text(f"{type(err).__name__}: {err}")


class PacsError(PilletGANError):
    """A PACS or DICOM node could not be reached or refused a request (HTTP status, association rejected, timeout).

    ``path`` names the node, study or instance concerned.
    """

    kind = "pacs"
