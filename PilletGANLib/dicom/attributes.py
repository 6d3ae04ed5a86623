"""Repair the source-header attributes that a derived DICOM object (SEG) inherits.

Real exports carry values that break the standard: ages without their unit, dates with dashes,
over-long texts, a sex of ``"m"``, missing Type 2 attributes. highdicom copies such values verbatim
into a Segmentation, which then fails validation (``dciodvfy``) or makes highdicom itself raise.
:func:`repair_source_header` builds a header-only copy of the source that holds only the
attributes a derived object needs (patient, study, equipment, references, geometry), each checked
against its value representation (VR) and multiplicity (VM):

- a value with one unambiguous standard form is rewritten to it (``81`` -> ``081Y``,
  ``2001-02-03`` -> ``20010203``, ``12:30`` -> ``1230``, ``m`` -> ``M``, over-long descriptive
  text shortened to the VR's maximum);
- anything else invalid is emptied (Type 2) or removed (Type 3); identifying values (names, IDs,
  numbers, UIDs) are never shortened or guessed, only emptied or removed;
- missing Type 2 attributes are supplied empty; a broken Type 1 reference (SOP Class / SOP
  Instance / Series / Study UID, rows, columns) refuses the source, since a derived object that
  points to the wrong image is worse than none.

The repairs are listed without the values they touched, so the list can be logged safely.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike
from typing import Any

from highdicom.enum import SpecificCharacterSetValues
from pydicom.charset import python_encoding
from pydicom.datadict import dictionary_VM, dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import UID
from pydicom.valuerep import format_number_as_ds

from ..errors import CorruptFileError
from ..text import header_excerpt
from .uids import is_valid_uid

__all__ = [
    "EQUIPMENT_ATTRIBUTES",
    "IMAGE_ATTRIBUTES",
    "PATIENT_STUDY_ATTRIBUTES",
    "HeaderRepair",
    "RepairedHeader",
    "repair_source_header",
]

#: Patient and study attributes inherited by a derived object, with their type in PS3.3
#: (C.7.1.1 Patient, C.7.2.1 General Study, C.7.2.2 Patient Study). 1C/2C attributes that only
#: apply to animals or de-identified data are kept when valid and never supplied.
PATIENT_STUDY_ATTRIBUTES: dict[str, str] = {
    "PatientName": "2", "PatientID": "2", "IssuerOfPatientID": "3", "TypeOfPatientID": "3",
    "IssuerOfPatientIDQualifiersSequence": "3", "PatientBirthDate": "2", "PatientBirthTime": "3", "PatientSex": "2",
    "OtherPatientIDsSequence": "3", "OtherPatientNames": "3", "EthnicGroupCodeSequence": "3", "PatientComments": "3",
    "QualityControlSubject": "3", "ReferencedPatientSequence": "3", "PatientIdentityRemoved": "3",
    "DeidentificationMethod": "1C", "DeidentificationMethodCodeSequence": "1C", "PatientSpeciesDescription": "1C",
    "PatientSpeciesCodeSequence": "1C", "PatientBreedDescription": "2C", "PatientBreedCodeSequence": "2C",
    "BreedRegistrationSequence": "2C", "ResponsiblePerson": "2C", "ResponsiblePersonRole": "1C",
    "ResponsibleOrganization": "2C",
    "StudyInstanceUID": "1", "StudyDate": "2", "StudyTime": "2", "ReferringPhysicianName": "2", "StudyID": "2",
    "AccessionNumber": "2", "IssuerOfAccessionNumberSequence": "3", "StudyDescription": "3",
    "ProcedureCodeSequence": "3", "PhysiciansOfRecord": "3", "NameOfPhysiciansReadingStudy": "3",
    "ConsultingPhysicianName": "3", "ReferencedStudySequence": "3", "RequestingService": "3",
    "RequestingServiceCodeSequence": "3", "ReasonForPerformedProcedureCodeSequence": "3",
    "AdmittingDiagnosesDescription": "3", "AdmittingDiagnosesCodeSequence": "3", "PatientAge": "3",
    "PatientSize": "3", "PatientWeight": "3", "PatientBodyMassIndex": "3", "MeasuredAPDimension": "3",
    "MeasuredLateralDimension": "3", "MedicalAlerts": "3", "Allergies": "3", "Occupation": "3", "SmokingStatus": "3",
    "AdditionalPatientHistory": "3", "PregnancyStatus": "3", "LastMenstrualDate": "3", "PatientSexNeutered": "2C",
    "ReasonForVisit": "3", "AdmissionID": "3", "ServiceEpisodeID": "3", "ServiceEpisodeDescription": "3",
    "PatientState": "3",
}
#: Equipment and acquisition attributes highdicom records as the source's contributing equipment (C.7.5.1).
EQUIPMENT_ATTRIBUTES: dict[str, str] = {
    "Manufacturer": "3", "InstitutionName": "3", "InstitutionAddress": "3", "StationName": "3",
    "InstitutionalDepartmentName": "3", "ManufacturerModelName": "3", "DeviceSerialNumber": "3",
    "SoftwareVersions": "3", "AcquisitionDateTime": "3", "AcquisitionDate": "3", "AcquisitionTime": "3",
}
#: Image attributes a derived object takes from its source. Type 1 here means "needed to reference the
#: source": a broken value refuses the source. Patient Orientation is Type 2C in the SEG's General Image
#: module and its condition (no Image Orientation (Patient)) holds for projection radiographs. Pixel
#: Spacing is left out: a SEG in the source's pixel grid takes its spacing from the referenced image, and
#: highdicom cannot read back the Pixel Measures it writes for a projection radiograph (no Slice Thickness).
IMAGE_ATTRIBUTES: dict[str, str] = {
    "SOPClassUID": "1", "SOPInstanceUID": "1", "SeriesInstanceUID": "1", "Rows": "1", "Columns": "1",
    "Modality": "3", "SeriesNumber": "3", "InstanceNumber": "3", "PatientOrientation": "2",
    "FrameOfReferenceUID": "3", "PositionReferenceIndicator": "3",
}

#: Text VRs whose values may hold a backslash; in every other text VR it separates values.
_UNSPLIT_TEXT_VRS = frozenset({"ST", "LT", "UT", "UR"})
#: Longest value per VR, in characters (PS3.5 6.2); PN is checked per component group.
_MAX_LENGTH = {"AE": 16, "CS": 16, "SH": 16, "LO": 64, "ST": 1024, "LT": 10240, "DS": 16, "IS": 12, "UI": 64}
#: Control characters: only ESC (ISO 2022) is allowed in short texts; long texts also allow TAB, LF, FF, CR.
_SHORT_TEXT_FORBIDDEN = re.compile(r"[\x00-\x1a\x1c-\x1f\x7f]")
_LONG_TEXT_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")
_LONG_TEXT_VRS = ("ST", "LT", "UT", "UC")
#: Keyword endings of values that identify something: never shortened, only emptied or removed.
_IDENTIFYING_SUFFIXES = ("ID", "IDs", "Number", "UID", "Numbers")
#: Enumerated values (PS3.3) of coded strings among the inherited attributes.
_ENUMERATED = {
    "PatientSex": ("M", "F", "O"),
    "PatientSexNeutered": ("ALTERED", "UNALTERED"),
    "PatientIdentityRemoved": ("YES", "NO"),
    "QualityControlSubject": ("YES", "NO"),
    "SmokingStatus": ("YES", "NO", "UNKNOWN"),
}
_AGE = re.compile(r"^\d{3}[DWMY]$")
_LOOSE_AGE = re.compile(r"^(\d{1,3})\s*([DWMY]?)$", re.IGNORECASE)
_DATE = re.compile(r"^\d{8}$")
_LOOSE_DATE = re.compile(r"^(\d{4})[-./](\d{2})[-./](\d{2})$")
_TIME = re.compile(r"^([01]\d|2[0-3])([0-5]\d((60|[0-5]\d)(\.\d{1,6})?)?)?$")
_LOOSE_TIME = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?$")
_DATETIME = re.compile(r"^\d{4}((0[1-9]|1[0-2])((0[1-9]|[12]\d|3[01])(([01]\d|2[0-3])([0-5]\d((60|[0-5]\d)(\.\d{1,6})?)?)?)?)?)?"
                       r"([+-](0\d|1[0-4])[0-5]\d)?$")
_CODE_STRING = re.compile(r"^[A-Z0-9 _]*$")
_DECIMAL = re.compile(r"^ *[+-]?(\d+|\d+\.\d*|\.\d+)([eE][+-]?\d+)? *$")
_INTEGER = re.compile(r"^ *[+-]?\d+ *$")
_PATIENT_ORIENTATION = re.compile(r"^[APRLHF]{1,3}$")
_BINARY_NUMBER_VRS = ("US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "AT")
#: VRs whose values are not text: an element stored with one of them where the standard gives another (or the reverse)
#: cannot be re-read as the standard's VR.
_NOT_TEXT_VRS = ("SQ", "OB", "OW", "OD", "OF", "OL", "OV", *_BINARY_NUMBER_VRS)
#: What pydicom raises when a stored value cannot be converted to its VR's Python type (e.g. DS "heavy").
_CONVERSION_ERRORS = (ValueError, TypeError, OverflowError, KeyError, NotImplementedError)
#: Character set terms that mean the default repertoire (ASCII).
_DEFAULT_REPERTOIRE = ("", "ISO_IR 6", "ISO 2022 IR 6")
#: The Specific Character Set terms highdicom writes (an empty first value of an ISO 2022 set is not among them).
_WRITABLE_CHARACTER_SETS = frozenset(term.value for term in SpecificCharacterSetValues)


@dataclass(frozen=True)
class HeaderRepair:
    """One change made to an inherited attribute; ``rule`` never quotes the header's values."""

    keyword: str
    action: str  # "repaired", "emptied", "removed" or "supplied"
    rule: str

    def __str__(self) -> str:
        return f"{self.keyword}: {self.action} ({self.rule})"


