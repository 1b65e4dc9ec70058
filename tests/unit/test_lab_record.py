"""The lab's record (build/<lab>/lab.json) and its HAProxy control channel, without a lab.

The record is how separate CLI calls see the faults in force and the topology a lab came
from; the runtime API is how the driver asks a node's HAProxy about its servers.
"""

from __future__ import annotations

import socket
import threading

import pytest

from mailring.cluster import TransportError
from mailring.drivers.lab import control
from mailring.drivers.lab.names import LabNames
from mailring.drivers.lab.record import LabRecord


def test_a_lab_without_a_record_has_no_faults_and_no_origin(tmp_path) -> None:
    record = LabRecord(tmp_path / "lab.json")
    assert record.read() == {} and record.faults() == {} and record.brought_up_from() is None


def test_faults_are_recorded_and_cleared_and_the_rest_is_kept(tmp_path) -> None:
    record = LabRecord(tmp_path / "lab.json")
    record.write({"lab": "t", "topology": "/x/topology.yaml", "fingerprint": "abc", "faults": {}})
    record.set_fault("mail01", "crashed")
    record.set_fault("mail02", "isolated")
    record.set_fault("mail01", None)
    assert LabRecord(tmp_path / "lab.json").faults() == {"mail02": "isolated"}  # read back from disk
    assert record.brought_up_from() == ("/x/topology.yaml", "abc")
    assert not list(tmp_path.glob("*.tmp"))


def test_faults_set_side_by_side_are_all_kept(tmp_path) -> None:
    """Nodes healed at once record their faults at once: no change writes over another."""
    LabRecord(tmp_path / "lab.json").write({"lab": "t", "faults": {}})
    nodes = [f"mail{i:02d}" for i in range(1, 21)]
    threads = [threading.Thread(target=LabRecord(tmp_path / "lab.json").set_fault, args=(n, "crashed"))
               for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert LabRecord(tmp_path / "lab.json").faults() == dict.fromkeys(nodes, "crashed")
    assert not list(tmp_path.glob("*.tmp"))


def test_down_looks_for_the_namespaces_of_the_topology_and_of_the_record() -> None:
    """A lab brought up from another topology (a mail03 the current one lacks) still has
    every namespace it made removed: the record names them."""
    names = LabNames("t")
    assert names.namespaces(["mail01", "client01"], ["mr-t-mail03", "mr-t-mail01"]) == [
        "mr-t-client01", "mr-t-lan", "mr-t-mail01", "mr-t-mail03"]
    assert names.namespaces(["mail01"]) == ["mr-t-lan", "mr-t-mail01"]


def test_the_runtime_api_answer_is_read_until_haproxy_closes(tmp_path) -> None:
    path = str(tmp_path / "admin.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            got.append(conn.recv(1024))
            conn.sendall(b"1\n# be_id be_name srv_id srv_name\n")
            conn.sendall(b"3 be_smtp 1 mail01 192.168.56.11 2\n")  # a second write: still one answer

    t = threading.Thread(target=serve)
    t.start()
    try:
        answer = control.haproxy(path, "show servers state", "HAProxy on mail01", timeout=5)
    finally:
        t.join(5)
        server.close()
    assert got == [b"show servers state\n"]
    assert answer.splitlines() == ["1", "# be_id be_name srv_id srv_name",
                                   "3 be_smtp 1 mail01 192.168.56.11 2"]


def test_an_unreachable_runtime_api_is_a_transport_error_naming_it(tmp_path) -> None:
    with pytest.raises(TransportError, match=r"^HAProxy on mail03: .*No such file"):
        control.haproxy(str(tmp_path / "gone.sock"), "show servers state", "HAProxy on mail03", timeout=1)
