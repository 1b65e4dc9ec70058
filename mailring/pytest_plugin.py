"""mailring's pytest plugin: options, markers and the fixtures tests use.

Tests never import a driver: they get ``topology``, ``cluster`` (one per
session, or per xdist worker, brought up once and always taken down at the
end unless --keep-cluster), ``client`` (probes from client01's point of
view) and, for destructive tests, ``nemesis`` (faults healed at teardown).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailring import scheduling
from mailring.cluster import DEFAULT_DRIVER, DEFAULT_LAB, DRIVERS, Cluster, driver_class, open_cluster
from mailring.errors import InputError
from mailring.topology import DEFAULT_TOPOLOGY, Topology, load

# session state kept in config.stash: the outage log, and the rows merged over xdist workers
OUTAGES = pytest.StashKey[Any]()
MERGED = pytest.StashKey[list]()
SECOND = pytest.StashKey[Any]()  # the session's SecondClusters, once a test asked for one
TOPOLOGY = pytest.StashKey[Topology]()

MARKERS = (
    "destructive: the test injects faults; it gets a nemesis that heals them at teardown",
    "lab_only(reason): runs only on the lab driver; the reason says why",
    "vagrant_only(reason): runs only on the vagrant driver; the reason says why",
    "faults(*kinds): the fault kinds (mailring.faults) the test injects; skipped, saying which, "
    "on a driver that lacks one",
    "long: the test takes seconds of protocol time (whole-node faults, labs of its own); the "
    "suite runs these first, so the quick tests even out when the xdist workers finish",
)


def _driver(value: str) -> str:
    if value not in DRIVERS:
        raise pytest.UsageError(f"--driver {value!r}: use one of {', '.join(sorted(DRIVERS))}")
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mailring", "mailring cluster suite")
    group.addoption("--driver", dest="mailring_driver", type=_driver,
                    default=os.environ.get("MAILRING_DRIVER", DEFAULT_DRIVER),
                    help="cluster driver: lab (namespaces on this host) or vagrant (FreeBSD VMs); "
                         "env MAILRING_DRIVER")
    group.addoption("--lab", dest="mailring_lab", default=os.environ.get("MAILRING_LAB", DEFAULT_LAB),
                    help="lab name; each xdist worker appends -<worker id>; env MAILRING_LAB")
    group.addoption("--topology", dest="mailring_topology",
                    default=os.environ.get("MAILRING_TOPOLOGY", str(DEFAULT_TOPOLOGY)),
                    help="topology file the cluster is built from")
    group.addoption("--keep-cluster", dest="mailring_keep", action="store_true",
                    help="leave the cluster running after the session (for debugging)")


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    from mailring.runs.session import ResultRecorder, stamp_run

    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    from mailring import interrupts

    interrupts.install()  # SIGTERM, like Ctrl-C, ends the session through every fixture's teardown
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        # one run folder per session: xdist workers, started after this, inherit the stamp
        stamp_run()
        scheduling.name_groups_file(config)  # and where to write the xdist groups they collect
        if config.getoption("numprocesses", None):
            interrupts.BEFORE_RAISE.append(pass_sigterm_to_workers)
    config.pluginmanager.register(ResultRecorder(config), "mailring-results")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    return scheduling.make_scheduler(config, log)


def pytest_unconfigure(config: pytest.Config) -> None:
    scheduling.forget_groups_file()


def pass_sigterm_to_workers(signum: int) -> None:
    """An xdist controller's SIGTERM (a CI time-out, a ``kill``) goes on to its workers at once, so
    each heals its faults and takes its labs down; otherwise they learn of it only when the
    controller shuts them down, and are killed if their teardown outlasts its wait. Ctrl-C
    already reaches every process of the terminal's group."""
    if signum != signal.SIGTERM:
        return
    me = str(os.getpid())
    for entry in os.scandir("/proc"):
        try:
            stat = Path(entry.path, "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        if stat and stat[stat.rindex(")") + 2:].split()[1] == me:  # a child: an xdist worker
            try:
                os.kill(int(entry.name), signal.SIGTERM)
            except ProcessLookupError:
                pass