@dataclass(frozen=True)
class RepairedHeader:
    """The cleaned header-only source dataset and the list of changes made to build it."""

    dataset: Dataset
    repairs: tuple[HeaderRepair, ...]


class _InvalidValueError(Exception):
    """A value that cannot be kept; the message says which rule it breaks (without the value)."""


def repair_source_header(ds: Dataset, path: str | PathLike | None = None) -> RepairedHeader:
    """Header-only copy of ``ds`` holding the inherited attributes, each valid for its VR and type.

    Raises :class:`CorruptFileError` (naming ``path``) when a Type 1 reference of the source is
    missing or invalid. ``ds`` itself is not modified.
    """
    cleaned = Dataset()
    repairs: list[HeaderRepair] = []
    tables = (PATIENT_STUDY_ATTRIBUTES, EQUIPMENT_ATTRIBUTES, IMAGE_ATTRIBUTES)
    for keyword, attribute_type in ((k, t) for table in tables for k, t in table.items()):
        try:
            element = ds.data_element(keyword) if keyword in ds else None
            if element is None or element.VR == "UN":
                _handle_absent(cleaned, keyword, attribute_type, repairs, path, unknown_vr=element is not None)
                continue
            vr, value, rule = _checked_element(element)
            if attribute_type == "1" and _is_empty(value):
                raise _InvalidValueError("it is empty")
        except _CONVERSION_ERRORS:
            _handle_invalid(cleaned, keyword, attribute_type, "the stored value cannot be parsed for its VR", repairs, path)
            continue
        except _InvalidValueError as problem:
            _handle_invalid(cleaned, keyword, attribute_type, str(problem), repairs, path)
            continue
        cleaned.add(DataElement(element.tag, vr, value))
        if rule:
            repairs.append(HeaderRepair(keyword, "repaired", rule))
    _check_geometry(cleaned, repairs, path)
    _set_character_set(cleaned, ds.get("SpecificCharacterSet"), repairs)
    return RepairedHeader(cleaned, tuple(repairs))


