"""``pilletgan listen``: a DICOM node receiving radiographs (pynetdicom and DCMTK ``dcmsend`` as senders) and
forwarding the SEGs to a real Orthanc; dropped associations, refusals, a forward node that is down, restarts.

The model is the tiny untrained one; the listener runs in the test process (threads) except for the command-line
test. Every port is a free loopback port.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from dicom_factory import (
    DX_8BIT,
    JPEG_BASELINE,
    MONO1_UNCOMPRESSED,
    write_ct_image,
    write_sr_document,
    write_without_pixel_data,
)
from orthanc import Orthanc, free_port, wait_for_port, write_radiographs
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.pdu import P_DATA_TF
from test_batch import dciodvfy_errors

from PilletGANLib.errors import ConfigurationError, PacsError
from PilletGANLib.inference import Predictor
from PilletGANLib.pacs import DicomListener, DicomNode, Spool, send_files

SMALL = (JPEG_BASELINE, DX_8BIT)  # 256 px, 8 bit: the quickest to analyse


# -- helpers ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def predictor(tiny_model) -> Predictor:
    return Predictor.from_path(tiny_model, device="cpu", batch_size=2)


@pytest.fixture
def start_listener(tmp_path, predictor):
    """``start_listener(out=..., **options)``: a running listener on a free port; all are stopped at teardown."""
    started: list[DicomListener] = []

    def start(out: Path | None = None, **options) -> DicomListener:
        options = {"port": 0, "retry_interval": 0.3, "max_retry_interval": 1.0, "timeout": 5.0, **options}
        listener = DicomListener(out or tmp_path / "listen", predictor, **options).start()
        started.append(listener)
        return listener

    yield start
    for listener in started:
        listener.stop()


def send(port: int, paths: list[Path], called: str = "PILLETGAN", calling: str = "MODALITY") -> list[Dataset]:
    """C-STORE ``paths`` over one association as a modality would; the status datasets, in order."""
    ae = AE(ae_title=calling)
    for path in paths:
        header = pydicom.dcmread(path, stop_before_pixels=True)
        ae.add_requested_context(header.SOPClassUID, [header.file_meta.TransferSyntaxUID])
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    assert assoc.is_established, "the listener refused the association"
    try:
        return [assoc.send_c_store(path) for path in paths]
    finally:
        assoc.release()


def small_radiographs(dicom_dir: Path, folder: Path) -> dict[str, Path]:
    written = write_radiographs(dicom_dir, folder)
    return {sop: path for sop, path in written.items() if path.name in SMALL}


def referenced_sources(server: Orthanc, folder: Path) -> dict[str, Path]:
    """Source SOP Instance UID -> downloaded SEG, for every SEG in the PACS (a source referenced twice fails)."""
    folder.mkdir(parents=True, exist_ok=True)
    found: dict[str, Path] = {}
    for instance in server.instances("SEG"):
        path = folder / f"{instance['ID']}.dcm"
        seg = server.download(instance["ID"], path)
        source = str(seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID)
        assert source not in found, f"two SEGs reference {source}"
        found[source] = path
    return found


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def run_json(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


# -- the Done-when runs ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_received_radiographs_are_analysed_and_their_segs_arrive_at_the_forward_node(
        orthanc, start_listener, dicom_dir, tmp_path):
    sources = write_radiographs(dicom_dir, tmp_path / "sources")
    listener = start_listener(forward=DicomNode.parse(orthanc.node))
    statuses = send(listener.port, list(sources.values()))
    assert [s.Status for s in statuses] == [0] * len(sources)
    assert listener.wait_idle(timeout=600)

    segs = referenced_sources(orthanc, tmp_path / "segs")
    assert set(segs) == set(sources)
    for sop, path in segs.items():
        seg, source = pydicom.dcmread(path), pydicom.dcmread(sources[sop], stop_before_pixels=True)
        assert (seg.StudyInstanceUID, seg.Rows, seg.Columns) == (source.StudyInstanceUID, source.Rows, source.Columns)
        assert dciodvfy_errors(path) == [], sources[sop].name
    out = listener.out_dir
    summary = read_csv(out / "summary.csv")
    assert len(summary) == 6 and {row["status"] for row in summary} == {"succeeded"}
    assert {row["source"] for row in summary} == {"C-STORE from MODALITY"}
    forward = run_json(out)["listen"]["forward"]
    assert (forward["sent"], forward["pending"], forward["last_error"]) == (6, 0, None)
    assert not listener.incoming.pending() and not listener.outgoing.pending()

    # the same images again: not analysed again, no SEG forwarded twice
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*/*/*/result.json")}
    again = list(sources.values())[-2:]
    assert [s.Status for s in send(listener.port, again)] == [0, 0]
    assert listener.wait_idle(timeout=120)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*/*/result.json")} == mtimes
    assert len(orthanc.instances("SEG")) == 6 and run_json(out)["listen"]["forward"]["sent"] == 6


@pytest.mark.slow
def test_dcmtk_sends_to_the_listen_command_and_the_segs_go_on_to_orthanc(orthanc, dicom_dir, tiny_model, tmp_path):
    # DCMTK's dcmsend proposes each file's own transfer syntax (its storescu offers uncompressed ones only, and the
    # venv's "storescu" is pynetdicom's)
    if shutil.which("dcmsend") is None:
        pytest.skip("dcmsend is not installed (Debian package dcmtk; .ci/run installs it)")
    sources = small_radiographs(dicom_dir, tmp_path / "sources")
    port, out = free_port(), tmp_path / "out"
    command = [sys.executable, "-m", "PilletGANLib.cli", "listen", "--port", str(port), "--ae-title", "PILLETGAN",
               "--out", str(out), "--forward", orthanc.node, "--model", str(tiny_model), "--device", "cpu"]
    process = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, timeout=120)
        assert send_without_instance_uid(port) is None  # pynetdicom drops such a request unanswered
        sent = subprocess.run(["dcmsend", "-aet", "MODALITY", "-aec", "PILLETGAN", "127.0.0.1", str(port),
                               *map(str, sources.values())], capture_output=True, text=True, timeout=120)
        assert sent.returncode == 0, sent.stderr
        deadline = time.monotonic() + 300
        while len(orthanc.instances("SEG")) < len(sources) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert set(referenced_sources(orthanc, tmp_path / "segs")) == set(sources)
    assert f"{len(sources)} radiograph(s) found: {len(sources)} succeeded" in stdout
    assert f"listening as PILLETGAN on 127.0.0.1:{port}" in stderr
    assert "Traceback" not in stderr  # pynetdicom's standard handlers trip over the malformed request's log line


def send_without_instance_uid(port: int) -> Dataset | None:
    """A malformed C-STORE request (empty Affected SOP Instance UID); the answer, or ``None`` after 2 s."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = "1.2.840.10008.5.1.4.1.1.1", "", "CR"
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ae = AE(ae_title="MODALITY")
    ae.dimse_timeout = 2
    ae.add_requested_context(ds.SOPClassUID, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="PILLETGAN")
    assert assoc.is_established
    try:
        return assoc.send_c_store(ds) or None
    finally:
        assoc.release()


