"""``mailring.checks`` judges without I/O; what moved to ``mailring.polling`` left pure judgement behind."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mailring.checks
from mailring.checks import NotYet
from mailring.checks.serving import greeting_node
from mailring.checks.sweep import problems, targets
from mailring.checks.timelines import not_recovered, short_of
from mailring.client import Op
from mailring.topology import load
from tests.unit.pinned import TOPOLOGY

# Modules whose import in checks/ would mean it reads, waits or runs something itself.
IO = {"mailring.polling", "mailring.cluster", "mailring.drivers", "mailring.probe", "socket", "subprocess",
      "threading", "time", "tenacity", "paramiko", "smtplib", "poplib", "imaplib", "vagrant"}


def imported(path: Path) -> set[str]:
    """Every module a file imports at run time (lazy imports count; ``if TYPE_CHECKING:`` ones do not)."""
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return out


@pytest.mark.parametrize("path", sorted(Path(mailring.checks.__file__).parent.glob("*.py")),
                         ids=lambda p: p.name)
def test_checks_import_nothing_that_does_io(path: Path) -> None:
    bad = {m for m in imported(path) if any(m == io or m.startswith(io + ".") for io in IO)}
    assert not bad, f"{path.name} imports {sorted(bad)}: polling belongs in mailring.polling"


def ops(target: str, pattern: str, t0: float = 100.0) -> list[Op]:
    """'.' is a success, 'x' a failure, 0.1 s apart."""
    return [Op(t=t0 + i / 10, end=t0 + i / 10 + 0.01, target=target, type="ok" if c == "." else "fail",
               error=None if c == "." else "timed out") for i, c in enumerate(pattern)]


def test_short_of_names_targets_without_enough_successes() -> None:
    history = ops("smtp@a", "..x.") + ops("imap@a", "xx.")
    assert short_of(history, ["smtp@a", "imap@a", "pop3@a"], 2) == ["imap@a", "pop3@a"]
    assert short_of(history, ["smtp@a"], 3) == []


def test_not_recovered_after_a_fault() -> None:
    history = ops("smtp@a", "...xx..") + ops("imap@a", "....xx") + ops("pop3@a", "......")
    since = 100.25
    assert not_recovered(history, ["smtp@a"], since) == []
    assert not_recovered(history, ["imap@a"], since) == ["imap@a: last fail timed out"]
    assert not_recovered(history, ["pop3@a"], since) == ["pop3@a: last ok "]  # never failed yet
    assert not_recovered(history, ["pop3@a"], since, must_fail=False) == []
    assert not_recovered(history, ["none@a"], since, must_fail=False) == ["none@a: last none"]


def test_greeting_node_names_exactly_one_mail_node() -> None:
    topo = load(TOPOLOGY)
    assert greeting_node(topo, "v", "smtp", {"ok": True, "banner": "220 mail03.ring.test ESMTP"}) == "mail03"
    with pytest.raises(NotYet, match="smtp@v: refused"):
        greeting_node(topo, "v", "smtp", {"ok": False, "error": "refused"})
    with pytest.raises(NotYet, match="names no single node"):
        greeting_node(topo, "v", "smtp", {"ok": True, "banner": "220 ESMTP"})


def test_sweep_problems_judge_each_answer_against_the_expected_owner() -> None:
    topo = load(TOPOLOGY)
    names = [t["name"] for t in targets(topo)]
    vip = names[0].split("@")[1]
    expected = {str(v.address): None for v in topo.vips} | {vip: "mail01"}
    results = {n: {"ok": True, "banner": "220 mail01.ring.test ESMTP"} for n in names}
    assert problems(topo, results, expected) == []
    smtp = f"smtp@{vip}"
    results[smtp] = {"ok": True, "banner": "220 mail02.ring.test ESMTP"}
    results[f"imap@{vip}"] = {"ok": False, "error": "timed out"}
    assert problems(topo, results, expected) == [
        f"imap@{vip}: timed out",
        f"{smtp}: served by the wrong node ('220 mail02.ring.test ESMTP', expected mail01)"]