def _handle_absent(cleaned: Dataset, keyword: str, attribute_type: str, repairs: list[HeaderRepair],
                   path: str | PathLike | None, unknown_vr: bool) -> None:
    why = "its value representation is unknown (UN)" if unknown_vr else "it is missing"
    if attribute_type == "1":
        raise CorruptFileError(f"the header's {keyword} cannot be used because {why}; "
                               "no derived object can reference this image", path)
    if attribute_type == "2":
        cleaned.add(DataElement(tag_for_keyword(keyword), dictionary_VR(keyword), _empty(dictionary_VR(keyword))))
        repairs.append(HeaderRepair(keyword, "supplied", f"Type 2 attribute supplied empty because {why}"))
    elif unknown_vr:
        repairs.append(HeaderRepair(keyword, "removed", why))


def _handle_invalid(cleaned: Dataset, keyword: str, attribute_type: str, problem: str,
                    repairs: list[HeaderRepair], path: str | PathLike | None) -> None:
    if attribute_type == "1":
        raise CorruptFileError(f"the header's {keyword} is invalid ({problem}); "
                               "no derived object can reference this image", path)
    if attribute_type in ("2", "2C"):
        vr = dictionary_VR(keyword)
        cleaned.add(DataElement(tag_for_keyword(keyword), vr, _empty(vr)))
        repairs.append(HeaderRepair(keyword, "emptied", problem))
    else:
        repairs.append(HeaderRepair(keyword, "removed", problem))


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, MultiValue | list) and len(value) == 0)


