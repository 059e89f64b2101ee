"""Packaging: the sdist, the wheels (compiled and pure), the version, the installed package.

Builds run on a copy of the source tree in a temporary folder, never in the checkout, without
build isolation (the venv's setuptools and Cython, as ``make venv`` installs them): the sdist,
then each wheel from the unpacked sdist, as pip builds it. Building does not depend on which
twins run, so the build tests run in the compiled pass only. ``make test-installed`` runs the
whole suite against an installed wheel from outside the checkout; there
(``RIVETKIT_TEST_INSTALLED`` set) the build tests skip and
:func:`test_rivetkit_is_the_installed_package` checks where ``rivetkit`` comes from.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import rivetkit
from rivetkit import _version

ROOT = Path(__file__).resolve().parents[1]
VERSION = _version.__version__
INSTALLED = os.environ.get("RIVETKIT_TEST_INSTALLED", "")
PACKAGE = ROOT / "rivetkit"
IN_CHECKOUT = (ROOT / "setup.py").is_file() and PACKAGE.is_dir() and not INSTALLED
TOP_FILES = ["setup.py", "pyproject.toml", "MANIFEST.in", "README.md", "CHANGELOG.md"]
TREES = ["rivetkit", "tests", "examples", "ci"]
# The generated C of the in-place build is copied: the sdist must leave it out, and its
# build then skips cythonizing (up to date); compiled wheels build from the unpacked sdist.
COPY_IGNORE = shutil.ignore_patterns(
    "node_modules", "__pycache__", ".hypothesis", ".pytest_cache", ".rivetkit", "*.so", "*.pyd",
    "*.html", "*.pyc",
)  # fmt: skip

needs_checkout = pytest.mark.skipif(not IN_CHECKOUT, reason="needs the source checkout")
builds = pytest.mark.skipif(
    not IN_CHECKOUT or os.environ.get("RIVETKIT_PURE") == "1",
    reason="packaging builds run in the compiled pass from the checkout",
)


def pyx_stems(root: Path = ROOT) -> list[str]:
    return sorted(p.stem for p in (root / "rivetkit" / "_speedups").glob("*.pyx"))


def package_sources(root: Path) -> set[str]:
    """Every ``.py`` file of the package under ``root``, as ``rivetkit/...`` paths."""
    return {
        p.relative_to(root).as_posix()
        for p in (root / "rivetkit").rglob("*.py")
        if "__pycache__" not in p.parts
    }


def build(
    tree: Path, outdir: Path, *what: str, **env: str | None
) -> subprocess.CompletedProcess[str]:
    """``python -m build --no-isolation`` on ``tree``; ``env`` sets (or, with None, unsets)."""
    environ = {k: v for k, v in os.environ.items() if k not in ("RIVETKIT_PURE", "PYTHONPATH")}
    environ.pop("RIVETKIT_REQUIRE_SPEEDUPS", None)
    for key, value in env.items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    command = [sys.executable, "-m", "build", "--no-isolation", *what, "--outdir", str(outdir)]
    return subprocess.run(
        [*command, str(tree)],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )


def built(result: subprocess.CompletedProcess[str], outdir: Path, pattern: str) -> Path:
    assert result.returncode == 0, result.stdout[-4000:]
    (artifact,) = outdir.glob(pattern)
    return artifact


def unpack(sdist: Path, into: Path) -> Path:
    with tarfile.open(sdist) as archive:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12
            archive.extractall(into, filter="data")
        else:  # pragma: no cover
            archive.extractall(into)
    (tree,) = into.iterdir()
    return tree


def wheel_files(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def dist_info(files: dict[str, bytes], name: str) -> str:
    return files[f"rivetkit-{VERSION}.dist-info/{name}"].decode()


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the source tree, plus build leftovers the sdist must leave out."""
    tree = tmp_path_factory.mktemp("source") / "rivetkit-src"
    tree.mkdir()
    for name in TOP_FILES:
        shutil.copy2(ROOT / name, tree / name)
    for name in TREES:
        shutil.copytree(ROOT / name, tree / name, ignore=COPY_IGNORE)
    leftovers = [
        "tests/interop/node_modules/rivetkit/index.js",
        "rivetkit/__pycache__/cli.cpython-311.pyc",
        "rivetkit/_speedups/_leftover.cpython-311-x86_64-linux-gnu.so",
        "rivetkit/_speedups/_leftover.c",
        "rivetkit/_speedups/_leftover.html",
    ]
    for name in leftovers:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text("leftover")
    return tree


