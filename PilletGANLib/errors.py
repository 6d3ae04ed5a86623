"""One exception family for everything PilletGAN refuses or cannot do.

Every message names the file (when there is one), says what was wrong with it and, where
possible, what to do about it. Callers that process many files (``batch``, ``inspect``) catch
:class:`PilletGANError`, record ``str(err)`` and go on.
"""

from __future__ import annotations

from os import PathLike


class PilletGANError(Exception):
    """Base class of every error PilletGAN raises on purpose."""

    def __init__(self, message: str, path: str | PathLike | None = None) -> None:
        self.path = None if path is None else str(path)
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class InputFileError(PilletGANError):
    """A file given as input cannot be used."""


class FileNotFoundInputError(InputFileError):
    """The input path does not exist or is not a regular file."""


class UnreadableFileError(InputFileError):
    """The operating system refuses to read the file (permissions, I/O error)."""


class UnrecognizedFormatError(InputFileError):
    """The file is neither DICOM nor a supported image format."""


class TruncatedFileError(InputFileError):
    """The file ends before the data its header announces."""


class CorruptFileError(InputFileError):
    """The file is damaged in a way that is not a plain truncation."""


class NotAnImageError(InputFileError):
    """A valid DICOM object that carries no image (structured report, presentation state, ...)."""


class MissingPixelDataError(InputFileError):
    """A DICOM image object without its Pixel Data element."""


class MultiFrameError(InputFileError):
    """A multi-frame object where one projection radiograph is expected."""


class ColourImageError(InputFileError):
    """A colour image where a greyscale radiograph is expected."""


class UnsupportedTransferSyntaxError(InputFileError):
    """No installed decoder handles the file's transfer syntax."""


class ImplausibleDimensionsError(InputFileError):
    """The header announces dimensions no radiograph has; refused before allocating memory."""


class ModelError(PilletGANError):
    """A model file is missing, damaged, does not match its checksum or its configuration."""


class ConfigurationError(PilletGANError):
    """Settings or command-line values that cannot work together."""


class DataError(PilletGANError):
    """A dataset, manifest or label table that is inconsistent or incomplete."""


class OutputError(PilletGANError):
    """An output cannot be written where it was asked to go."""


class PacsError(PilletGANError):
    """A PACS or DICOM node could not be reached or refused a request (HTTP status, association rejected, timeout).

    ``path`` names the node, study or instance concerned.
    """
