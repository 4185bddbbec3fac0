"""deploy/requirements.runtime.lock holds everything the product needs to start, and the image
can build and load what has no wheel: every runtime requirement of pyproject.toml, followed
through the installed packages' metadata (extras and environment markers included) on each
Python the image or an operator may use, is pinned; the packages this venv built from source
are the Dockerfile's --no-binary ones, with their compiler and headers in the build stage and
the shared libraries their extensions link against in the final one."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.test_image import dockerfile_instructions, stages

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RUNTIME_LOCK = DEPLOY / "requirements.runtime.lock"
# What gssapi and krb5 build against (scripts/setup.sh installs the same for the venv).
BUILD_PACKAGES = {"gcc", "libc6-dev", "libkrb5-dev"}
# In every python:*-slim image already: never needs installing.
BASE_IMAGE_PACKAGES = {"libc6"}


def environment(python: str) -> dict[str, str]:
    """PEP 508 marker values of CPython `python` on x86_64 Linux."""
    return {
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "os_name": "posix",
        "sys_platform": "linux",
        "python_version": ".".join(python.split(".")[:2]),
        "python_full_version": python,
        "implementation_version": python,
    }


def image_python() -> str:
    instructions = dockerfile_instructions(DEPLOY / "Dockerfile")
    args = dict(a.split("=", 1) for kind, a in instructions if kind == "ARG" and "=" in a)
    m = re.match(r"python:(\d+\.\d+\.\d+)-", args["PYTHON_IMAGE"])
    assert m is not None, args["PYTHON_IMAGE"]
    return m.group(1)


def locked() -> dict[str, tuple[str, Marker | None]]:
    """name -> (version, marker) of each pin in the runtime lock."""
    pins: dict[str, tuple[str, Marker | None]] = {}
    for line in RUNTIME_LOCK.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)\s*(?:;\s*(.+))?$", line)
        if m:
            marker = Marker(m.group(3)) if m.group(3) else None
            pins[canonicalize_name(m.group(1))] = (m.group(2), marker)
    return pins


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(r) for r in project["dependencies"]]


def applies(req: Requirement, env: dict[str, str], extras: set[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**env, "extra": extra}) for extra in extras | {""})


def missing_pins(env: dict[str, str]) -> list[str]:
    """Requirements reachable from pyproject.toml in env that the runtime lock does not satisfy."""
    pins = locked()
    problems: list[str] = []
    todo = [(req, "pyproject.toml") for req in runtime_requirements() if applies(req, env, set())]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req, wanted_by = todo.pop()
        name = canonicalize_name(req.name)
        if (name, frozenset(req.extras)) in seen:
            continue
        seen.add((name, frozenset(req.extras)))
        pin = pins.get(name)
        if pin is None or (pin[1] is not None and not pin[1].evaluate(env)):
            problems.append(f"{req} (wanted by {wanted_by}) is not pinned for this Python")
            continue
        if not req.specifier.contains(pin[0], prereleases=True):
            problems.append(f"{name}=={pin[0]} does not satisfy {req} (wanted by {wanted_by})")
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # not installed on this Python: its own pin was checked above
        for sub in map(Requirement, requires):
            if applies(sub, env, set(req.extras)):
                todo.append((sub, f"{name}[{','.join(sorted(req.extras))}]"))
    return problems


@pytest.mark.parametrize("python", ["3.11.7", image_python(), "3.13.1"])
def test_every_runtime_requirement_is_pinned_in_the_runtime_lock(python: str) -> None:
    assert missing_pins(environment(python)) == []


def test_the_closure_check_sees_an_extra_and_a_marker() -> None:
    """Not vacuous: pyspnego[kerberos] brings gssapi (and gssapi decorator) on Linux only."""
    pins = locked()
    linux = environment(image_python())
    assert {"gssapi", "krb5", "decorator", "uvloop"} <= set(pins)
    spnego = next(r for r in runtime_requirements() if r.name == "pyspnego")
    assert spnego.extras == {"kerberos"}
    kerberos = [Requirement(r) for r in metadata.requires("pyspnego") or []]
    gssapi = next(r for r in kerberos if r.name == "gssapi")
    assert applies(gssapi, linux, {"kerberos"}) and not applies(gssapi, linux, set())
    windows = {**linux, "sys_platform": "win32", "platform_system": "Windows"}
    assert not applies(gssapi, windows, {"kerberos"})


def built_here() -> set[str]:
    """Runtime-lock packages this venv built from source: a plain linux_* wheel tag (PyPI's
    binary wheels are manylinux or musllinux)."""
    built = set()
    for name in locked():
        try:
            wheel = metadata.distribution(name).read_text("WHEEL") or ""
        except metadata.PackageNotFoundError:
            continue
        tags = re.findall(r"^Tag: \S+-\S+-(\S+)$", wheel, flags=re.M)
        if any(tag.startswith("linux_") for tag in tags):
            built.add(name)
    return built


def apt_installs(stage: list[tuple[str, str]]) -> set[str]:
    """Debian packages an `apt-get install` in this stage's RUN lines names."""
    names: set[str] = set()
    for kind, arg in stage:
        for m in re.finditer(r"apt-get install ([^&;|]+)", arg if kind == "RUN" else ""):
            names |= {w for w in m.group(1).split() if not w.startswith("-")}
    return names