def pytest_collect_file(file_path, parent: pytest.Collector) -> pytest.Collector | None:
    """Scenario files (``scenarios/*.yaml``) are test items: ``pytest fixtures/scenarios``."""
    from mailring.scenario.collect import ScenarioFile, is_scenario_file

    if not is_scenario_file(file_path):
        return None
    node = ScenarioFile.from_parent(parent, path=file_path)
    node.lab = lab_name(parent.config)
    return node


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    driver = config.getoption("mailring_driver")
    needs_lab = any("cluster" in getattr(item, "fixturenames", ()) or item.get_closest_marker("destructive")
                    for item in items)  # scenario items are destructive and bring their own
    if driver == "lab" and os.geteuid() != 0 and needs_lab:
        # not a skip: a suite that skips every test ends green and proves nothing
        pytest.exit("mailring: the lab driver needs root (network, mount and PID namespaces); "
                    "run the cluster suite as root, or only tests/unit", returncode=2)
    for item in items:
        for name, wanted in (("lab_only", "lab"), ("vagrant_only", "vagrant")):
            mark = item.get_closest_marker(name)
            if mark is not None and driver != wanted:
                reason = mark.args[0] if mark.args else mark.kwargs.get("reason", "")
                item.add_marker(pytest.mark.skip(reason=f"{name} ({driver} driver): {reason}"))
        lacking = [k for mark in item.iter_markers("faults") for k in mark.args
                   if not _supports(driver, k, item.nodeid)]
        if lacking:
            item.add_marker(pytest.mark.skip(reason=f"the {driver} driver has no fault "
                                                    f"{', '.join(lacking)} (mailring.faults)"))
    scheduling.order(items)
    scheduling.share_groups(items)


def _supports(driver: str, kind: str, nodeid: str) -> bool:
    try:
        return driver_class(driver).supports(kind)
    except InputError as exc:
        raise pytest.UsageError(f"{nodeid}: @pytest.mark.faults: {exc}") from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``vip`` and ``mail_node`` from the topology, so tests name none themselves."""
    wanted = [f for f in ("vip", "mail_node") if f in metafunc.fixturenames]
    if not wanted:
        return
    topo = session_topology(metafunc.config)
    if "vip" in wanted:
        metafunc.parametrize("vip", [str(v.address) for v in topo.vips])
    if "mail_node" in wanted:
        metafunc.parametrize("mail_node", [n.name for n in topo.mail_nodes])


def lab_name(config: pytest.Config) -> str:
    """The session's lab name: --lab, plus the xdist worker id so workers never share a lab."""
    base = config.getoption("mailring_lab")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return f"{base}-{worker}" if worker else base


def session_topology(config: pytest.Config) -> Topology:
    """The --topology file, loaded and checked once per process (collection parametrizes about
    twenty test functions from it; each load parses the YAML again, 50 ms)."""
    if TOPOLOGY not in config.stash:
        try:
            config.stash[TOPOLOGY] = load(config.getoption("mailring_topology"))
        except InputError as exc:
            raise pytest.UsageError(str(exc)) from None
    return config.stash[TOPOLOGY]


@pytest.fixture(scope="session")
def topology(pytestconfig: pytest.Config) -> Topology:
    """The cluster's topology, loaded and checked once per session."""
    return session_topology(pytestconfig)


@pytest.fixture(scope="session")
def cluster(pytestconfig: pytest.Config, topology: Topology) -> Iterator[Cluster]:
    """The running cluster: up once for the session, always down at the end (unless --keep-cluster)."""
    from mailring.runs.session import folder

    driver = pytestconfig.getoption("mailring_driver")
    c = open_cluster(topology, driver=driver, lab=lab_name(pytestconfig))
    c.failure_logs = folder(pytestconfig).path / "logs" / c.lab  # a failed up() leaves its logs here
    started = False  # up() returned: the nodes have logs worth keeping
    made = True  # up() may have made something (False only for bad input: it started nothing)
    try:
        try:
            c.up()
        except InputError as exc:
            made = False
            pytest.exit(f"mailring: {exc}", returncode=2)
        started = True
        yield c
    finally:  # also when up() fails or is interrupted (Ctrl-C): what it made goes away
        if started:
            from mailring.runs.session import collect_node_logs

            collect_node_logs(pytestconfig, c)
        if made and not pytestconfig.getoption("mailring_keep"):
            c.down()