@pytest.mark.slow
def test_segs_wait_on_disk_while_the_forward_node_is_down_and_arrive_after_it_restarts(
        orthanc, start_listener, dicom_dir, tmp_path):
    sources = small_radiographs(dicom_dir, tmp_path / "sources")
    orthanc.stop()
    out = tmp_path / "listen"
    listener = start_listener(out, forward=DicomNode.parse(orthanc.node))
    assert [s.Status for s in send(listener.port, list(sources.values()))] == [0, 0]
    assert listener.wait_idle(timeout=300, forwarded=False)
    deadline = time.monotonic() + 30
    while not run_json(out)["listen"]["forward"]["last_error"] and time.monotonic() < deadline:
        time.sleep(0.1)
    forward = run_json(out)["listen"]["forward"]
    assert forward["pending"] == 2 and forward["sent"] == 0
    assert f"cannot connect to 127.0.0.1:{orthanc.dicom_port} (Connection refused)" in forward["last_error"]

    # the node process stops too, with the SEGs still queued; both come back
    listener.stop()
    orthanc.start()
    listener = start_listener(out, forward=DicomNode.parse(orthanc.node))
    assert listener.wait_idle(timeout=60)
    assert set(referenced_sources(orthanc, tmp_path / "segs")) == set(sources)
    summary = read_csv(out / "summary.csv")  # rebuilt from the journal
    assert sorted(row["sop_instance_uid"] for row in summary) == sorted(sources)
    assert run_json(out)["listen"]["forward"] == {**run_json(out)["listen"]["forward"], "sent": 2, "pending": 0,
                                                 "last_error": None}