def _empty(vr: str) -> Any:
    return [] if vr == "SQ" else None if vr in _BINARY_NUMBER_VRS else ""


def _check_geometry(cleaned: Dataset, repairs: list[HeaderRepair], path: str | PathLike | None) -> None:
    """Rules beyond the VR: positive size, anatomical patient orientation, no reference indicator without its frame."""
    for keyword in ("Rows", "Columns"):
        if not cleaned[keyword].value:
            raise CorruptFileError(f"the header's {keyword} is empty or zero; no derived object can match this image", path)
    orientation = cleaned.get("PatientOrientation")
    if orientation and (len(orientation) != 2 or not all(_PATIENT_ORIENTATION.match(v) for v in orientation)):
        cleaned.PatientOrientation = ""
        repairs.append(HeaderRepair("PatientOrientation", "emptied",
                                    "patient orientation must be two directions made of A, P, R, L, H, F"))
    if "FrameOfReferenceUID" not in cleaned and "PositionReferenceIndicator" in cleaned:
        del cleaned.PositionReferenceIndicator


def _set_character_set(cleaned: Dataset, declared: Any, repairs: list[HeaderRepair]) -> None:
    """Keep the declared character set when known; use UTF-8 when non-ASCII text has no usable declaration."""
    terms = [t.strip() for t in ([declared] if isinstance(declared, str) else list(declared or []))]
    known = bool(terms) and all(t in python_encoding for t in terms)
    default_only = all(t in _DEFAULT_REPERTOIRE for t in terms)
    if known and not default_only and not all(t in _WRITABLE_CHARACTER_SETS for t in terms):
        # e.g. "\ISO 2022 IR 87" (Japanese) or "\ISO 2022 IR 149" (Korean): read, but not among the terms highdicom
        # writes; the text, already decoded, is written as UTF-8
        cleaned.SpecificCharacterSet = "ISO_IR 192"
        repairs.append(HeaderRepair("SpecificCharacterSet", "repaired",
                                    f"the character set {chr(92).join(terms)!r} is read but cannot be written in the "
                                    "SEG; the text is written as UTF-8 (ISO_IR 192)"))
        return
    if known and not default_only:
        cleaned.SpecificCharacterSet = terms[0] if len(terms) == 1 else terms
    elif _has_non_ascii_text(cleaned):
        cleaned.SpecificCharacterSet = "ISO_IR 192"
        repairs.append(HeaderRepair("SpecificCharacterSet", "repaired",
                                    "non-ASCII text without a character set that holds it; declared UTF-8 (ISO_IR 192)"))
    elif known and any(terms):
        cleaned.SpecificCharacterSet = terms[0] if len(terms) == 1 else terms
    elif any(terms):
        repairs.append(HeaderRepair("SpecificCharacterSet", "removed", "unknown character set term; the text is ASCII"))


def _has_non_ascii_text(dataset: Dataset) -> bool:
    found = False

    def visit(_: Dataset, element: DataElement) -> None:
        nonlocal found
        values = element.value if isinstance(element.value, MultiValue | list) else [element.value]
        if element.VR not in ("SQ", *_BINARY_NUMBER_VRS) and any(not str(v).isascii() for v in values if v is not None):
            found = True

    dataset.walk(visit)
    return found


def _standard_vr(element: DataElement) -> str:
    """The VR the standard gives the element's tag; the stored one where the dictionary allows several."""
    try:
        standard = dictionary_VR(element.tag)
    except KeyError:
        return element.VR
    return element.VR if " or " in standard else standard


