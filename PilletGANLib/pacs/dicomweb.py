"""A DICOMweb PACS as a source of radiographs and a sink of SEGs (``dicomweb-client``: QIDO-RS, WADO-RS, STOW-RS).

:class:`DicomwebPacs` lists the instances of the selected studies (QIDO-RS, paged), retrieves one
instance at a time in its stored transfer syntax straight into a file (WADO-RS), lists the SEGs a
study already holds and stores SEGs (STOW-RS). Every failure becomes a :class:`PacsError` naming
the request, the study or instance and the cause (HTTP status, connection refused, timeout, TLS).
UIDs from the PACS are untrusted text: files are named with :func:`~PilletGANLib.dicom.uid_path`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pydicom
import requests
from dicomweb_client import DICOMwebClient

from ..dicom import is_lenient_uid
from ..errors import ConfigurationError, CorruptFileError, PacsError
from ..outputs import atomic_path
from ..text import error_excerpt

__all__ = ["PAGE_SIZE", "DicomwebPacs", "PacsQuery", "RemoteInstance", "describe_http_failure"]

logger = logging.getLogger(__name__)

#: The attributes every QIDO-RS answer is read for (tags as DICOM JSON keys).
_STUDY, _SERIES, _SOP, _MODALITY = "0020000D", "0020000E", "00080018", "00080060"
_DATE = re.compile(r"^\d{8}$")


@dataclass(frozen=True)
class RemoteInstance:
    """An instance a PACS listed: its UIDs (untrusted text) and Modality."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    modality: str = ""

    @property
    def resource(self) -> str:
        """The WADO-RS path of the instance, relative to the service root: the ``source`` in the records."""
        return f"studies/{self.study_instance_uid}/series/{self.series_instance_uid}/instances/{self.sop_instance_uid}"

    @property
    def label(self) -> str:
        """``study <uid>, instance <uid>``, for messages."""
        return f"study {self.study_instance_uid}, instance {self.sop_instance_uid}"


@dataclass(frozen=True)
class PacsQuery:
    """Which instances to pull: studies (all when empty), studies dated ``since`` or later, series modalities."""

    studies: tuple[str, ...] = ()
    since: str | None = None
    modalities: tuple[str, ...] = ("CR", "DX")

    def __post_init__(self) -> None:
        if self.since is not None and not _is_date(self.since):
            raise ConfigurationError(f"--since must be a date YYYYMMDD, not {self.since!r}")
        modalities = tuple(sorted({m.strip().upper() for m in self.modalities if m.strip()}))
        if not modalities:
            raise ConfigurationError("--modality needs at least one modality, e.g. CR,DX")
        studies = tuple(dict.fromkeys(s.strip() for s in self.studies if s.strip()))
        for study in studies:  # a request path is built from it
            if not is_lenient_uid(study):
                raise ConfigurationError(f"--study {study[:80]!r} is not a Study Instance UID (digits and "
                                         "dots, at most 64)")
        object.__setattr__(self, "modalities", modalities)
        object.__setattr__(self, "studies", studies)

    def to_dict(self) -> dict[str, Any]:
        return {"studies": list(self.studies), "since": self.since, "modalities": list(self.modalities)}


def _is_date(text: str) -> bool:
    """Whether ``text`` is a calendar day written YYYYMMDD."""
    if not _DATE.match(text):
        return False
    try:
        date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return False
    return True


def _value(item: dict[str, Any], tag: str) -> str:
    """The first value of ``tag`` in a DICOM JSON data set, as text; "" when absent or not a list of values."""
    element = item.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    return str(values[0]).strip() if isinstance(values, list) and values else ""


def _os_cause(err: BaseException) -> str:
    """The innermost readable cause of a ``requests`` connection error ("Connection refused", ...)."""
    text = str(err)
    match = re.search(r"certificate verify failed: ([^()'\"]+)", text) or re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if match:
        return match.group(1).strip()
    match = re.search(r"(Name or service not known|Temporary failure in name resolution|timed out)", text)
    return match.group(1) if match else text[:200]


