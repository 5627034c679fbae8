"""Getting the Marquez API server onto this machine and turning it into a java command line.

Marquez publishes its API server to Maven Central as ``io.github.marquezproject:marquez-api``.
We fetch it with Maven from the small pom in ``deploy/pom.xml`` (package data beside this
module, so an installed lineage-audit has it) into a cache directory, so a
second ``up`` (or a second test run) starts without touching the network. A jar obtained some
other way (built from source, copied from a company mirror) can be used instead through
``LINEAGE_AUDIT_MARQUEZ_JAR``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lineage_auditor.errors import LineageAuditError

MARQUEZ_VERSION = "0.51.1"
MARQUEZ_ARTIFACT = "io.github.marquezproject:marquez-api"
MAIN_CLASS = "marquez.MarquezApp"
MIN_JAVA = 17
MAVEN_TIMEOUT_S = 900


class MarquezSetupError(LineageAuditError):
    """Marquez cannot be fetched or started on this machine; the message says what to do."""


def deploy_dir() -> Path:
    """Where the files ``marquez up`` needs (pom.xml, marquez.yml) live.

    They are package data of this package (``collectors/marquez/deploy/``), so a source
    checkout and ``pip install .`` find them alike; ``LINEAGE_AUDIT_DEPLOY_DIR`` points at
    edited copies.
    """
    override = os.environ.get("LINEAGE_AUDIT_DEPLOY_DIR")
    return Path(override) if override else Path(__file__).resolve().parent / "deploy"


def cache_dir(version: str = MARQUEZ_VERSION) -> Path:
    """The per-version download cache (``$LINEAGE_AUDIT_CACHE`` or ``~/.cache/lineage-audit``)."""
    root = os.environ.get("LINEAGE_AUDIT_CACHE") or str(Path.home() / ".cache" / "lineage-audit")
    return Path(root) / "marquez" / version


@dataclass(frozen=True)
class Launch:
    """How to start one Marquez: the java arguments before ``server <config>``."""

    java: str
    args: tuple[str, ...]
    source: str  # the jar or classpath directory, for messages

    def command(self, config: Path) -> list[str]:
        return [self.java, *self.args, "server", str(config)]


def find_java() -> str:
    """The java binary (``$JAVA_HOME/bin/java`` first), checked to be Java 17 or newer."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() else shutil.which("java")
    if not java:
        raise MarquezSetupError(
            "java not found: Marquez needs Java 17 or newer (Debian: apt-get install openjdk-17-jre-headless, "
            "or set JAVA_HOME)"
        )
    major = java_major_version(java)
    if major < MIN_JAVA:
        raise MarquezSetupError(f"{java} is Java {major}; Marquez needs Java {MIN_JAVA} or newer (set JAVA_HOME)")
    return java


def java_major_version(java: str) -> int:
    """Parse ``java -version`` ("1.8.0_x" -> 8, "17.0.15" -> 17)."""
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise MarquezSetupError(f"cannot tell the version of {java}: {(out.stderr or out.stdout).strip()[:200]}")
    first, second = int(match.group(1)), int(match.group(2) or 0)
    return second if first == 1 else first


def is_runnable_jar(jar: Path, *, needs_bundled_deps: bool) -> bool:
    """True when ``java -jar`` can start the jar: its manifest names a Main-Class and, when
    Maven also copied the dependencies, the jar bundles them (a shaded jar).

    A thin jar that names a Main-Class would fail under ``java -jar``; next to the copied
    dependencies it runs from the classpath instead.
    """
    try:
        with zipfile.ZipFile(jar) as zf:
            manifest = zf.read("META-INF/MANIFEST.MF").decode("utf-8", "replace")
            bundled = any(n.startswith("io/dropwizard/") for n in zf.namelist())
    except (KeyError, zipfile.BadZipFile, OSError):
        return False
    has_main = re.search(r"^Main-Class:\s*\S+", manifest, re.MULTILINE) is not None
    return has_main and (bundled or not needs_bundled_deps)


def launch_for_jar(java: str, jar: Path, lib: Path | None = None) -> Launch:
    """``java -jar`` for a runnable jar, otherwise a classpath of the copied dependencies."""
    if is_runnable_jar(jar, needs_bundled_deps=lib is not None):
        return Launch(java, ("-Duser.timezone=UTC", "-jar", str(jar)), str(jar))
    classpath = f"{lib}{os.sep}*" if lib else str(jar)
    return Launch(java, ("-Duser.timezone=UTC", "-cp", classpath, MAIN_CLASS), classpath)


def resolve(version: str = MARQUEZ_VERSION, *, fetch: bool = True) -> Launch:
    """The command that starts Marquez ``version``, fetching it with Maven on first use."""
    java = find_java()
    override = os.environ.get("LINEAGE_AUDIT_MARQUEZ_JAR")
    if override:
        jar = Path(override)
        if not jar.is_file():
            raise MarquezSetupError(f"LINEAGE_AUDIT_MARQUEZ_JAR points at {jar}, which is not a file")
        return launch_for_jar(java, jar)
    lib = cache_dir(version) / "lib"
    jar = lib / f"marquez-api-{version}.jar"
    if not jar.is_file():
        if not fetch:
            raise MarquezSetupError(f"Marquez {version} is not downloaded yet (run: lineage-audit marquez up)")
        fetch_with_maven(version, lib)
    return launch_for_jar(java, jar, lib)


def fetch_with_maven(version: str, lib: Path) -> None:
    """Copy marquez-api and its runtime dependencies into ``lib`` (atomic: all or nothing)."""
    mvn = shutil.which("mvn")
    if not mvn:
        raise MarquezSetupError(
            "mvn not found: fetching Marquez needs Maven (Debian: apt-get install maven), "
            "or set LINEAGE_AUDIT_MARQUEZ_JAR to a marquez-api jar you already have"
        )
    pom = deploy_dir() / "pom.xml"
    if not pom.is_file():
        raise MarquezSetupError(f"{pom} is missing (set LINEAGE_AUDIT_DEPLOY_DIR to a folder holding pom.xml and marquez.yml)")
    staging = lib.with_name(lib.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        mvn, "-B", "-q", "-U", "-Dstyle.color=never", "-f", str(pom), "dependency:copy-dependencies",
        f"-Dmarquez.version={version}", f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise MarquezSetupError(f"Maven did not finish fetching {MARQUEZ_ARTIFACT}:{version} in {MAVEN_TIMEOUT_S} s") from exc
    if done.returncode != 0 or not (staging / f"marquez-api-{version}.jar").is_file():
        raise MarquezSetupError(_maven_failure(version, done.stdout + done.stderr))
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)


def _maven_failure(version: str, output: str) -> str:
    """A message that says why Maven failed and what the user can do about it."""
    output = re.sub(r"\x1b\[[0-9;]*m", "", output)
    lines = [ln.replace("[ERROR]", "").split(" -> [Help")[0].strip() for ln in output.splitlines() if "[ERROR]" in ln]
    detail = next((ln for ln in lines if ln), output.strip()[-300:] or "no output")
    hint = ""
    if "Could not find artifact" in output or "Could not resolve" in output:
        hint = (
            "; the configured Maven repositories do not serve it: configure a mirror that does "
            "(~/.m2/settings.xml), or set LINEAGE_AUDIT_MARQUEZ_JAR to a marquez-api jar"
        )
    return f"could not fetch {MARQUEZ_ARTIFACT}:{version} with Maven: {detail}{hint}"