def pip_install_of_the_lock(stage: list[tuple[str, str]]) -> str:
    (line,) = [a for k, a in stage if k == "RUN" and "requirements.runtime.lock" in a]
    return line


def test_the_dockerfile_builds_from_source_exactly_what_has_no_wheel() -> None:
    build, _ = stages(dockerfile_instructions(DEPLOY / "Dockerfile"))
    install = pip_install_of_the_lock(build)
    m = re.search(r"--no-binary[= ](\S+)", install)
    assert m is not None and "--only-binary=:all:" in install, install
    no_binary = {canonicalize_name(n) for n in m.group(1).split(",")}
    assert no_binary == built_here() == {"gssapi", "krb5"}


def test_the_build_stage_has_the_compiler_and_headers_before_the_pip_install() -> None:
    build, final = stages(dockerfile_instructions(DEPLOY / "Dockerfile"))
    assert apt_installs(build) >= BUILD_PACKAGES
    first_apt = next(i for i, (k, a) in enumerate(build) if k == "RUN" and "apt-get install" in a)
    assert first_apt < build.index(("RUN", pip_install_of_the_lock(build)))
    assert not apt_installs(final) & BUILD_PACKAGES, "no compiler or headers in the image"


def linked_libraries(extension: Path) -> set[Path]:
    """The shared libraries an extension module names as NEEDED, resolved by the loader."""
    readelf, ldd = shutil.which("readelf"), shutil.which("ldd")
    assert readelf is not None and ldd is not None
    dynamic = subprocess.run(
        [readelf, "-d", str(extension)], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[(\S+)\]", dynamic))
    loaded = subprocess.run(
        [ldd, str(extension)], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    paths = dict(re.findall(r"^\s*(\S+) => (\S+) \(", loaded, flags=re.M))
    assert needed <= set(paths), f"{extension}: {needed - set(paths)} not found"
    return {Path(paths[soname]) for soname in needed}


def debian_package(path: Path) -> str:
    """The package owning a library; dpkg knows it under /lib or /usr/lib (merged /usr)."""
    dpkg = shutil.which("dpkg")
    assert dpkg is not None
    real = path.resolve()
    bare = Path("/", *real.parts[2:]) if real.parts[1] == "usr" else real
    for candidate in (path, real, bare, Path("/usr", *bare.parts[1:])):
        owner = subprocess.run(
            [dpkg, "-S", str(candidate)], capture_output=True, text=True, timeout=30, check=False
        )
        if owner.returncode == 0:
            return owner.stdout.split(":", 1)[0]
    raise AssertionError(f"no Debian package owns {path}")


def test_the_image_has_the_libraries_the_source_built_extensions_link_against() -> None:
    if not (shutil.which("readelf") and shutil.which("ldd") and shutil.which("dpkg")):
        pytest.skip("readelf, ldd and dpkg are needed to see what the extensions link against")
    _, final = stages(dockerfile_instructions(DEPLOY / "Dockerfile"))
    extensions = [
        Path(str(metadata.distribution(name).locate_file(f)))
        for name in sorted(built_here())
        for f in metadata.distribution(name).files or []
        if f.name.endswith(".so")
    ]
    assert extensions, "gssapi and krb5 are installed in this venv (requirements.lock)"
    linked = {lib for ext in extensions for lib in linked_libraries(ext)}
    packages = {debian_package(lib) for lib in linked} - BASE_IMAGE_PACKAGES
    assert {"libgssapi-krb5-2", "libkrb5-3"} <= packages
    assert packages <= apt_installs(final), packages - apt_installs(final)