# -- robustness and named errors --------------------------------------------------------------------------
@pytest.mark.slow
def test_a_sender_dropping_mid_association_leaves_nothing_and_the_node_keeps_working(start_listener, dicom_dir,
                                                                                     tmp_path):
    listener = start_listener()
    source = dicom_dir / JPEG_BASELINE
    big = dicom_dir / MONO1_UNCOMPRESSED  # the largest sample: several PDUs, so the drop lands mid-dataset
    header = pydicom.dcmread(big, stop_before_pixels=True)
    pdus = []

    def drop_after_two_data_pdus(event: evt.Event) -> None:
        if isinstance(event.pdu, P_DATA_TF):
            pdus.append(event.pdu)
            if len(pdus) == 3:
                event.assoc.dul.socket.socket.shutdown(socket.SHUT_RDWR)

    ae = AE(ae_title="DROPPER")
    ae.add_requested_context(header.SOPClassUID, [header.file_meta.TransferSyntaxUID])
    assoc = ae.associate("127.0.0.1", listener.port, ae_title="PILLETGAN",
                         evt_handlers=[(evt.EVT_PDU_SENT, drop_after_two_data_pdus)])
    assert assoc.is_established
    assert "Status" not in assoc.send_c_store(big)  # no answer: the connection is gone
    time.sleep(1.0)
    assert listener.incoming.pending() == [] and not list(listener.incoming.folder.iterdir())

    assert [s.Status for s in send(listener.port, [source])] == [0]
    assert listener.wait_idle(timeout=120)
    [row] = read_csv(listener.out_dir / "summary.csv")
    assert row["status"] == "succeeded" and row["sop_instance_uid"] == pydicom.dcmread(source).SOPInstanceUID


@pytest.mark.slow
def test_idle_connections_do_not_lock_modalities_out(start_listener, dicom_dir):
    """Found by connecting without speaking DICOM: each connection held one of pynetdicom's 10 association slots for
    30 s, closed or not, so a port scan or a few TCP health checks refused every modality ("Local limit exceeded")."""
    listener = start_listener()
    idle = [socket.create_connection(("127.0.0.1", listener.port)) for _ in range(12)]
    try:
        assert [s.Status for s in send(listener.port, [dicom_dir / DX_8BIT])] == [0]
    finally:
        for connection in idle:
            connection.close()


@pytest.mark.slow
def test_objects_that_are_not_radiographs_are_refused_with_the_reason(start_listener, dicom_dir, tmp_path):
    listener = start_listener()
    study = generate_uid()
    report = tmp_path / "report.dcm"
    write_sr_document(report, study)
    no_pixels = tmp_path / "no_pixels.dcm"
    write_without_pixel_data(dicom_dir, JPEG_BASELINE, no_pixels, study, generate_uid())
    ct = tmp_path / "ct.dcm"
    write_ct_image(dicom_dir, ct, study)
    good = dicom_dir / DX_8BIT
    statuses = send(listener.port, [report, no_pixels, ct, good])
    assert [s.Status for s in statuses] == [0x0122, 0xC000, 0x0122, 0x0000]
    assert statuses[0].ErrorComment.startswith("not_an_image: a DICOM 'Basic Text SR Storage' object")
    assert statuses[1].ErrorComment.startswith("no_pixel_data: ")
    assert statuses[2].ErrorComment.startswith("not_selected: Modality 'CT' is not selected")
    assert listener.wait_idle(timeout=120)
    out = listener.out_dir
    assert [row["status"] for row in read_csv(out / "summary.csv")] == ["succeeded"]
    assert [(row["stage"], row["kind"]) for row in read_csv(out / "errors.csv")] == [("receive", "no_pixel_data")]
    skipped = read_csv(out / "skipped.csv")
    assert sorted(row["kind"] for row in skipped) == ["not_an_image", "not_selected"]
    assert all(row["file"].startswith("C-STORE from MODALITY: instance ") for row in skipped)
    assert run_json(out)["listen"]["refused"] == 3


