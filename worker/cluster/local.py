"""A local single-node search server for development, tests and the demo.

The server is assembled from artifacts on Maven Central: the engine's
``integ-test-zip`` distribution, which carries only the transport module, plus
the module jars d2q needs (``rank_features`` lives in mapper-extras, the
language analysers in analysis-common, update scripts in painless, ingest
processors in ingest-common). Everything is fetched with ``mvn`` into a cache
folder, so a second start downloads nothing. The node listens on 127.0.0.1 only.

OpenSearch publishes those module jars; Elasticsearch does not, so its node is
the bare integ-test-zip (see ELASTICSEARCH below).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from worker.cluster import server_user
from worker.cluster.detect import HttpOptions, detect_server
from worker.cluster.toolchain import (  # noqa: F401 - _java_major is re-exported
    Artifact,
    _java_major,
    fetch_artifact,
    find_java,
)
from worker.errors import ClusterError, LocalClusterError

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "d2q"
DEFAULT_HEAP = "512m"
START_TIMEOUT_SECONDS = 180.0
STOP_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Module:
    """A module plugin added to the distribution: its jars and descriptor."""

    name: str
    classname: str
    jars: tuple[Artifact, ...]
    extended_plugins: tuple[str, ...] = ()
    security_policy: str = ""


@dataclass(frozen=True)
class Distribution:
    """One engine version that d2q can run locally."""

    engine: str
    version: str
    archive: Artifact
    modules: tuple[Module, ...]
    min_java: int
    java_opts_variable: str
    launcher: str
    descriptor_version_key: str
    extra_settings: dict[str, str] = field(default_factory=dict)
    java_home_variable: str = "JAVA_HOME"
    # Set for servers that write into their config folder (a keystore): each
    # node then gets its own copy, named by this variable.
    path_conf_variable: str | None = None
    # Whether disabling JNA lets the server run as root. Where it does not,
    # a root caller runs the node as the unprivileged SERVER_USER instead.
    runs_as_root: bool = True

    @property
    def home_name(self) -> str:
        return f"{self.engine}-{self.version}"


OPENSEARCH_VERSION = "2.19.6"
_PAINLESS_POLICY = """grant {
  permission java.lang.RuntimePermission "createClassLoader";
  permission java.lang.RuntimePermission "getClassLoader";
};
"""
# mustache.java reads template parameters by reflection.
_MUSTACHE_POLICY = """grant {
  permission java.lang.RuntimePermission "accessDeclaredMembers";
};
"""


def _opensearch_plugin(name: str) -> Artifact:
    return Artifact(f"org.opensearch.plugin:{name}:{OPENSEARCH_VERSION}")


OPENSEARCH = Distribution(
    engine="opensearch",
    version=OPENSEARCH_VERSION,
    archive=Artifact(
        "org.opensearch.distribution.integ-test-zip:opensearch:"
        f"{OPENSEARCH_VERSION}:zip"
    ),
    modules=(
        Module(
            name="mapper-extras",
            classname="org.opensearch.index.mapper.MapperExtrasPlugin",
            jars=(_opensearch_plugin("mapper-extras-client"),),
        ),
        Module(
            name="lang-painless",
            classname="org.opensearch.painless.PainlessPlugin",
            jars=(
                _opensearch_plugin("lang-painless"),
                _opensearch_plugin("opensearch-scripting-painless-spi"),
                Artifact("org.antlr:antlr4-runtime:4.13.1"),
                Artifact("org.ow2.asm:asm:9.7"),
                Artifact("org.ow2.asm:asm-analysis:9.7"),
                Artifact("org.ow2.asm:asm-commons:9.7"),
                Artifact("org.ow2.asm:asm-tree:9.7"),
                Artifact("org.ow2.asm:asm-util:9.7"),
            ),
            security_policy=_PAINLESS_POLICY,
        ),
        Module(
            name="analysis-common",
            classname="org.opensearch.analysis.common.CommonAnalysisPlugin",
            jars=(_opensearch_plugin("analysis-common"),),
            extended_plugins=("lang-painless",),
        ),
        # The ingest processors (script, set, ...) of the change-marking pipeline.
        Module(
            name="ingest-common",
            classname="org.opensearch.ingest.common.IngestCommonPlugin",
            jars=(
                _opensearch_plugin("ingest-common"),
                Artifact(f"org.opensearch:opensearch-grok:{OPENSEARCH_VERSION}"),
                Artifact(f"org.opensearch:opensearch-dissect:{OPENSEARCH_VERSION}"),
                Artifact("org.jruby.joni:joni:2.2.1"),
                Artifact("org.jruby.jcodings:jcodings:1.0.61"),
            ),
            extended_plugins=("lang-painless",),
        ),
        # Search templates (_search/template, _render/template, stored mustache).
        Module(
            name="lang-mustache",
            classname="org.opensearch.script.mustache.MustachePlugin",
            jars=(
                _opensearch_plugin("lang-mustache-client"),
                Artifact("com.github.spullara.mustache.java:compiler:0.9.14"),
            ),
            security_policy=_MUSTACHE_POLICY,
        ),
    ),
    min_java=11,
    java_opts_variable="OPENSEARCH_JAVA_OPTS",
    launcher="opensearch",
    descriptor_version_key="opensearch.version",
)

# Elasticsearch publishes on Maven Central only its integ-test-zip (with the
# apm, transport-netty4, x-pack-core and x-pack-security modules) and none of
# its other modules, so this node has no painless, no rank_features, no
# language analysers, no ingest processors and no root endpoint. d2q copes:
# the expansion maps its terms as sparse_vector (server core), writes without
# scripts where painless is missing, and detects the engine from the
# X-Elastic-Product header. Tests define a stand-in "spanish" analyser.
# 9.5.0 is the newest 9.x whose integ-test-zip Maven Central served on
# 2026-12-04 (9.5.6, 9.4.0 and 9.3.0 were not served).
ELASTICSEARCH_VERSION = "9.5.0"

ELASTICSEARCH = Distribution(
    engine="elasticsearch",
    version=ELASTICSEARCH_VERSION,
    archive=Artifact(
        "org.elasticsearch.distribution.integ-test-zip:elasticsearch:"
        f"{ELASTICSEARCH_VERSION}:zip"
    ),
    modules=(),
    min_java=21,
    java_opts_variable="ES_JAVA_OPTS",
    launcher="elasticsearch",
    descriptor_version_key="elasticsearch.version",
    # Security would require TLS and passwords; this node is for development
    # on 127.0.0.1 only.
    extra_settings={"xpack.security.enabled": "false"},
    java_home_variable="ES_JAVA_HOME",
    path_conf_variable="ES_PATH_CONF",
    runs_as_root=False,
)

DISTRIBUTIONS: dict[str, Distribution] = {
    "opensearch": OPENSEARCH,
    "elasticsearch": ELASTICSEARCH,
}

# The account and folder of nodes that cannot run as root; see start().
SERVER_USER = "d2q"
SERVER_FILES_DIR = Path("/var/tmp/d2q")


def runs_as_other_user(distribution: Distribution) -> bool:
    """Tell whether a node of ``distribution`` started now runs as SERVER_USER."""
    return os.geteuid() == 0 and not distribution.runs_as_root


@dataclass(frozen=True)
class LocalNode:
    """The folders and files of one local node."""

    distribution: Distribution
    port: int
    cache_dir: Path = DEFAULT_CACHE_DIR

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def files_dir(self) -> Path:
        """Folder of the server home and node data; SERVER_USER must reach it."""
        if runs_as_other_user(self.distribution):
            return SERVER_FILES_DIR
        return self.cache_dir

    @property
    def home(self) -> Path:
        return self.files_dir / "servers" / self.distribution.home_name

    @property
    def node_dir(self) -> Path:
        return self.files_dir / "nodes" / f"{self.distribution.engine}-{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.node_dir / "server.pid"

    @property
    def log_file(self) -> Path:
        return self.node_dir / "server.out"


def get_node(
    engine: str, port: int, cache_dir: Path | None = None, version: str | None = None
) -> LocalNode:
    """Return the local node for ``engine`` on ``port``.

    ``version`` picks another release than the default one, for engines whose
    node is the bare distribution. A node keeps its data folder by port, so
    another version needs another port.

    Raises:
        LocalClusterError: the engine is unknown, or it takes no other version.
    """
    if engine not in DISTRIBUTIONS:
        known = ", ".join(sorted(DISTRIBUTIONS))
        raise LocalClusterError(f"unknown engine {engine!r}; choose one of: {known}")
    distribution = DISTRIBUTIONS[engine]
    if version is not None and version != distribution.version:
        distribution = _other_version(distribution, version)
    return LocalNode(distribution, port, cache_dir or DEFAULT_CACHE_DIR)


def _other_version(distribution: Distribution, version: str) -> Distribution:
    if distribution.modules:
        raise LocalClusterError(
            f"the local {distribution.engine} node runs only version "
            f"{distribution.version}, because its module jars are pinned to it"
        )
    group, artifact = distribution.archive.coordinates.split(":")[:2]
    archive = Artifact(f"{group}:{artifact}:{version}:zip")
    return dataclasses.replace(distribution, version=version, archive=archive)


# --- fetching and assembling -------------------------------------------------


def _write_module(
    module: Module, target: Path, dist: Distribution, cache: Path
) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for jar in module.jars:
        shutil.copy2(fetch_artifact(jar, cache), target / jar.file_name)
    descriptor = {
        "description": f"{module.name} module, assembled by d2q",
        "version": dist.version,
        "name": module.name,
        "classname": module.classname,
        "java.version": "11",
        dist.descriptor_version_key: dist.version,
        "extended.plugins": ",".join(module.extended_plugins),
        "has.native.controller": "false",
    }
    lines = [f"{key}={value}" for key, value in descriptor.items()]
    (target / "plugin-descriptor.properties").write_text("\n".join(lines) + "\n")
    if module.security_policy:
        (target / "plugin-security.policy").write_text(module.security_policy)


def install(node: LocalNode) -> Path:
    """Fetch and assemble the distribution of ``node`` once; return its home."""
    home = node.home
    marker = home / ".d2q-assembled"
    if marker.is_file():
        # A home assembled by an older d2q gets the modules added since; a node
        # already running loads them at its next start.
        for module in node.distribution.modules:
            target = home / "modules" / module.name
            if not target.is_dir():
                staging = home / ".d2q-staging" / module.name
                shutil.rmtree(staging, ignore_errors=True)
                _write_module(module, staging, node.distribution, node.cache_dir)
                staging.rename(target)
        return home
    dist = node.distribution
    archive = fetch_artifact(dist.archive, node.cache_dir)
    staging = home.with_name(home.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(staging)
    (top,) = [path for path in staging.iterdir() if path.is_dir()]
    for module in dist.modules:
        _write_module(module, top / "modules" / module.name, dist, node.cache_dir)
    for script in (top / "bin").iterdir():
        script.chmod(0o755)
    shutil.rmtree(home, ignore_errors=True)
    top.rename(home)
    shutil.rmtree(staging, ignore_errors=True)
    marker.write_text(dist.archive.coordinates + "\n")
    return home


# --- process life cycle --------------------------------------------------------


def _read_pid(node: LocalNode) -> int | None:
    try:
        pid = int(node.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _log_tail(node: LocalNode, lines: int = 15) -> str:
    try:
        text = node.log_file.read_text(errors="replace")
    except FileNotFoundError:
        return "(no server output)"
    return "\n".join(text.splitlines()[-lines:])


def start(node: LocalNode, heap: str = DEFAULT_HEAP) -> str:
    """Start the node unless it runs already; wait until it responds; return its URL.

    Raises:
        LocalClusterError: Java or mvn is missing, the port is taken by another
            process, or the server did not respond within the start timeout.
    """
    if _read_pid(node) is not None and _cluster_ready(node.url):
        logger.info("%s already running at %s", node.distribution.engine, node.url)
        return node.url
    if not _port_is_free(node.port):
        raise LocalClusterError(
            f"port {node.port} on 127.0.0.1 is taken by another process; stop it or "
            f"choose another port with --port"
        )
    dist = node.distribution
    java_home = find_java(dist.min_java)
    home = install(node)
    data_dir = node.node_dir / "data"
    logs_dir = node.node_dir / "logs"
    data_dir.mkdir(parents=True, exist_ok=True)
    logs_dir.mkdir(parents=True, exist_ok=True)

    java_opts = [f"-Xms{heap}", f"-Xmx{heap}"]
    env = dict(os.environ, JAVA_HOME=str(java_home))
    env[dist.java_home_variable] = str(java_home)
    if dist.path_conf_variable:
        env[dist.path_conf_variable] = str(_node_config(node, home))
    account = None
    if runs_as_other_user(dist):
        account = server_user.prepare(SERVER_USER, node.home, node.node_dir)
        env["HOME"] = str(node.node_dir)
    elif os.geteuid() == 0:
        # NOTE: the server refuses to run as root. Disabling JNA's native
        # library turns that check (and the system call filter) off, which is
        # acceptable only because this node is for development and binds to
        # 127.0.0.1.
        java_opts += ["-Djna.nosys=true", "-Djna.nounpack=true"]
    env[dist.java_opts_variable] = " ".join(java_opts)
    settings = {
        "network.host": "127.0.0.1",
        "http.port": str(node.port),
        "transport.port": str(node.port + 100),
        "discovery.type": "single-node",
        "path.data": str(data_dir),
        "path.logs": str(logs_dir),
        "cluster.routing.allocation.disk.threshold_enabled": "false",
        **dist.extra_settings,
    }
    command = [str(home / "bin" / dist.launcher)]
    for key, value in settings.items():
        command += ["-E", f"{key}={value}"]
    with open(node.log_file, "wb") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            **server_user.popen_options(account),
        )
    node.pid_file.write_text(f"{process.pid}\n")
    logger.info(
        "started %s pid %d, waiting for %s", dist.home_name, process.pid, node.url
    )

    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            node.pid_file.unlink(missing_ok=True)
            raise LocalClusterError(
                f"{dist.home_name} exited with code {process.returncode} during "
                f"start; last output:\n{_log_tail(node)}"
            )
        if _cluster_ready(node.url):
            return node.url
        time.sleep(1.0)
    stop(node)
    raise LocalClusterError(
        f"{dist.home_name} did not respond at {node.url} within "
        f"{START_TIMEOUT_SECONDS:.0f} s; last output:\n{_log_tail(node)}"
    )


def _node_config(node: LocalNode, home: Path) -> Path:
    """Copy the distribution's config folder to the node once; return the copy."""
    config = node.node_dir / "config"
    if not config.is_dir():
        shutil.copytree(home / "config", config)
    return config