def _checked_element(element: DataElement) -> tuple[str, Any, str | None]:
    """(VR, value to keep, repair rule or None), checked against the standard's VR for the tag (an explicit-VR
    file can store a date as DS or a sex as LO; a derived object must carry the standard's); raises
    :class:`_InvalidValueError` when the element cannot be kept."""
    vr, value = _standard_vr(element), element.value
    if vr != element.VR and (vr in _NOT_TEXT_VRS or element.VR in _NOT_TEXT_VRS):
        raise _InvalidValueError(f"stored with VR {element.VR} where the standard gives {vr}")
    if vr == "SQ":
        return (vr, *_checked_sequence(value))
    if _is_empty(value):
        return vr, _empty(vr), None
    if vr in _BINARY_NUMBER_VRS:
        return vr, value, None
    values = list(value) if isinstance(value, MultiValue | list) else [value]
    if len(values) == 1 and isinstance(values[0], str) and vr not in _UNSPLIT_TEXT_VRS:
        values = values[0].split("\\")  # stored as ST, LT or UT, where a backslash separates nothing
    vm = dictionary_VM(element.tag)
    if not _vm_allows(vm, len(values)):
        raise _InvalidValueError(f"{len(values)} values where VM {vm} is allowed")
    checker = _CHECKERS.get(vr)
    if checker is None:
        raise _InvalidValueError(f"VR {vr} is not expected here")
    rules: list[str] = []
    fixed: list[Any] = []
    for item in values:
        new, rule = checker(element.keyword, _text(item))
        fixed.append(new)
        if rule:
            rules.append(rule)
    kept = fixed[0] if len(fixed) == 1 else fixed
    return vr, kept, "; ".join(dict.fromkeys(rules)) or None


def _checked_sequence(items: Sequence) -> tuple[Any, str | None]:
    """Copy of a sequence with every nested public element checked; one bad nested value invalidates it."""
    copies: list[Dataset] = []
    rules: list[str] = []
    for item in items:
        copy = Dataset()
        for tag in item.keys():  # noqa: SIM118 - iterating a Dataset converts every element, its keys do not
            try:
                nested = item[tag]
                if nested.tag.is_private or nested.VR == "UN" or not nested.keyword:
                    continue
                vr, value, rule = _checked_element(nested)
            except _CONVERSION_ERRORS:
                raise _InvalidValueError(f"nested {tag}: the stored value cannot be parsed for its VR") from None
            except _InvalidValueError as problem:
                raise _InvalidValueError(f"nested {nested.keyword}: {problem}") from None
            copy.add(DataElement(nested.tag, vr, value))
            if rule:
                rules.append(f"nested {nested.keyword}: {rule}")
        copies.append(copy)
    return copies, "; ".join(dict.fromkeys(rules)) or None


def _vm_allows(vm: str, count: int) -> bool:
    """Whether ``count`` values satisfy a dictionary VM such as ``1``, ``2``, ``1-n``, ``2-2n`` or ``1-3``."""
    low, _, high = vm.partition("-")
    minimum = int(low)
    if not high:
        return count == minimum
    if high.endswith("n"):
        step = int(high[:-1] or 1)
        return count >= minimum and count % step == 0
    return minimum <= count <= int(high)


def _text(value: Any) -> str:
    """The value as it was written in the file (dates and numbers keep their original text)."""
    original = getattr(value, "original_string", None)
    if isinstance(original, str):
        return original
    return str(value)


def _is_identifying(keyword: str) -> bool:
    return keyword.endswith(_IDENTIFYING_SUFFIXES)


def _check_text(keyword: str, value: str, vr: str) -> tuple[str, str | None]:
    forbidden = _LONG_TEXT_FORBIDDEN if vr in _LONG_TEXT_VRS else _SHORT_TEXT_FORBIDDEN
    limit = _MAX_LENGTH.get(vr)
    has_control = forbidden.search(value) is not None
    too_long = limit is not None and len(value) > limit
    if not has_control and not too_long:
        return value, None
    if _is_identifying(keyword):
        raise _InvalidValueError("control characters in an identifier" if has_control else
                       f"identifier longer than the {limit} characters {vr} allows")
    rules = []
    if has_control:
        value = forbidden.sub(" ", value)
        rules.append("control characters replaced by spaces")
    if limit is not None and len(value) > limit:
        value = value[:limit].rstrip()
        rules.append(f"text shortened to the {limit} characters {vr} allows")
    return value, "; ".join(rules)


def _check_cs(keyword: str, value: str) -> tuple[str, str | None]:
    stripped = value.strip()
    candidate = stripped.upper()
    allowed = _ENUMERATED.get(keyword)
    if not _CODE_STRING.match(candidate) or len(candidate) > _MAX_LENGTH["CS"] or (allowed and candidate not in allowed):
        expected = f"one of {', '.join(allowed)}" if allowed else "upper-case letters, digits, space, underscore"
        raise _InvalidValueError(f"code string is not {expected}")
    return candidate, None if candidate == stripped else "code string upper-cased"


def _check_as(_: str, value: str) -> tuple[str, str | None]:
    if _AGE.match(value):
        return value, None
    loose = _LOOSE_AGE.match(value.strip())
    if loose is None:
        raise _InvalidValueError("age is not nnnD, nnnW, nnnM or nnnY")
    unit = loose.group(2).upper()
    rule = "age rewritten as nnnU" if unit else "age without unit; years (Y) assumed"
    return f"{int(loose.group(1)):03d}{unit or 'Y'}", rule