@pytest.fixture(scope="module")
def sdist(source_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("sdist")
    return built(build(source_tree, outdir, "--sdist"), outdir, "*.tar.gz")


@pytest.fixture(scope="module")
def pure_wheel(sdist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = unpack(sdist, tmp_path_factory.mktemp("unpacked-pure"))
    outdir = tmp_path_factory.mktemp("pure-wheel")
    return built(build(tree, outdir, "--wheel", RIVETKIT_PURE="1"), outdir, "*.whl")


def test_version_is_one_value() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?(?:\.dev\d+)?", VERSION)
    assert rivetkit.__version__ == VERSION
    assert metadata.version("rivetkit") == VERSION
    out = subprocess.run(
        [sys.executable, "-m", "rivetkit", "--version"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    assert out.startswith(f"rivetkit {VERSION} ("), out


@needs_checkout
def test_version_source_and_changelog() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'version = { attr = "rivetkit._version.__version__" }' in pyproject
    assert '\nversion = "' not in pyproject
    # The version string is written in _version.py only.
    holders = [
        p.relative_to(ROOT).as_posix()
        for p in PACKAGE.rglob("*.py")
        if f'"{VERSION}"' in p.read_text(encoding="utf-8")
    ]
    assert holders == ["rivetkit/_version.py"]
    releases = re.findall(r"^## \[([^\]]+)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert [r for r in releases if r != "Unreleased"][:1] == [VERSION], releases


@builds
def test_sdist_contents(sdist: Path, source_tree: Path) -> None:
    assert sdist.name == f"rivetkit-{VERSION}.tar.gz"
    prefix = f"rivetkit-{VERSION}/"
    with tarfile.open(sdist) as archive:
        names = {m.name.removeprefix(prefix) for m in archive.getmembers() if m.isfile()}
        pkg_info = archive.extractfile(prefix + "PKG-INFO")
        assert pkg_info is not None
        assert f"\nVersion: {VERSION}\n" in pkg_info.read().decode()
    assert pyx_stems(source_tree), "no .pyx sources found"
    for stem in pyx_stems(source_tree):
        assert f"rivetkit/_speedups/{stem}.pyx" in names
    assert "rivetkit/py.typed" in names
    assert package_sources(source_tree) <= names
    expected = [*TOP_FILES, "tests/conftest.py", "examples/app.py", "ci/run_tests.py"]
    assert set(expected) <= names
    assert "tests/interop/package-lock.json" in names
    unwanted = [
        n for n in names
        if "node_modules/" in n or "__pycache__/" in n or n.endswith((".so", ".pyd", ".pyc"))
        or (n.endswith((".c", ".html")) and n.startswith("rivetkit/"))
    ]  # fmt: skip
    assert unwanted == []


@builds
def test_pure_wheel(pure_wheel: Path, source_tree: Path) -> None:
    assert pure_wheel.name == f"rivetkit-{VERSION}-py3-none-any.whl"
    files = wheel_files(pure_wheel)
    wheel = dist_info(files, "WHEEL")
    assert "Root-Is-Purelib: true" in wheel
    assert "Tag: py3-none-any" in wheel
    assert f"\nVersion: {VERSION}\n" in dist_info(files, "METADATA")
    assert "rivetkit = rivetkit.cli:main" in dist_info(files, "entry_points.txt")
    assert dist_info(files, "top_level.txt").split() == ["rivetkit"]
    assert "rivetkit/py.typed" in files
    assert {n for n in files if n.endswith(".py")} == package_sources(source_tree)
    assert [n for n in files if n.endswith((".so", ".pyd", ".c"))] == []


@builds
@pytest.mark.slow
def test_compiled_wheel(sdist: Path, source_tree: Path, tmp_path: Path) -> None:
    tree = unpack(sdist, tmp_path / "unpacked")
    outdir = tmp_path / "wheel"
    wheel = built(build(tree, outdir, "--wheel", RIVETKIT_REQUIRE_SPEEDUPS="1"), outdir, "*.whl")
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert wheel.name.startswith(f"rivetkit-{VERSION}-{tag}-{tag}-"), wheel.name
    files = wheel_files(wheel)
    assert "Root-Is-Purelib: false" in dist_info(files, "WHEEL")
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    extensions = sorted(n for n in files if n.endswith((".so", ".pyd")))
    assert extensions == [f"rivetkit/_speedups/{stem}{suffix}" for stem in pyx_stems(source_tree)]
    assert {n for n in files if n.endswith(".py")} == package_sources(source_tree)
    assert "rivetkit/py.typed" in files


@builds
@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="CC=/bin/false is a unix check")
def test_sdist_builds_without_a_compiler(sdist: Path, source_tree: Path, tmp_path: Path) -> None:
    tree = unpack(sdist, tmp_path / "unpacked")
    # Without a working compiler: a warning and the pure package ...
    outdir = tmp_path / "fallback"
    result = build(tree, outdir, "--wheel", CC="/bin/false")
    wheel = built(result, outdir, "*.whl")
    assert "rivetkit's Cython speedups were not built" in result.stdout
    files = wheel_files(wheel)
    assert [n for n in files if n.endswith((".so", ".pyd"))] == []
    assert {n for n in files if n.endswith(".py")} == package_sources(source_tree)
    # ... unless the speedups are required.
    outdir = tmp_path / "required"
    result = build(tree, outdir, "--wheel", CC="/bin/false", RIVETKIT_REQUIRE_SPEEDUPS="1")
    assert result.returncode != 0
    assert "RIVETKIT_REQUIRE_SPEEDUPS=1 but the speedups failed" in result.stdout
    assert list(outdir.glob("*.whl")) == []


@pytest.mark.skipif(not INSTALLED, reason="only under make test-installed")
def test_rivetkit_is_the_installed_package() -> None:
    location = Path(rivetkit.__file__).resolve().parent
    site = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
    assert location.parent in site, (location, site)
    assert not location.is_relative_to(ROOT)
    binaries = list((location / "_speedups").glob("*" + sysconfig.get_config_var("EXT_SUFFIX")))
    if INSTALLED == "pure":
        assert binaries == []
        assert rivetkit.SPEEDUPS is False
    else:
        assert sorted(p.name.split(".")[0] for p in binaries) == pyx_stems(location.parent)
        assert rivetkit.SPEEDUPS is (os.environ.get("RIVETKIT_PURE") != "1")