@pytest.mark.slow
def test_rejected_associations_are_named_on_both_sides(tmp_path, start_listener, dicom_dir):
    listener = start_listener(allowed_callers=["MODALITY"])
    ae = AE(ae_title="INTRUDER")
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.1")
    assoc = ae.associate("127.0.0.1", listener.port, ae_title="PILLETGAN")
    assert assoc.is_rejected and assoc.acceptor.primitive.reason_str == "Calling AE title not recognised"

    # a forward node that rejects us: the error names the rejection and its reason
    strict = Orthanc(tmp_path / "strict", settings={"DicomCheckCalledAet": True}).start()
    try:
        wrong = DicomNode("NOT-ORTHANC", "127.0.0.1", strict.dicom_port)
        forwarding = start_listener(tmp_path / "forwarding", forward=wrong, timeout=30.0)  # a loaded machine is slow
        assert [s.Status for s in send(forwarding.port, [dicom_dir / JPEG_BASELINE])] == [0]
        assert forwarding.wait_idle(timeout=120, forwarded=False)
        deadline = time.monotonic() + 30
        while not run_json(forwarding.out_dir)["listen"]["forward"]["last_error"] and time.monotonic() < deadline:
            time.sleep(0.1)
        error = run_json(forwarding.out_dir)["listen"]["forward"]["last_error"]
        assert "NOT-ORTHANC@127.0.0.1" in error and "association rejected" in error
        assert "Called AE title not recognised" in error
        assert len(forwarding.outgoing.pending()) == 1  # kept for the next attempt
    finally:
        strict.stop(graceful=False)


@pytest.mark.slow
def test_images_queued_before_a_restart_are_analysed_on_start(start_listener, dicom_dir, tmp_path):
    out = tmp_path / "listen"
    queued = Spool(out / "queue" / "incoming").put_file(dicom_dir / JPEG_BASELINE, tag="MODALITY")
    listener = start_listener(out)
    assert listener.wait_idle(timeout=120)
    assert not queued.exists()
    assert [row["status"] for row in read_csv(out / "summary.csv")] == ["succeeded"]


@pytest.mark.slow
def test_a_received_file_joins_the_queue_only_after_it_is_examined(start_listener, dicom_dir, monkeypatch):
    """The analyser takes (and deletes) queued items at once: one still being examined must not be among them."""
    from PilletGANLib.pacs import listener as listener_module

    listener = start_listener()
    seen: list[list[Path]] = []

    def examine_and_look(path, rules=None):
        seen.append(listener.incoming.pending())
        return examine_file(path, rules)

    examine_file = listener_module.examine_file
    monkeypatch.setattr(listener_module, "examine_file", examine_and_look)
    assert [s.Status for s in send(listener.port, [dicom_dir / JPEG_BASELINE])] == [0]
    assert seen[0] == []  # examined while hidden from the analyser
    assert listener.wait_idle(timeout=120)
    assert [row["status"] for row in read_csv(listener.out_dir / "summary.csv")] == ["succeeded"]


# -- parts -----------------------------------------------------------------------------------------------
def test_node_addresses_are_parsed_and_checked():
    assert DicomNode.parse("ORTHANC@127.0.0.1:4242") == DicomNode("ORTHANC", "127.0.0.1", 4242)
    assert str(DicomNode.parse("PACS@[::1]:104")) == "PACS@[::1]:104"
    for bad in ("ORTHANC@127.0.0.1", "127.0.0.1:4242", "@host:1", "A@host:70000", "THIS-TITLE-IS-TOO-LONG@h:1",
                "BACK\\SLASH@h:1"):
        with pytest.raises(ConfigurationError):
            DicomNode.parse(bad)


