"""The tools a local server needs: Maven to fetch its artifacts, and a JDK."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from worker.errors import LocalClusterError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Artifact:
    """A Maven artifact, written ``group:artifact:version[:packaging]``."""

    coordinates: str

    @property
    def file_name(self) -> str:
        parts = self.coordinates.split(":")
        packaging = parts[3] if len(parts) > 3 else "jar"
        return f"{parts[1]}-{parts[2]}.{packaging}"

    @property
    def repository_path(self) -> str:
        group, artifact, version = self.coordinates.split(":")[:3]
        return f"{group.replace('.', '/')}/{artifact}/{version}/{self.file_name}"


def _maven_repository(cache_dir: Path) -> Path:
    return cache_dir / "m2"


def fetch_artifact(artifact: Artifact, cache_dir: Path) -> Path:
    """Download ``artifact`` with ``mvn`` into the cache unless it is there."""
    repository = _maven_repository(cache_dir)
    path = repository / artifact.repository_path
    if path.is_file():
        return path
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalClusterError(
            "mvn not found on PATH; install Maven (for example "
            "'apt-get install maven') so d2q can fetch the server from Maven Central"
        )
    logger.info("fetching %s with mvn", artifact.coordinates)
    command = [
        mvn,
        "-q",
        "-B",
        "dependency:get",
        f"-Dmaven.repo.local={repository}",
        f"-Dartifact={artifact.coordinates}",
        "-Dtransitive=false",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not path.is_file():
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise LocalClusterError(
            f"mvn could not fetch {artifact.coordinates} (exit code "
            f"{result.returncode}): " + " | ".join(tail)
        )
    return path


def _java_major(java_home: Path) -> int | None:
    release = java_home / "release"
    if not release.is_file():
        return None
    for line in release.read_text().splitlines():
        if line.startswith("JAVA_VERSION="):
            version = line.split("=", 1)[1].strip('"')
            head = version.split(".")[0]
            if head == "1":
                head = version.split(".")[1]
            return int(head) if head.isdigit() else None
    return None


def find_java(min_major: int) -> Path:
    """Return a JDK home of at least ``min_major``: JAVA_HOME, then /usr/lib/jvm."""
    candidates: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    jvm_root = Path("/usr/lib/jvm")
    if jvm_root.is_dir():
        candidates.extend(sorted(jvm_root.iterdir()))
    java_on_path = shutil.which("java")
    if java_on_path:
        candidates.append(Path(java_on_path).resolve().parent.parent)
    for home in candidates:
        major = _java_major(home)
        if major is not None and major >= min_major and (home / "bin/java").exists():
            return home
    example = (
        "'apt-get install openjdk-17-jdk-headless'"
        if min_major <= 17
        else "a Temurin or OpenJDK build unpacked under /usr/lib/jvm"
    )
    raise LocalClusterError(
        f"no Java {min_major} or newer found (looked at JAVA_HOME, /usr/lib/jvm and "
        f"PATH); install a JDK {min_major} or newer, for example {example}"
    )