def describe_http_failure(err: BaseException, url: str, timeout: float) -> str:
    """What went wrong with a request, in words: the HTTP status and what to do, or the network cause."""
    if isinstance(err, requests.HTTPError) and err.response is not None:
        code = err.response.status_code
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = err.response.reason or ""
        hint = {401: "the PACS refused the credentials: set PILLETGAN_PACS_USER and PILLETGAN_PACS_PASSWORD "
                     "(or PILLETGAN_PACS_TOKEN), or give a netrc file with an entry for the host",
                403: "the credentials are not allowed to do this on the PACS",
                404: "not found on the PACS (check the URL, including the DICOMweb root such as /dicom-web)"}.get(code)
        return f"HTTP {code} {phrase}" + (f": {hint}" if hint else "")
    if isinstance(err, requests.exceptions.SSLError):
        return (f"TLS verification of {url} failed ({_os_cause(err)}): give the PACS's CA certificate with "
                "--ca-bundle")
    if isinstance(err, requests.Timeout):
        return f"no answer from {url} within {timeout:g} s (timeout)"
    if isinstance(err, requests.ConnectionError):
        return f"cannot connect to {url} ({_os_cause(err)})"
    return f"{type(err).__name__}: {err}"


#: What a request may raise besides our own errors: the network, HTTP statuses, and malformed answers.
_REQUEST_ERRORS = (requests.RequestException, ValueError, KeyError, TypeError, IndexError)
#: What pydicom raises when a dataset cannot be encoded (its own checks, or values that do not fit their VR).
_ENCODING_ERRORS = (ValueError, TypeError, KeyError, AttributeError, OverflowError, NotImplementedError)
#: QIDO-RS results asked for per request.
PAGE_SIZE = 500
#: Results of one listing after which a PACS still answering full pages is taken to page without end.
MAX_RESULTS = 1_000_000


def _search_all(search: Callable[..., list[dict[str, Any]]], key: str, *args: Any,
                on_unlisted: Callable[[int, requests.HTTPError], None] | None = None, **kwargs: Any
                ) -> list[dict[str, Any]]:
    """Every result of a QIDO-RS search, a page (``limit``/``offset``) at a time.

    Stops at a short page, or at a page with nothing new: some servers ignore ``offset`` (and
    ``dicomweb-client``'s own ``get_remaining`` then never ends). With ``on_unlisted``, a page the server
    refuses with an HTTP error (Orthanc answers 400 for a whole listing when one stored file is damaged) is
    asked for one result at a time, and each result it still refuses goes to ``on_unlisted`` (its position,
    the error); the page's error is raised when none of its first results can be listed either.
    """
    results: dict[str, dict[str, Any]] = {}
    offset = 0
    while True:
        if offset >= MAX_RESULTS:
            raise ValueError(f"the PACS answered {offset:,} results and still full pages; the listing was stopped")
        try:
            page = _data_sets(search(*args, limit=PAGE_SIZE, offset=offset, **kwargs))
            covered, ended = len(page), len(page) < PAGE_SIZE
        except requests.HTTPError as err:
            if on_unlisted is None:
                raise
            page, ended = _one_at_a_time(search, offset, err, on_unlisted, *args, **kwargs)
            covered = PAGE_SIZE
        new = {_value(item, key): item for item in page if _value(item, key) not in results}
        results.update(new)
        if ended or not new:
            return list(results.values())
        offset += covered


def _not_addressable(what: str, uid: str) -> str:
    return (f"the PACS lists {what} whose UID {uid!r} is not a UID (digits and dots, at most 64), which DICOMweb "
            "requests cannot address")


def _data_sets(answer: Any) -> list[dict[str, Any]]:
    """A QIDO-RS answer, checked to be a JSON array of DICOM data sets; ``ValueError`` otherwise."""
    if not isinstance(answer, list) or not all(isinstance(item, dict) for item in answer):
        raise ValueError("the answer is not a JSON array of DICOM data sets")
    return answer


#: Results asked for one at a time, after a refused page, before the whole page counts as refused.
_PROBE = 10


def _one_at_a_time(search: Callable[..., list[dict[str, Any]]], offset: int, err: requests.HTTPError,
                   on_unlisted: Callable[[int, requests.HTTPError], None], *args: Any, **kwargs: Any
                   ) -> tuple[list[dict[str, Any]], bool]:
    """The results of the refused page at ``offset``, one request each; returns them and whether the listing ended
    within the page. Raises ``err`` when none of the first :data:`_PROBE` results can be listed."""
    listed: list[dict[str, Any]] = []
    refused: list[tuple[int, requests.HTTPError]] = []
    ended = False
    for position in range(offset, offset + PAGE_SIZE):
        if not listed and len(refused) >= _PROBE:
            raise err
        try:
            one = _data_sets(search(*args, limit=1, offset=position, **kwargs))
        except requests.HTTPError as single:
            refused.append((position, single))
            continue
        if not one:
            ended = True
            break
        listed.extend(one[:1])
    if not listed:
        raise err
    for position, single in refused:
        on_unlisted(position, single)
    return listed, ended