def test_a_node_that_is_not_there_is_a_named_error(dicom_dir):
    port = free_port()
    with pytest.raises(PacsError, match=rf"ORTHANC@127\.0\.0\.1:{port}: no association: cannot connect to "
                                        rf"127\.0\.0\.1:{port} \(Connection refused\)"):
        send_files(DicomNode("ORTHANC", "127.0.0.1", port), [dicom_dir / JPEG_BASELINE], "PILLETGAN",
                   timeout=5)


def test_a_node_that_does_not_answer_is_a_named_timeout(dicom_dir):
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        node = DicomNode("SILENT", "127.0.0.1", silent.getsockname()[1])
        with pytest.raises(PacsError, match=r"no answer to the association request within 1 s \(timeout\)"):
            send_files(node, [dicom_dir / JPEG_BASELINE], "PILLETGAN", timeout=1)


@pytest.fixture
def store_node():
    """``store_node(syntaxes)``: a pynetdicom storage node on a free loopback port accepting CR and Secondary
    Capture in ``syntaxes`` only; returns (its DicomNode, the SOP Instance UIDs it stored). Stopped at teardown."""
    servers = []

    def start(syntaxes: list[str]) -> tuple[DicomNode, list[str]]:
        stored: list[str] = []

        def on_store(event: evt.Event) -> int:
            stored.append(str(event.dataset.SOPInstanceUID))
            return 0x0000

        ae = AE(ae_title="STORE")
        for sop_class in ("1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.7"):
            ae.add_supported_context(sop_class, syntaxes)
        server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
        servers.append(server)
        return DicomNode("STORE", "127.0.0.1", server.server_address[1]), stored

    yield start
    for server in servers:
        server.shutdown()


def test_each_transfer_syntax_is_proposed_on_its_own_and_a_file_no_context_carries_is_named(store_node, dicom_dir):
    jpeg, implicit = dicom_dir / JPEG_BASELINE, dicom_dir / DX_8BIT  # JPEG Baseline; Implicit VR Little Endian
    uids = [str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID) for path in (jpeg, implicit)]

    node, stored = store_node(ALL_TRANSFER_SYNTAXES)
    results = send_files(node, [jpeg, implicit], "PILLETGAN", timeout=10)
    assert [result.stored for result in results] == [True, True] and stored == uids

    node, stored = store_node([ExplicitVRLittleEndian])
    first, second = send_files(node, [jpeg, implicit], "PILLETGAN", timeout=10)
    assert first.status is None and not first.stored
    assert first.describe().startswith("not sent: No presentation context for ") and "'JPEG Baseline" in first.describe()
    assert second.stored and stored == uids[1:]  # converted to Explicit VR by pynetdicom, as the node accepted


def test_the_spool_keeps_arrival_order_and_ignores_temporaries(tmp_path):
    spool = Spool(tmp_path / "q")
    source = tmp_path / "source.dcm"
    source.write_bytes(b"1")
    first = spool.put_file(source, "A/B")
    second = spool.put_file(source, "MODALITY")
    (tmp_path / "q" / f".{first.name}.0123456789ab.partial.dcm").write_bytes(b"half")
    assert spool.pending() == [first, second]
    assert first.name.endswith("-A_B.dcm")


def test_a_new_item_is_queued_whole_when_its_block_ends_and_not_at_all_when_it_raises(tmp_path):
    spool = Spool(tmp_path / "q")
    with spool.new_item("MODALITY") as temporary:
        temporary.write_bytes(b"data")
        assert spool.pending() == []  # written but not yet queued
    [item] = spool.pending()
    assert item.read_bytes() == b"data" and item.name.endswith("-MODALITY.dcm")
    with pytest.raises(ValueError), spool.new_item("MODALITY") as temporary:
        temporary.write_bytes(b"refused")
        raise ValueError("not for us")
    assert spool.pending() == [item] and sorted(p.name for p in spool.folder.iterdir()) == [item.name]


def test_a_port_in_use_is_a_named_error(predictor, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        listener = DicomListener(tmp_path / "out", predictor, port=busy.getsockname()[1])
        with pytest.raises(ConfigurationError, match=r"cannot listen on 127\.0\.0\.1"):
            listener.start()