def _check_da(_: str, value: str) -> tuple[str, str | None]:
    stripped = value.strip()
    loose = _LOOSE_DATE.match(stripped)
    candidate = "".join(loose.groups()) if loose else stripped
    if not _DATE.match(candidate):
        raise _InvalidValueError("date is not YYYYMMDD")
    try:
        datetime.date(int(candidate[:4]), int(candidate[4:6]), int(candidate[6:]))
    except ValueError:
        raise _InvalidValueError("date is not a calendar date") from None
    return candidate, "date rewritten as YYYYMMDD" if candidate != value else None


def _check_tm(_: str, value: str) -> tuple[str, str | None]:
    stripped = value.strip()
    loose = _LOOSE_TIME.match(stripped)
    candidate = stripped
    if loose:
        hours, minutes, seconds, fraction = loose.groups()
        candidate = hours + minutes + (seconds or "") + ((fraction or "")[:7] if seconds else "")
    if not _TIME.match(candidate):
        raise _InvalidValueError("time is not HHMMSS.FFFFFF")
    return candidate, "time rewritten as HHMMSS" if candidate != value else None


def _check_dt(_: str, value: str) -> tuple[str, str | None]:
    stripped = value.strip()
    if not _DATETIME.match(stripped):
        raise _InvalidValueError("date-time is not YYYYMMDDHHMMSS.FFFFFF&ZZXX")
    return stripped, None


def _check_ds(_: str, value: str) -> tuple[str, str | None]:
    stripped = value.strip()
    try:
        number = float(stripped)
    except ValueError:
        raise _InvalidValueError("decimal string is not a number") from None
    if not math.isfinite(number):
        raise _InvalidValueError("decimal string is not finite")
    if _DECIMAL.match(stripped) and len(stripped) <= _MAX_LENGTH["DS"]:
        return stripped, None
    return format_number_as_ds(number), "decimal string rewritten within 16 characters"


def _check_is(_: str, value: str) -> tuple[str, str | None]:
    stripped = value.strip()
    if _INTEGER.match(stripped) and len(stripped) <= _MAX_LENGTH["IS"] and -(2**31) <= int(stripped) < 2**31:
        return stripped, None
    raise _InvalidValueError("integer string is not a 32-bit integer")


def _check_ui(keyword: str, value: str) -> tuple[str, str | None]:
    if not is_valid_uid(value):
        raise _InvalidValueError("UID is not dot-separated digits without leading zeros, at most 64 characters")
    if keyword == "SOPClassUID" and not _is_storage_sop_class(value):
        raise _InvalidValueError(f"{header_excerpt(value)} is not a storage SOP Class of the current standard")
    return value, None


def _is_storage_sop_class(value: str) -> bool:
    """Whether pydicom's UID dictionary knows ``value`` as a storage SOP Class that is not retired: the classes a
    Segmentation's references (highdicom) accept."""
    uid = UID(value)
    return uid.type == "SOP Class" and "Storage" in uid.name and not uid.is_retired


def _check_pn(_: str, value: str) -> tuple[str, str | None]:
    groups = value.split("=")
    if len(groups) > 3 or any(len(g.split("^")) > 5 for g in groups):
        raise _InvalidValueError("person name has more than 3 groups or 5 components")
    if any(len(g) > 64 for g in groups) or _SHORT_TEXT_FORBIDDEN.search(value):
        raise _InvalidValueError("person name group longer than 64 characters or with control characters")
    return value, None


_CHECKERS: dict[str, Callable[[str, str], tuple[str, str | None]]] = {
    "AE": lambda k, v: _check_text(k, v, "AE"),
    "SH": lambda k, v: _check_text(k, v, "SH"),
    "LO": lambda k, v: _check_text(k, v, "LO"),
    "ST": lambda k, v: _check_text(k, v, "ST"),
    "LT": lambda k, v: _check_text(k, v, "LT"),
    "UT": lambda k, v: _check_text(k, v, "UT"),
    "UC": lambda k, v: _check_text(k, v, "UC"),
    "CS": _check_cs,
    "AS": _check_as,
    "DA": _check_da,
    "TM": _check_tm,
    "DT": _check_dt,
    "DS": _check_ds,
    "IS": _check_is,
    "UI": _check_ui,
    "PN": _check_pn,
}
