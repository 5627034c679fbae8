"""Where the pipeline code lives: the git commit when the code is a checkout, else the package version.

The ``sourceCodeLocation`` job facet lets a reader of lineage find the exact code that
produced a dataset. Computed once per process (git is asked at most once).
"""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path

from lineage_auditor.facets import PRODUCER
from pipelines.runtime.naming import public_url

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "lineage-audit"


@functools.cache
def package_version() -> str:
    """The installed version, or the one in ``setup.cfg`` when running from a checkout."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        pass
    setup_cfg = REPO_ROOT / "setup.cfg"
    if setup_cfg.is_file():
        for line in setup_cfg.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "version" and value.strip():
                return value.strip()
    return "0+unknown"


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


@functools.cache
def git_state() -> dict[str, str]:
    """``sha``, ``branch`` and ``remote`` of the checkout holding this code (empty when none)."""
    sha = _git("rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if not sha:
        return {}
    branch = _git("rev-parse", "--abbrev-ref", "HEAD")
    remote = _git("config", "--get", "remote.origin.url")
    return {"sha": sha, "branch": "" if branch == "HEAD" else branch, "remote": remote_uri(remote) if remote else ""}


def remote_uri(remote: str) -> str:
    """A git remote as a URI the facet accepts, without credentials.

    Remotes come as URLs (``https://…``), scp-like addresses (``git@host:org/repo.git``) or
    plain paths (a clone of a local checkout); the facet's ``url`` must be a URI.
    """
    if "://" in remote:
        return public_url(remote)
    host, sep, path = remote.partition(":")
    if sep and "/" not in host and not Path(remote).exists():
        return f"ssh://{host.rpartition('@')[2]}/{path.lstrip('/')}"
    return Path(remote).expanduser().resolve().as_uri()


def source_code_location(module_file: str) -> dict[str, str]:
    """Fields of the ``sourceCodeLocation`` facet for the code in ``module_file``."""
    path = Path(module_file).resolve()
    try:
        relative = path.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        relative = path.name
    git = git_state()
    if git:
        url = git["remote"] or REPO_ROOT.as_uri()
        fields = {"type": "git", "url": url, "path": relative, "version": git["sha"]}
        if git["remote"]:
            fields["repoUrl"] = git["remote"]
        if git["branch"]:
            fields["branch"] = git["branch"]
        return fields
    return {"type": "package", "url": PRODUCER, "path": relative, "version": package_version()}
