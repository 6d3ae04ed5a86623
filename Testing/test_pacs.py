"""``pilletgan pacs`` against a real Orthanc (DICOMweb plugin): pull, analyse, push, rerun, resume, refusals.

Every test starts its own Orthanc on free loopback ports (``orthanc.py``) and uploads copies of the project's
sample radiographs (``dicom_factory``) under new UIDs (five transfer syntaxes). The model is the tiny untrained
one: these tests check the plumbing and the DICOM, not the maps.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
import requests
from dicom_factory import (
    DX_8BIT,
    JPEG_BASELINE,
    JPEG_HEADER_MONO1,
    write_copy,
    write_sr_document,
    write_without_pixel_data,
)
from orthanc import PASSWORD, USER, Orthanc, TlsProxy, free_port, self_signed_certificate, write_radiographs
from pydicom.dataelem import DataElement
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from test_batch import dciodvfy_errors

from PilletGANLib.cli import main
from PilletGANLib.errors import ConfigurationError
from PilletGANLib.pacs import (
    PASSWORD_VARIABLE,
    TOKEN_VARIABLE,
    USER_VARIABLE,
    DicomwebPacs,
    PacsQuery,
    RemoteInstance,
    pacs_session,
    retrieved_path,
)


# -- helpers ---------------------------------------------------------------------------------------------
@pytest.fixture
def credentials(monkeypatch):
    monkeypatch.setenv(USER_VARIABLE, USER)
    monkeypatch.setenv(PASSWORD_VARIABLE, PASSWORD)
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)


def upload_radiographs(server: Orthanc, dicom_dir: Path, folder: Path) -> dict[str, pydicom.Dataset]:
    """The six sample radiographs under new UIDs, stored in the PACS; SOP Instance UID -> header."""
    written = write_radiographs(dicom_dir, folder)
    for path in written.values():
        server.upload(path)
    return {sop: pydicom.dcmread(path, stop_before_pixels=True) for sop, path in written.items()}


def pacs_args(server: Orthanc, out: Path, model: Path, *extra: str) -> list[str]:
    return ["pacs", "--url", server.dicomweb_url, "--out", str(out), "--model", str(model), "--device", "cpu",
            "--batch-size", "2", "--no-progress", *extra]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def segs_in(server: Orthanc, folder: Path) -> dict[str, pydicom.Dataset]:
    """Every SEG the PACS holds, downloaded into ``folder``: referenced source SOP Instance UID -> SEG."""
    folder.mkdir(parents=True, exist_ok=True)
    segs = {}
    for instance in server.instances("SEG"):
        ds = server.download(instance["ID"], folder / f"{instance['ID']}.dcm")
        referenced = ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
        assert referenced not in segs, f"two SEGs reference {referenced}"
        segs[str(referenced)] = ds
    return segs


def result_mtimes(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.glob("*/*/*/result.json")}


# -- the Done-when run -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_pull_and_push_leaves_one_valid_seg_per_radiograph_and_a_rerun_adds_none(orthanc, credentials, dicom_dir,
                                                                                   tiny_model, tmp_path, capsys):
    uploaded = upload_radiographs(orthanc, dicom_dir, tmp_path / "sources")
    syntaxes = {str(ds.file_meta.TransferSyntaxUID) for ds in uploaded.values()}
    assert len(uploaded) == 6 and len(syntaxes) >= 4, syntaxes
    out = tmp_path / "out"

    assert main(pacs_args(orthanc, out, tiny_model, "--push")) == 0
    printed = capsys.readouterr().out
    assert "6 stored, 0 already in the PACS, 0 failed" in printed
    segs = segs_in(orthanc, tmp_path / "segs")
    assert set(segs) == set(uploaded)  # exactly one SEG per radiograph, each referencing its source
    for sop, seg in segs.items():
        source = uploaded[sop]
        assert seg.Modality == "SEG" and seg.StudyInstanceUID == source.StudyInstanceUID
        assert (seg.Rows, seg.Columns) == (source.Rows, source.Columns)
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    for path in sorted((tmp_path / "segs").glob("*.dcm")):
        assert dciodvfy_errors(path) == [], path.name
    summary = read_csv(out / "summary.csv")
    assert {row["status"] for row in summary} == {"succeeded"} and len(summary) == 6
    assert all(row["source"].startswith(f"studies/{row['study_instance_uid']}/series/") for row in summary)
    assert read_csv(out / "errors.csv") == []
    push = read_csv(out / "push.csv")
    assert {row["status"] for row in push} == {"stored"} and len(push) == 6
    run = json.loads((out / "run.json").read_text())
    assert run["exit_code"] == 0 and run["pacs"]["retrieved"] == 6 and run["pacs"]["push"] == {"stored": 6}
    assert not list((out / "retrieved").rglob("*.dcm")), "retrieved images are deleted once analysed"

    # the same command again (resuming): nothing analysed, nothing stored
    before = result_mtimes(out)
    assert main(pacs_args(orthanc, out, tiny_model, "--push", "--resume")) == 0
    assert "0 stored, 6 already in the PACS" in capsys.readouterr().out
    assert result_mtimes(out) == before
    assert {row["status"] for row in read_csv(out / "summary.csv")} == {"already_done"}
    assert json.loads((out / "run.json").read_text())["pacs"]["retrieved"] == 0
    # and into a new folder: analysed again, but the PACS already holds every SEG
    assert main(pacs_args(orthanc, tmp_path / "again", tiny_model, "--push")) == 0
    assert {row["status"] for row in read_csv(tmp_path / "again" / "push.csv")} == {"already_in_pacs"}
    assert len(orthanc.instances("SEG")) == 6


@pytest.mark.slow
def test_an_interrupted_pull_resumes_without_redoing_or_duplicating(orthanc, credentials, dicom_dir, tiny_model,
                                                                    tmp_path):
    uploaded = {}  # five 256 px radiographs (quick to analyse) in one study
    study, series = generate_uid(), generate_uid()
    for index, name in enumerate([JPEG_BASELINE, DX_8BIT] * 2 +
                                 [JPEG_HEADER_MONO1]):
        ds = write_copy(dicom_dir, name, tmp_path / "sources" / f"{index}.dcm", study, series)
        orthanc.upload(tmp_path / "sources" / f"{index}.dcm")
        uploaded[str(ds.SOPInstanceUID)] = ds
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", USER_VARIABLE: USER, PASSWORD_VARIABLE: PASSWORD}
    command = [sys.executable, "-m", "PilletGANLib.cli", *pacs_args(orthanc, out, tiny_model, "--push"),
               "--batch-size", "1"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not list(out.glob("*/*/*/result.json")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = result_mtimes(out)
    assert 1 <= len(done_before) < 5, "the kill must land after the first instance and before the last"

    assert main(pacs_args(orthanc, out, tiny_model, "--push", "--resume")) == 0
    summary = read_csv(out / "summary.csv")
    assert len(summary) == 5
    assert sum(row["status"] == "already_done" for row in summary) == len(done_before)
    assert all(result_mtimes(out)[key] == mtime for key, mtime in done_before.items())
    assert set(segs_in(orthanc, tmp_path / "segs")) == set(uploaded)  # every SEG once, none twice
    assert not list(out.rglob(".*.partial*")) and not list((out / "retrieved").rglob("*.dcm"))


# -- named errors ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_wrong_credentials_are_a_named_error_and_nothing_is_written(orthanc, monkeypatch, tiny_model, tmp_path,
                                                                     capsys):
    monkeypatch.setenv(USER_VARIABLE, USER)
    monkeypatch.setenv(PASSWORD_VARIABLE, "not-the-password")
    assert main(pacs_args(orthanc, tmp_path / "out", tiny_model)) == 2
    error = capsys.readouterr().err
    assert "HTTP 401 Unauthorized" in error and USER_VARIABLE in error and orthanc.dicomweb_url in error
    assert not (tmp_path / "out").exists()


def test_a_dead_url_is_a_named_error(credentials, tiny_model, tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    assert main(["pacs", "--url", url, "--out", str(tmp_path / "out"), "--model", str(tiny_model), "--retries", "0",
                 "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert f"cannot connect to {url} (Connection refused)" in error


def test_a_pacs_that_does_not_answer_is_a_named_timeout(credentials, tiny_model, tmp_path, capsys):
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/dicom-web"
        assert main(["pacs", "--url", url, "--out", str(tmp_path / "out"), "--model", str(tiny_model), "--timeout", "1",
                     "--retries", "0", "--no-progress"]) == 2
    assert f"no answer from {url} within 1 s (timeout)" in capsys.readouterr().err


@pytest.mark.slow
def test_a_wrong_dicomweb_root_names_the_http_status(orthanc, credentials, tiny_model, tmp_path, capsys):
    args = pacs_args(orthanc, tmp_path / "out", tiny_model)
    args[args.index("--url") + 1] = orthanc.url + "/no-such-root"
    assert main(args) == 2
    assert "HTTP 404 Not Found" in capsys.readouterr().err


@pytest.mark.slow
def test_non_images_and_broken_instances_are_named_and_the_rest_goes_on(orthanc, credentials, dicom_dir, tiny_model,
                                                                         tmp_path):
    study, series = generate_uid(), generate_uid()
    good = write_copy(dicom_dir, JPEG_BASELINE, tmp_path / "good.dcm", study, series)
    report = write_sr_document(tmp_path / "report.dcm", study)
    broken = write_without_pixel_data(dicom_dir, JPEG_BASELINE, tmp_path / "broken.dcm", study,
                                      generate_uid())
    for name in ("good.dcm", "report.dcm", "broken.dcm"):
        orthanc.upload(tmp_path / name)
    out = tmp_path / "out"
    # SR series are listed too (--modality), to see how an instance that is no image is reported
    assert main(pacs_args(orthanc, out, tiny_model, "--modality", "CR,SR", "--select", "modality=CR,SR",
                          "--push")) == 1
    summary = read_csv(out / "summary.csv")
    assert [(row["sop_instance_uid"], row["status"]) for row in summary] == [(good.SOPInstanceUID, "succeeded")]
    errors = read_csv(out / "errors.csv")
    assert [(row["kind"], row["stage"]) for row in errors] == [("no_pixel_data", "discovery")]
    assert errors[0]["file"].endswith(f"/instances/{broken.SOPInstanceUID}")
    skipped = read_csv(out / "skipped.csv")
    assert [row["kind"] for row in skipped] == ["not_an_image"]
    assert skipped[0]["file"].endswith(f"/instances/{report.SOPInstanceUID}") and "no radiograph" in skipped[0]["reason"]
    assert len(orthanc.instances("SEG")) == 1

    # the broken instance is remembered: --resume reports it again without retrieving it (the SR, a skip and no
    # failure, is retrieved again); --retry-failed retrieves and checks it again
    again = pacs_args(orthanc, out, tiny_model, "--modality", "CR,SR", "--select", "modality=CR,SR", "--resume")
    assert main(again) == 1
    errors = read_csv(out / "errors.csv")
    assert [(row["kind"], row["stage"]) for row in errors] == [("no_pixel_data", "discovery")]
    assert "remembered from an earlier run" in errors[0]["reason"]
    assert [row["status"] for row in read_csv(out / "summary.csv")] == ["already_done"]
    section = json.loads((out / "run.json").read_text(encoding="utf-8"))["pacs"]
    assert section["failed_before_not_retrieved"] == 1 and section["retrieved"] == 1
    assert main([*again, "--retry-failed"]) == 1
    errors = read_csv(out / "errors.csv")
    assert [(row["kind"], row["stage"]) for row in errors] == [("no_pixel_data", "discovery")]
    assert "remembered" not in errors[0]["reason"]
    section = json.loads((out / "run.json").read_text(encoding="utf-8"))["pacs"]
    assert section["failed_before_not_retrieved"] == 0 and section["retrieved"] == 2


class _AnsweringWith:
    """A DICOMweb client stand-in whose QIDO-RS answers (studies, and the instances of one CR series) are
    ``answer(offset, limit)``; it counts the instance requests."""

    def __init__(self, answer) -> None:
        self.answer, self.requests = answer, 0

    def search_for_studies(self, search_filters: dict, limit: int, offset: int):
        return self.answer(offset, limit)

    def search_for_series(self, study_uid: str, limit: int, offset: int) -> list[dict]:
        return [{"0020000E": {"Value": ["1.2.9"]}, "00080060": {"Value": ["CR"]}}][offset:offset + limit]

    def search_for_instances(self, study_uid: str, series_uid: str, limit: int, offset: int):
        self.requests += 1
        return self.answer(offset, limit)


class _RefusingListing(_AnsweringWith):
    """One CR series of ``n`` instances; any page covering a position in ``refused`` is answered with HTTP 400, as
    Orthanc answers for a damaged stored file."""

    def __init__(self, n: int, refused: set[int]) -> None:
        super().__init__(self._page)
        self.uids, self.refused = [f"1.2.3.{i + 1}" for i in range(n)], refused

    def _page(self, offset: int, limit: int) -> list[dict]:
        if self.refused & set(range(offset, offset + limit)):
            response = requests.Response()
            response.status_code, response.reason = 400, "Bad Request"
            raise requests.HTTPError(response=response)
        return [{"00080018": {"Value": [uid]}} for uid in self.uids[offset:offset + limit]]


def test_a_refused_listing_page_is_asked_for_one_result_at_a_time(monkeypatch):
    from PilletGANLib.errors import PacsError
    from PilletGANLib.pacs import dicomweb

    monkeypatch.setattr(dicomweb, "PAGE_SIZE", 4)
    pacs = DicomwebPacs("http://127.0.0.1:9/dicom-web")
    pacs.client = _RefusingListing(10, refused={2, 6})
    problems: list[PacsError] = []
    listed = pacs.find_instances("1.2.1", ("CR",), on_problem=problems.append)
    assert [i.sop_instance_uid for i in listed] == sorted(set(pacs.client.uids) - {"1.2.3.3", "1.2.3.7"})
    assert [p.reason for p in problems] == [
        "QIDO-RS search for the instances of series 1.2.9, result 3 asked for alone, failed: HTTP 400 Bad Request",
        "QIDO-RS search for the instances of series 1.2.9, result 7 asked for alone, failed: HTTP 400 Bad Request"]
    with pytest.raises(PacsError, match=r"instances of series 1\.2\.9 failed: HTTP 400"):  # no on_problem: as before
        pacs.find_instances("1.2.1", ("CR",))

    monkeypatch.setattr(dicomweb, "PAGE_SIZE", 40)
    pacs.client = _RefusingListing(30, refused=set(range(30)))  # a listing refused whatever is asked: one problem,
    problems.clear()                                             # after a few requests, not one per instance
    assert pacs.find_instances("1.2.1", ("CR",), on_problem=problems.append) == []
    assert len(problems) == 1 and "instances of series 1.2.9 failed" in str(problems[0])
    assert pacs.client.requests == 1 + dicomweb._PROBE


def test_malformed_and_endless_listings_are_named_errors(monkeypatch):
    """Found with a hostile DICOMweb server: an answer whose items are not data sets escaped as an AttributeError,
    and a server answering full pages of new UIDs forever kept the run listing forever."""
    from PilletGANLib.errors import PacsError
    from PilletGANLib.pacs import dicomweb

    pacs = DicomwebPacs("http://127.0.0.1:9/dicom-web")
    pacs.client = _AnsweringWith(lambda offset, limit: [1, "x"])
    with pytest.raises(PacsError, match="CR studies failed: ValueError: the answer is not a JSON array of DICOM data"):
        pacs.find_studies(PacsQuery(modalities=("CR",)))
    pacs.client = _AnsweringWith(lambda offset, limit: [{"0020000D": {"Value": "1.2.3"}}, {"0020000D": [1]},
                                                        {"0020000D": {"Value": ["1.2.4"]}}][offset:offset + limit])
    assert pacs.find_studies(PacsQuery(modalities=("CR",))) == ["1.2.4"]  # values that are not lists: absent

    monkeypatch.setattr(dicomweb, "PAGE_SIZE", 4)
    monkeypatch.setattr(dicomweb, "MAX_RESULTS", 20)
    pacs.client = _AnsweringWith(lambda offset, limit: [{"00080018": {"Value": [f"1.2.3.{offset + i}"]}}
                                                        for i in range(limit)])
    with pytest.raises(PacsError, match="answered 20 results and still full pages; the listing was stopped"):
        pacs.find_instances("1.2.1", ("CR",))


@pytest.mark.slow
def test_an_instance_the_pacs_cannot_list_does_not_hide_its_series(orthanc, credentials, dicom_dir, tiny_model,
                                                                   tmp_path):
    """Found by fuzzing: Orthanc answers HTTP 400 to a whole series' instance listing when one stored instance has a
    Rows value that is text; and dicomweb-client refuses to address a study whose UID is not digits and dots. Each is
    one problem row, and the rest of the series (and run) is analysed."""
    study, series = generate_uid(), generate_uid()
    good = [write_copy(dicom_dir, JPEG_BASELINE, tmp_path / f"good{i}.dcm", study, series) for i in range(2)]
    write_copy(dicom_dir, JPEG_BASELINE, tmp_path / "unlistable.dcm", study, series,
               edit=lambda ds: ds.__setitem__(0x00280010, DataElement(0x00280010, "LO", "abc")))
    write_copy(dicom_dir, JPEG_BASELINE, tmp_path / "bad_uid.dcm", "x", generate_uid())
    for name in ("good0.dcm", "unlistable.dcm", "good1.dcm", "bad_uid.dcm"):
        orthanc.upload(tmp_path / name)
    out = tmp_path / "out"
    assert main(pacs_args(orthanc, out, tiny_model, "--push")) == 1
    statuses = {row["sop_instance_uid"]: row["status"] for row in read_csv(out / "summary.csv")}
    assert statuses == {ds.SOPInstanceUID: "succeeded" for ds in good}
    errors = sorted(read_csv(out / "errors.csv"), key=lambda row: row["file"])
    assert [(row["file"], row["stage"]) for row in errors] == [(f"studies/{study}", "query"), ("studies/x", "query")]
    assert f"instances of series {series}, result " in errors[0]["reason"] and "HTTP 400" in errors[0]["reason"]
    assert "whose UID 'x' is not a UID" in errors[1]["reason"]
    assert len(orthanc.instances("SEG")) == 2


@pytest.mark.slow
def test_an_instance_that_cannot_be_saved_after_retrieval_fails_alone(orthanc, credentials, dicom_dir, tiny_model,
                                                                      tmp_path):
    """Found by fuzzing: a File Meta element (0002,EEEE) in the body of a stored instance. The PACS keeps and serves
    it, pydicom cannot write it back; that one instance fails, named, and the rest of the run goes on (it used to
    end the run with a traceback from the retrieval thread)."""
    study = generate_uid()
    good = write_copy(dicom_dir, JPEG_BASELINE, tmp_path / "good.dcm", study, generate_uid())
    bad = write_copy(dicom_dir, DX_8BIT, tmp_path / "bad.dcm", study, generate_uid())
    data = (tmp_path / "bad.dcm").read_bytes()
    if bad.file_meta.TransferSyntaxUID != ExplicitVRLittleEndian:  # an explicit-VR element below is inserted as is
        bad.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        bad.save_as(tmp_path / "bad.dcm", enforce_file_format=True)
        data = (tmp_path / "bad.dcm").read_bytes()
    at = data.index(b"\x10\x00\x10\x00")  # (0010,0010) Patient Name, in the body
    (tmp_path / "bad.dcm").write_bytes(data[:at] + b"\x02\x00\xee\xeeLO\x02\x00xx" + data[at:])
    for name in ("good.dcm", "bad.dcm"):
        orthanc.upload(tmp_path / name)
    out = tmp_path / "out"
    assert main(pacs_args(orthanc, out, tiny_model, "--push")) == 1
    statuses = {row["sop_instance_uid"]: row["status"] for row in read_csv(out / "summary.csv")}
    assert statuses == {good.SOPInstanceUID: "succeeded", bad.SOPInstanceUID: "failed"}
    errors = read_csv(out / "errors.csv")
    assert [(row["stage"], row["kind"]) for row in errors] == [("retrieve", "corrupt")]
    assert "cannot be written as a DICOM file" in errors[0]["reason"] and "(0002,eeee)" in errors[0]["reason"]
    assert len(orthanc.instances("SEG")) == 1


@pytest.mark.slow
def test_retrieval_failures_name_the_instance(orthanc, credentials, tmp_path):
    session, _ = pacs_session(orthanc.dicomweb_url)
    pacs = DicomwebPacs(orthanc.dicomweb_url, session)
    missing = RemoteInstance(generate_uid(), generate_uid(), generate_uid(), "CR")
    with pytest.raises(Exception) as caught:
        pacs.retrieve(missing, retrieved_path(tmp_path / "cache", missing))
    assert f"instance {missing.sop_instance_uid}" in str(caught.value) and "HTTP 404" in str(caught.value)
    assert not (tmp_path / "cache").exists()
    assert pacs.stored_instances(missing.study_instance_uid) == set()


# -- credentials and TLS ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_credentials_come_from_a_netrc_file(orthanc, monkeypatch, dicom_dir, tiny_model, tmp_path):
    for variable in (USER_VARIABLE, PASSWORD_VARIABLE, TOKEN_VARIABLE):
        monkeypatch.delenv(variable, raising=False)
    orthanc.upload(dicom_dir / JPEG_BASELINE)
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    netrc.chmod(0o600)
    out = tmp_path / "out"
    assert main(pacs_args(orthanc, out, tiny_model, "--netrc", str(netrc))) == 0
    assert json.loads((out / "run.json").read_text())["pacs"]["credentials"] == f"netrc file {netrc}"
    assert PASSWORD not in (out / "run.json").read_text()


def test_credential_sources_and_their_refusals(tmp_path, caplog):
    session, origin = pacs_session("https://pacs.example.org/dicom-web", environ={TOKEN_VARIABLE: "abc",
                                                                                   USER_VARIABLE: "u"})
    assert session.headers["Authorization"] == "Bearer abc" and TOKEN_VARIABLE in origin
    assert session.verify is True  # TLS verification is on unless asked otherwise
    session, origin = pacs_session("https://pacs.example.org/dicom-web",
                                   environ={USER_VARIABLE: "u", PASSWORD_VARIABLE: "p"})
    assert session.auth == ("u", "p") and USER_VARIABLE in origin
    with pytest.raises(ConfigurationError, match=PASSWORD_VARIABLE):
        pacs_session("https://pacs.example.org/dicom-web", environ={USER_VARIABLE: "u"})
    with pytest.raises(ConfigurationError, match="does not exist"):
        pacs_session("https://pacs.example.org/dicom-web", netrc_file=tmp_path / "none", environ={})
    netrc = tmp_path / "netrc"
    netrc.write_text("machine other.example.org login a password b\n")
    with pytest.raises(ConfigurationError, match=r"no 'machine pacs\.example\.org' entry"):
        pacs_session("https://pacs.example.org/dicom-web", netrc_file=netrc, environ={})
    with pytest.raises(ConfigurationError, match="CA bundle"):
        pacs_session("https://pacs.example.org/dicom-web", ca_bundle=tmp_path / "none.pem", environ={})
    with pytest.raises(ConfigurationError, match="not an http"):
        pacs_session("ftp://pacs.example.org/", environ={})
    for url in ("http://[::1/dicom-web", "http://pacs.example.org:port/dicom-web"):  # ValueError tracebacks before
        with pytest.raises(ConfigurationError, match="cannot be read"):
            pacs_session(url, environ={})
    with caplog.at_level("WARNING"):
        session, _ = pacs_session("https://pacs.example.org/dicom-web", insecure=True, environ={})
    assert session.verify is False and "verification is OFF" in caplog.text


def test_no_option_takes_a_password(capsys):
    with pytest.raises(SystemExit):
        main(["pacs", "--help"])
    usage = capsys.readouterr().out.lower()
    assert "--password" not in usage and "--user" not in usage and "--token" not in usage


@pytest.mark.slow
def test_tls_is_verified_by_default(orthanc, credentials, dicom_dir, tiny_model, tmp_path, capsys, caplog):
    orthanc.upload(dicom_dir / JPEG_BASELINE)
    cert, key = self_signed_certificate(tmp_path / "tls")
    with TlsProxy(cert, key, orthanc.http_port) as proxy:
        args = pacs_args(orthanc, tmp_path / "refused", tiny_model, "--retries", "0")
        url = f"https://127.0.0.1:{proxy.port}/dicom-web"
        args[args.index("--url") + 1] = url
        assert main(args) == 2
        error = capsys.readouterr().err
        assert f"TLS verification of {url} failed" in error and "--ca-bundle" in error
        assert main([*args[:4], str(tmp_path / "verified"), *args[5:], "--ca-bundle", str(cert)]) == 0
        assert main([*args[:4], str(tmp_path / "insecure"), *args[5:], "--insecure"]) == 0
        assert "verification is OFF" in caplog.text


# -- parts -----------------------------------------------------------------------------------------------
def test_query_options_are_checked():
    assert PacsQuery(modalities=(" dx", "CR", "")).modalities == ("CR", "DX")
    with pytest.raises(ConfigurationError, match="YYYYMMDD"):
        PacsQuery(since="2024-01-01")
    with pytest.raises(ConfigurationError, match="at least one modality"):
        PacsQuery(modalities=("", " "))
    with pytest.raises(ConfigurationError, match="YYYYMMDD, not '99999999'"):  # eight digits, but no day
        PacsQuery(since="99999999")
    assert PacsQuery(since="20240229", studies=(" 1.2.3 ", "1.2.3")).studies == ("1.2.3",)
    with pytest.raises(ConfigurationError, match=r"--study '\.\./\.\./x' is not a Study Instance UID"):
        PacsQuery(studies=("../../x",))  # refused later, per study, as if the PACS had listed it


@pytest.mark.slow
def test_queries_select_by_study_date_and_modality(orthanc, credentials, dicom_dir, tmp_path):
    old = write_copy(dicom_dir, JPEG_BASELINE, tmp_path / "old.dcm", generate_uid(), generate_uid(),
                     edit=lambda ds: setattr(ds, "StudyDate", "20100101"))
    new = write_copy(dicom_dir, DX_8BIT, tmp_path / "new.dcm", generate_uid(), generate_uid(),
                     edit=lambda ds: setattr(ds, "StudyDate", "20240601"))
    for name in ("old.dcm", "new.dcm"):
        orthanc.upload(tmp_path / name)
    session, _ = pacs_session(orthanc.dicomweb_url)
    pacs = DicomwebPacs(orthanc.dicomweb_url, session)
    assert pacs.find_studies(PacsQuery()) == sorted([old.StudyInstanceUID, new.StudyInstanceUID])
    assert pacs.find_studies(PacsQuery(since="20200101")) == [new.StudyInstanceUID]
    assert pacs.find_studies(PacsQuery(modalities=("CR",))) == [old.StudyInstanceUID]
    assert pacs.find_studies(PacsQuery(studies=("1.2.3",))) == ["1.2.3"]
    [instance] = pacs.find_instances(new.StudyInstanceUID, ("CR", "DX"))
    assert (instance.sop_instance_uid, instance.modality) == (new.SOPInstanceUID, "DX")
    assert pacs.find_instances(new.StudyInstanceUID, ("CR",)) == []


@pytest.mark.slow
def test_the_one_command_demo_pulls_pushes_and_forwards(tiny_model, tmp_path, capsys):
    from orthanc import require_orthanc

    from PilletGANLib.inference import Predictor
    from PilletGANLib.pacs.demo import run_pacs_demo

    require_orthanc()
    predictor = Predictor.from_path(tiny_model, device="cpu")
    assert run_pacs_demo(tmp_path / "demo", predictor, wait=False, size=256) == 3
    printed = capsys.readouterr().out
    assert "2 radiograph(s) found: 2 succeeded" in printed and "C-STORE status 0x0000" in printed
    assert "The PACS now holds 3 SEG(s)" in printed


@pytest.mark.slow
def test_a_local_orthanc_in_a_relative_folder_starts_and_keeps_its_files_there(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with Orthanc(Path("pacs")) as server:
        assert server.folder == tmp_path / "pacs" and server.rest("get", "/system").ok
    assert (tmp_path / "pacs" / "orthanc.json").is_file() and (tmp_path / "pacs" / "storage").is_dir()