def _cluster_ready(url: str) -> bool:
    health_url = f"{url}/_cluster/health?wait_for_status=yellow&timeout=1s"
    try:
        with urllib.request.urlopen(health_url, timeout=5) as response:
            return bool(json.load(response).get("status") in ("green", "yellow"))
    except (urllib.error.URLError, OSError, ValueError):
        return False


def stop(node: LocalNode) -> bool:
    """Stop the node if it runs; return whether a process was stopped."""
    pid = _read_pid(node)
    if pid is None:
        node.pid_file.unlink(missing_ok=True)
        return False
    # The process may exit between the check and each signal.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if _read_pid(node) is None:
            break
        _reap(pid)
        time.sleep(0.5)
    else:
        logger.warning(
            "pid %d ignored SIGTERM for %.0f s; killing", pid, STOP_TIMEOUT_SECONDS
        )
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    node.pid_file.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def status(node: LocalNode) -> dict[str, object]:
    """Describe the node: whether its process runs and which version responds."""
    pid = _read_pid(node)
    try:
        version: str | None = detect_server(node.url, HttpOptions(timeout=2.0)).version
    except ClusterError:
        version = None
    return {
        "engine": node.distribution.engine,
        "url": node.url,
        "pid": pid,
        "running": pid is not None,
        "answering": version is not None,
        "version": version,
        "home": str(node.home),
        "data": str(node.node_dir),
    }
