"""The golden vectors ship in the repository; a missing file fails; ``shared/vectors`` adds to them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import vectors_dir as vd

FILES = ("actor-persist.json", "client-protocol.json", "envoy-protocol-v8.json")


def _write(folder: Path, name: str, cases: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    document = {"format": vd.FORMAT, "source": "test", "cases": cases}
    (folder / name).write_text(json.dumps(document), encoding="utf-8")


def test_the_repository_holds_every_vector_file() -> None:
    assert Path(__file__).resolve().parent / "vectors" == vd.IN_REPO
    assert (vd.IN_REPO / "README.md").is_file()
    for name in FILES:
        document = json.loads((vd.IN_REPO / name).read_text(encoding="utf-8"))
        assert document["format"] == vd.FORMAT
        assert document["cases"], name


def test_default_is_the_in_repo_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RIVETKIT_VECTORS_DIR", raising=False)
    monkeypatch.delenv("RIVETKIT_VECTORS", raising=False)
    assert vd.vectors_dir() == vd.IN_REPO
    assert vd.vector_dirs()[0] == vd.IN_REPO


def test_a_missing_file_fails_instead_of_skipping(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RIVETKIT_VECTORS_DIR", str(tmp_path))
    assert vd.vectors_dir() == tmp_path
    with pytest.raises(FileNotFoundError, match="tests/vectors"):
        vd.load_cases("actor-persist.json")


def test_a_file_in_another_format_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"format": "other", "cases": []}', encoding="utf-8")
    monkeypatch.setenv("RIVETKIT_VECTORS_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="not a rivetkit-vectors/1 file"):
        vd.load_cases("x.json")


def test_shared_cases_are_added_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    main, shared = tmp_path / "main", tmp_path / "shared"
    one = {"name": "one", "hex": "00"}
    two = {"name": "two", "hex": "01"}
    _write(main, "v.json", [one, two])
    monkeypatch.setenv("RIVETKIT_VECTORS_DIR", str(main))
    monkeypatch.setattr(vd, "shared_vectors_dir", lambda: shared)

    # No shared file: the main cases alone.
    shared.mkdir()
    assert vd.vector_dirs() == [main, shared]
    assert vd.load_cases("v.json") == [one, two]

    # An identical shared file adds nothing.
    _write(shared, "v.json", [one, two])
    assert vd.load_cases("v.json") == [one, two]

    # A shared file that changed a case and added one: both run, under a shared: name.
    changed = {"name": "two", "hex": "02"}
    three = {"name": "three", "hex": "03"}
    _write(shared, "v.json", [one, changed, three])
    assert vd.load_cases("v.json") == [
        one,
        two,
        {"name": "shared:two", "hex": "02"},
        {"name": "shared:three", "hex": "03"},
    ]


def test_shared_folder_that_is_the_main_one_counts_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RIVETKIT_VECTORS_DIR", str(tmp_path))
    monkeypatch.setattr(vd, "shared_vectors_dir", lambda: tmp_path)
    assert vd.vector_dirs() == [tmp_path]


def test_shared_sibling_is_found_only_when_present() -> None:
    sibling = Path(vd.__file__).resolve().parents[2] / "shared" / "vectors"
    assert vd.shared_vectors_dir() == (sibling if sibling.is_dir() else None)
