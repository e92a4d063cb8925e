"""Build the artifact for (GGUF file, target) once, publish it atomically, share it.

The cache key covers the model file's sha256, the weight layout, the target (kind and the
host CPU, or an explicit ``mcpu``), the TVM version and ``ENGINE_SOURCE_VERSION``. A file
lock makes N agents that start together compile once; the others wait and load the result.
The build runs in a child process (``python -m agentsim.engines.mlc.build``) unless the
compiler is already imported, so that agents stay runtime-only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import structlog

from agentsim.engines.base import EngineUnavailable
from agentsim.engines.mlc.config import ENGINE_SOURCE_VERSION
from agentsim.engines.mlc.model_files import LIB_FILE, META_FILE, TOKENIZER_FILE, WEIGHTS_FILE
from agentsim.engines.mlc.models import cache_dir
from agentsim.engines.mlc.quants import LAYOUT_VERSION

log = structlog.get_logger("agentsim.engines.mlc")

BUILD_TIMEOUT_S = 1800


def file_sha256(path: Path) -> str:
    """sha256 of a file, memoised in the cache by (path, size, mtime): agents start fast."""
    st = path.stat()
    memo_path = cache_dir() / "file-hashes.json"
    ident = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    try:
        memo: dict[str, str] = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    if ident in memo:
        return memo[ident]
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    memo[ident] = h.hexdigest()
    tmp = memo_path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(memo))
    os.replace(tmp, memo_path)
    return memo[ident]


def host_fingerprint() -> str:
    """CPU model and feature flags: the exact LLVM ``mcpu`` is a function of these."""
    lines: list[str] = [platform.machine()]
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "flags", "Features", "CPU part")):
                    lines.append(line.strip())
                if len(lines) >= 4:
                    break
    except OSError:
        lines.append(platform.processor())
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def dist_version(name: str) -> str:
    """``importlib.metadata.version(name)``, read straight from the first ``*.dist-info`` on
    ``sys.path`` (as ``importlib.metadata`` does) without importing it: that import costs an
    agent start ~30 ms of CPU."""
    prefix = name.replace("-", "_").lower() + "-"
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for d in names:
            if d.lower().startswith(prefix) and d.endswith(".dist-info"):
                try:
                    with open(os.path.join(entry or ".", d, "METADATA"), encoding="utf-8") as f:
                        for line in f:
                            if line.startswith("Version:"):
                                return line.split(":", 1)[1].strip()
                            if not line.strip():
                                break
                except OSError:
                    pass
    from importlib import metadata

    return metadata.version(name)


def artifact_key(gguf: Path, target_kind: str, mcpu: str | None) -> dict[str, str]:
    return {
        "model_sha256": file_sha256(gguf),
        "layout": LAYOUT_VERSION,
        "target": target_kind,
        "cpu": mcpu or (host_fingerprint() if target_kind == "llvm" else ""),
        "tvm": dist_version("apache-tvm"),
        "engine": ENGINE_SOURCE_VERSION,
    }


def artifact_dir(gguf: Path, target_kind: str = "llvm", mcpu: str | None = None) -> Path:
    """Where the artifact for ``gguf`` on this target lives (built or not)."""
    key = artifact_key(gguf, target_kind, mcpu)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir() / "artifacts" / f"{gguf.stem}-{digest}"


def ensure_artifact(gguf: Path, target_kind: str = "llvm", mcpu: str | None = None) -> Path:
    """The artifact directory for ``gguf`` on this target, building it first if needed."""
    final = artifact_dir(gguf, target_kind, mcpu)
    if (final / META_FILE).exists():
        return final
    key = artifact_key(gguf, target_kind, mcpu)
    digest = final.name.rsplit("-", 1)[1]
    root = final.parent
    from filelock import FileLock  # only when building: it is slow to import

    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f".{digest}.lock"), timeout=BUILD_TIMEOUT_S):
        if (final / META_FILE).exists():
            log.info("mlc_artifact_shared", artifact=str(final))
            return final
        tmp = root / f".{final.name}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        t0 = time.perf_counter()
        try:
            if _compiler_loaded():
                build_artifact(gguf, tmp, target_kind, mcpu, key)
            else:
                _build_in_child(gguf, tmp, target_kind, mcpu)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info(
            "mlc_artifact_built", artifact=str(final), build_s=round(time.perf_counter() - t0, 1)
        )
    return final


def _compiler_loaded() -> bool:
    if "tvm" not in sys.modules:
        return False
    import tvm

    return not getattr(tvm.base, "_RUNTIME_ONLY", True)


def _build_in_child(gguf: Path, out: Path, target_kind: str, mcpu: str | None) -> None:
    cmd = [sys.executable, "-m", "agentsim.engines.mlc.build", str(gguf), str(out), target_kind]
    if mcpu:
        cmd += ["--mcpu", mcpu]
    env = {k: v for k, v in os.environ.items() if k != "TVM_USE_RUNTIME_LIB"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        tail = lines[-1] if lines else f"exit status {proc.returncode}"
        if proc.returncode == 3:  # EngineUnavailable in the child: pass its message through
            raise EngineUnavailable(tail)
        raise EngineUnavailable(f"building the mlc artifact for {gguf.name} failed: {tail}")


def build_artifact(
    gguf: Path, out: Path, target_kind: str, mcpu: str | None, key: dict[str, str] | None = None
) -> None:
    """GGUF → ``out/{model.so, weights.bin, tokenizer.json, meta.json}`` (not atomic)."""
    from agentsim.engines.mlc.compile import compile_model, host_cpu, make_target
    from agentsim.engines.mlc.convert import (
        GGUFModel,
        convert_weights,
        read_config,
        read_tokenizer_meta,
    )
    from agentsim.engines.mlc.model_files import save_weights
    from agentsim.engines.mlc.tokenizer import build_tokenizer

    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    model = GGUFModel(gguf)
    cfg = read_config(model)
    tok_meta = read_tokenizer_meta(model)
    fields = {k: model.field(k) for k in model.reader.fields if k.startswith("tokenizer.ggml.")}
    build_tokenizer(fields).save(str(out / TOKENIZER_FILE))
    weights = convert_weights(model, cfg)
    index = save_weights(out / WEIGHTS_FILE, weights)
    t1 = time.perf_counter()
    cpu = mcpu or (host_cpu() if target_kind == "llvm" else None)
    target = make_target(target_kind, cpu, os.cpu_count() or 1)
    order = compile_model(cfg, target, out / LIB_FILE)
    missing = sorted(set(order) - set(weights))
    if missing:
        raise EngineUnavailable(f"converted weights lack parameters {missing[:3]} of the model")
    meta: dict[str, Any] = {
        "config": cfg.to_json(),
        "tokenizer": tok_meta.to_json(),
        "weights": index,
        "param_order": order,
        "key": key or artifact_key(gguf, target_kind, mcpu),
        "model_file": gguf.name,
        "target": {"kind": target_kind, "mcpu": cpu},
        "convert_s": round(t1 - t0, 2),
        "compile_s": round(time.perf_counter() - t1, 2),
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=1))


def main(argv: list[str] | None = None) -> int:
    """Child-process entry: build one artifact; exit 3 with one line for unsupported models."""
    p = argparse.ArgumentParser(prog="python -m agentsim.engines.mlc.build")
    p.add_argument("gguf", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("target", choices=["llvm", "cuda"])
    p.add_argument("--mcpu")
    a = p.parse_args(argv)
    try:
        build_artifact(a.gguf, a.out, a.target, a.mcpu)
    except EngineUnavailable as e:
        print(str(e), file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