class SecondClusters:
    """Clusters beside the session's own (``cluster_factory``): each made on first use, shared
    by every test that asks for the same file under the same name, and taken down (logs
    collected first) once this process goes on to a test in another file that does not use
    the factory (``pytest_runtest_teardown``), so its load never skews the timings of the tests
    after it. A lab at rest is not free: its HAProxies' health checks cost about a fifteenth of a core."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.made: dict[tuple[str, str], Cluster] = {}

    def make(self, path: str | os.PathLike, suffix: str) -> Cluster:
        from mailring.runs.session import folder

        key = (str(Path(path).resolve()), suffix)
        if key not in self.made:
            driver = self.config.getoption("mailring_driver")
            c = open_cluster(load(path), driver=driver, lab=f"{lab_name(self.config)}-{suffix}")
            c.failure_logs = folder(self.config).path / "logs" / c.lab
            c.up()  # a failed up() removes what it made and raises: nothing to remember
            self.made[key] = c
        return self.made[key]

    def down_all(self) -> None:
        from mailring.runs.session import collect_node_logs

        made, self.made = list(self.made.values()), {}
        for c in made:
            collect_node_logs(self.config, c)
            if not self.config.getoption("mailring_keep"):
                c.down()


@pytest.fixture(scope="session")
def cluster_factory(pytestconfig: pytest.Config) -> Iterator:
    """make(topology_file, suffix) -> another running cluster (lab <lab>-<suffix>), one per
    (file, suffix) at a time (see SecondClusters): taken down when the tests that use the
    factory are done here (the next test is in another file and does not use it), or at the
    end of the session, whichever comes first.

    For tests that compare designs (the article's first design: one VIP per server, PROXY off).
    """
    clusters = SecondClusters(pytestconfig)
    pytestconfig.stash[SECOND] = clusters
    try:
        yield clusters.make
    finally:
        clusters.down_all()


def _uses_second(item: pytest.Item | None) -> bool:
    return item is not None and "cluster_factory" in getattr(item, "fixturenames", ())


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Take the second clusters down once this process is done with them: when the next test
    it runs (xdist hands each worker its own) is in another file and does not use them.
    Within a file they stay, as module fixtures holding one do (trylast: those are torn
    down by now)."""
    if _uses_second(nextitem) or (nextitem is not None and nextitem.path == item.path):
        return
    clusters = item.config.stash.get(SECOND, None)
    if clusters is not None:
        clusters.down_all()


@pytest.fixture
def nemesis(request: pytest.FixtureRequest, cluster: Cluster) -> Iterator:
    """Faults for one test; every fault still active is healed at teardown, then the
    cluster must converge back to the model (each test leaves it as it found it)."""
    from mailring.checks.serving import check_deadline_s
    from mailring.nemesis import Nemesis
    from mailring.polling.convergence import converge
    from mailring.polling.haproxy import servers_settled

    if request.node.get_closest_marker("destructive") is None:
        raise pytest.UsageError(f"{request.node.nodeid} uses nemesis: mark it @pytest.mark.destructive")
    from mailring.runs.session import record_nemesis

    nem = Nemesis(cluster)
    try:
        yield nem
    finally:
        errors = nem.heal_all()
        record_nemesis(request.config, nem.history, request.node.nodeid)
        try:
            converge(cluster, failed=set())
            servers_settled(cluster, check_deadline_s(cluster.topology) * 2)
        except Exception as exc:  # every later test would run on a broken cluster: stop here
            errors.append(str(exc))
        if errors:
            reason = (f"mailring: after {request.node.nodeid} the nemesis could not bring the cluster "
                      "back to the model: " + "; ".join(errors))
            request.session.shouldstop = reason
            raise RuntimeError(reason)


@pytest.fixture(scope="session")
def outages(pytestconfig: pytest.Config) -> Iterator:
    """Record measured outage windows; printed, and saved in the session's run folder, at the end."""
    from mailring.runs.outages import OutageLog

    log = OutageLog()
    pytestconfig.stash[OUTAGES] = log
    yield log


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    from mailring.runs.session import set_current_test

    set_current_test(item.config, item.nodeid)  # tags the history and faults it records
    yield


@pytest.hookimpl(trylast=True)  # after pytest's own junitxml has written its file
def pytest_sessionfinish(session: pytest.Session) -> None:
    from mailring.runs import session as run

    config = session.config
    log = config.stash.get(OUTAGES, None)
    if log is not None and log.rows:
        log.save(run.folder(config).path)
    if run.is_controller() and run.used(config):
        from mailring.runs.outages import merge

        config.stash[MERGED] = merge(run.folder(config).path)
        run.finish(config)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    from mailring.runs import session as run
    from mailring.runs.outages import table

    rows = config.stash.get(MERGED, None)
    if rows:
        terminalreporter.write_line(table(rows))
        terminalreporter.write_line(f"outage figures: {run.folder(config).path / 'outages.json'}")
    if run.is_controller() and run.used(config):
        terminalreporter.write_line(f"run folder: {run.folder(config).path} (report.html, verdict.json, "
                                    "junit.xml, logs/)")


@pytest.fixture(scope="session")
def client(pytestconfig: pytest.Config, cluster: Cluster):
    """Probes from the client host's point of view (its address, its resolver)."""
    from mailring.client import Client
    from mailring.runs.session import history_recorder

    return Client(cluster, record=history_recorder(pytestconfig))
