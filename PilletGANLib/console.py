"""The terminal side of the ``pilletgan`` command: output that never fails on a file name, and quiet readers."""

from __future__ import annotations

import logging
import sys
import warnings

__all__ = ["configure_console"]

#: Loggers of libraries whose own warnings repeat what PilletGAN reports about a file in its own words.
_QUIET_LOGGERS = ("pydicom", "highdicom")


def configure_console(verbose: bool = False) -> None:
    """Set up logging and the standard streams for one command.

    File names that are not UTF-8 are printed with ``\\xNN`` escapes instead of failing the write (the same
    text :func:`~PilletGANLib.text.path_text` gives); pydicom's and highdicom's warnings about header values
    (and pydicom's validation of header values while reading) are on only with ``verbose``, since every file
    problem is reported by PilletGAN itself, once, and invalid header values are repaired in what it writes.
    pydicom is imported here, not with the module: building the parser (``pilletgan --help``) loads no DICOM stack.
    """
    from pydicom import config as pydicom_config

    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        for name in _QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)  # their errors reach PilletGAN as exceptions
        warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")
        pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