class DicomwebPacs:
    """One DICOMweb service (``url`` is its root, e.g. ``http://host:8042/dicom-web``).

    Args:
        url: the service root.
        session: the HTTP session with credentials and TLS settings (:func:`pacs_session`).
        timeout: seconds to wait for a connection and for each answer.
        retries: further attempts of a request that failed on the network or with HTTP 408, 429, 503 or 504
            (``dicomweb-client`` waits 2, 4, 8, ... s between them).
        http_compression: let the server gzip its answers. Off by default: gzipping images costs the PACS
            about a second per radiograph of CPU (Orthanc, measured), more than it saves on a hospital network;
            turn it on for a slow link and uncompressed images.
    """

    def __init__(self, url: str, session: requests.Session | None = None, timeout: float = 60.0,
                 retries: int = 4, http_compression: bool = False) -> None:
        if retries < 0:
            raise ConfigurationError("--retries must be 0 or more")
        self.url, self.timeout, self.retries = url.rstrip("/"), float(timeout), int(retries)
        try:
            self.client = DICOMwebClient(self.url, session=session or requests.Session(), timeout=self.timeout,
                                         headers=None if http_compression else {"Accept-Encoding": "identity"})
        except ValueError as err:
            raise ConfigurationError(f"the PACS URL {url!r} is not usable ({err})") from err
        self.client.set_http_retry_params(retry=self.retries > 0, max_attempts=self.retries + 1)

    def _fail(self, action: str, about: str, err: BaseException) -> PacsError:
        retried = isinstance(err, requests.RequestException) and not isinstance(err, requests.HTTPError)
        attempts = f" (after {self.retries + 1} attempts)" if self.retries and retried else ""
        return PacsError(f"{action} failed: {describe_http_failure(err, self.url, self.timeout)}{attempts}", about)

    # -- source ----------------------------------------------------------------------------------
    def find_studies(self, query: PacsQuery) -> list[str]:
        """Study Instance UIDs to look into: ``query.studies`` as given, or the studies QIDO-RS finds.

        Raises :class:`PacsError` when the PACS cannot be queried (the run cannot start).
        """
        if query.studies:
            return list(query.studies)
        found: dict[str, None] = {}
        for modality in query.modalities:  # one query per modality: list matching of ModalitiesInStudy varies by PACS
            filters = {"ModalitiesInStudy": modality}
            if query.since:
                filters["StudyDate"] = f"{query.since}-"
            try:
                studies = _search_all(self.client.search_for_studies, _STUDY, search_filters=filters)
            except _REQUEST_ERRORS as err:
                raise self._fail(f"QIDO-RS search for {modality} studies", self.url, err) from err
            found.update((uid, None) for uid in (_value(s, _STUDY) for s in studies) if uid)
        return sorted(found)

    def find_instances(self, study_uid: str, modalities: Sequence[str],
                       on_problem: Callable[[PacsError], None] | None = None) -> list[RemoteInstance]:
        """The instances of ``study_uid`` in series of ``modalities``, sorted by series and SOP Instance UID.

        Raises :class:`PacsError` naming the study when it cannot be listed. Without ``on_problem``, so does a
        series or an instance that cannot be listed; with it, each of those is passed to ``on_problem``
        (naming the series, or the instance's position in its series' listing) and the others are listed.
        """
        about = f"study {study_uid}"
        if not is_lenient_uid(study_uid):
            raise PacsError(_not_addressable("a study", study_uid), about)
        try:
            series = _search_all(self.client.search_for_series, _SERIES, study_uid)
        except _REQUEST_ERRORS as err:
            raise self._fail("QIDO-RS search for series", about, err) from err
        instances: list[RemoteInstance] = []
        for item in series:
            modality, series_uid = _value(item, _MODALITY).upper(), _value(item, _SERIES)
            if modality not in modalities or not series_uid:
                continue
            try:
                instances.extend(self._series_instances(study_uid, series_uid, modality, on_problem))
            except PacsError as err:
                if on_problem is None:
                    raise
                on_problem(err)
        return sorted(instances, key=lambda i: (i.series_instance_uid, i.sop_instance_uid))

    def _series_instances(self, study_uid: str, series_uid: str, modality: str,
                          on_problem: Callable[[PacsError], None] | None) -> list[RemoteInstance]:
        """The listable instances of one series (see :meth:`find_instances`); raises :class:`PacsError` naming the
        series when it cannot be listed."""
        about = f"study {study_uid}, series {series_uid}"
        action = f"QIDO-RS search for the instances of series {series_uid}"
        if not is_lenient_uid(series_uid):
            raise PacsError(_not_addressable("a series", series_uid), about)
        on_unlisted = None if on_problem is None else partial(self._report_unlisted, on_problem, action, about)
        try:
            listed = _search_all(self.client.search_for_instances, _SOP, study_uid, series_uid,
                                 on_unlisted=on_unlisted)
        except _REQUEST_ERRORS as err:
            raise self._fail(action, about, err) from err
        instances = []
        for sop in filter(None, (_value(i, _SOP) for i in listed)):
            instance = RemoteInstance(study_uid, series_uid, sop, modality)
            if is_lenient_uid(sop):
                instances.append(instance)
                continue
            err = PacsError(_not_addressable(f"an instance of series {series_uid}", sop), instance.label)
            if on_problem is None:
                raise err
            on_problem(err)
        return instances

    def _report_unlisted(self, on_problem: Callable[[PacsError], None], action: str, about: str, position: int,
                         err: requests.HTTPError) -> None:
        problem = self._fail(f"{action}, result {position + 1} asked for alone,", about, err)
        problem.__cause__ = err  # what the pull's fatal-error check reads
        on_problem(problem)

    def retrieve(self, instance: RemoteInstance, target: Path) -> int:
        """WADO-RS: write ``instance``, in the transfer syntax the PACS stores it in, to ``target`` (atomically);
        returns the number of bytes written. Raises :class:`PacsError` naming the instance."""
        try:
            dataset = self.client.retrieve_instance(instance.study_instance_uid, instance.series_instance_uid,
                                                    instance.sop_instance_uid)
        except _REQUEST_ERRORS as err:
            raise self._fail("WADO-RS retrieve", instance.label, err) from err
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with atomic_path(target) as temporary:
                dataset.save_as(temporary)
        except _ENCODING_ERRORS as err:  # a damaged dataset, e.g. a File Meta element in its body
            raise CorruptFileError(f"the instance the PACS returned cannot be written as a DICOM file "
                                   f"({error_excerpt(err)})", instance.label) from err
        return target.stat().st_size

    # -- sink ------------------------------------------------------------------------------------
    def stored_instances(self, study_uid: str, modality: str = "SEG") -> set[str]:
        """SOP Instance UIDs of the ``modality`` instances ``study_uid`` holds (an unknown study holds none)."""
        try:
            listed = _search_all(self.client.search_for_instances, _SOP, study_uid, search_filters={"Modality": modality})
        except requests.HTTPError as err:
            if err.response is not None and err.response.status_code == HTTPStatus.NOT_FOUND:
                return set()
            raise self._fail(f"QIDO-RS search for the {modality} instances", f"study {study_uid}", err) from err
        except _REQUEST_ERRORS as err:
            raise self._fail(f"QIDO-RS search for the {modality} instances", f"study {study_uid}", err) from err
        return {uid for uid in (_value(i, _SOP) for i in listed) if uid}

    def store(self, paths: Iterable[Path], study_uid: str) -> None:
        """STOW-RS: store the DICOM files ``paths`` in ``study_uid``; raises :class:`PacsError` unless every one
        was stored (an instance the PACS already holds counts as stored)."""
        datasets = [pydicom.dcmread(path) for path in paths]
        uids = [str(ds.SOPInstanceUID) for ds in datasets]
        about = f"study {study_uid}, SEG {', '.join(uids)}"
        try:
            answer = self.client.store_instances(datasets, study_instance_uid=study_uid)
        except _REQUEST_ERRORS as err:
            raise self._fail("STOW-RS store", about, err) from err
        failed = [f"{item.get('ReferencedSOPInstanceUID', '?')} (failure reason {item.get('FailureReason', '?')})"
                  for item in answer.get("FailedSOPSequence", [])]
        stored = {str(item.get("ReferencedSOPInstanceUID", "")) for item in answer.get("ReferencedSOPSequence", [])}
        missing = [uid for uid in uids if uid not in stored]
        if failed or missing:
            raise PacsError("STOW-RS store failed: the PACS did not store " + ", ".join(failed or missing), about)
