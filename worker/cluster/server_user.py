"""An unprivileged account for local servers that refuse to run as root.

Elasticsearch checks the user id through its own native access layer (the
Java foreign function API on Java 21 and newer), so the JNA switches that let
OpenSearch run as root do not help. A root caller, as in CI containers, runs
such a node as a system account instead, created on first use. Its files live
in a folder that account can reach, because the root home folder is usually
closed to other users.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import Any

from worker.errors import LocalClusterError

logger = logging.getLogger(__name__)

Account = tuple[int, int]  # uid, gid


def ensure_account(name: str) -> Account:
    """Return the uid and gid of system account ``name``, creating it if missing.

    Raises:
        LocalClusterError: the account is missing and useradd is not installed
            or failed.
    """
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        entry = None
    if entry is not None:
        return entry.pw_uid, entry.pw_gid
    useradd = shutil.which("useradd")
    if useradd is None:
        raise LocalClusterError(
            f"the server cannot run as root and user {name!r} does not exist; "
            f"install useradd (package passwd) or run d2q as another user"
        )
    command = [
        useradd,
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        name,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LocalClusterError(
            f"could not create system user {name!r} (useradd exit code "
            f"{result.returncode}): {result.stderr.strip()}"
        )
    logger.info("created system user %s to run local servers that refuse root", name)
    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def open_tree_to_others(root: Path) -> None:
    """Let other users read every file and enter every folder under ``root``."""
    for folder, _, files in os.walk(root):
        folder_path = Path(folder)
        folder_path.chmod(folder_path.stat().st_mode | 0o005)
        for name in files:
            file_path = folder_path / name
            if not file_path.is_symlink():
                file_path.chmod(file_path.stat().st_mode | 0o004)


def give_tree_to(root: Path, account: Account) -> None:
    """Make ``account`` the owner of ``root`` and everything under it."""
    uid, gid = account
    os.chown(root, uid, gid)
    for folder, folders, files in os.walk(root):
        for name in [*folders, *files]:
            os.chown(Path(folder) / name, uid, gid, follow_symlinks=False)


def prepare(name: str, home: Path, node_dir: Path) -> Account:
    """Create account ``name`` if needed, let it read ``home`` and own ``node_dir``."""
    account = ensure_account(name)
    for folder in (home.parent.parent, home.parent, node_dir.parent):
        folder.chmod(folder.stat().st_mode | 0o755)
    open_tree_to_others(home)
    give_tree_to(node_dir, account)
    return account


def popen_options(account: Account | None) -> dict[str, Any]:
    """Return the subprocess.Popen arguments that run a process as ``account``."""
    if account is None:
        return {}
    uid, gid = account
    return {"user": uid, "group": gid, "extra_groups": []}
