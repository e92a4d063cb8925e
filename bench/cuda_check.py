"""CUDA check for a GPU host: build the ``cuda`` target, check logits, print tok/s.

For SmolLM2-135M (llama, Q4_1) and Gemma 3 270M (gemma3, Q4_K_M): pull the model, build the
``cuda`` artifact, compare prefill and decode logits with the numpy reference of the same
GGUF weights (Gemma's prompt crosses its 512-token sliding window), and time prefill of 100
and 1000 tokens and 128 greedy decode steps. One table, exit 0 when every check passed.

Usage: ``python bench/cuda_check.py [--models a,b] [--compile-only]``. Without a GPU it
prints one line and exits 3; ``--compile-only`` then still builds the ``cuda`` artifacts
(TVM compiles CUDA code without a device when ``nvcc`` is installed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

TOL = 2e-2  # GPU float32 reductions run in another order than numpy's
MODELS = ("smollm2-135m-instruct", "gemma3-270m")
NO_GPU = 3


def _prompt(tok: Any, bos: int | None, n: int) -> list[int]:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text() * 4
    ids = tok.encode(text, add_special_tokens=False).ids
    return ([bos] if bos is not None else []) + ids[: n - (bos is not None)]


def check(name: str) -> dict[str, Any]:
    """Build, compare with the reference, time; returns one table row."""
    import json

    from tokenizers import Tokenizer

    import agentsim.engines.mlc.compile  # noqa: F401  (build in this process)
    from agentsim.engines.mlc.build import ensure_artifact
    from agentsim.engines.mlc.gguf_file import GGUFModel
    from agentsim.engines.mlc.models import model_path
    from agentsim.engines.mlc.reference import ReferenceModel
    from agentsim.engines.mlc.runtime import Runtime

    gguf = model_path(name)
    t0 = time.perf_counter()
    art = ensure_artifact(gguf, "cuda")
    build_s = time.perf_counter() - t0
    meta = json.loads((Path(art) / "meta.json").read_text())
    tok = Tokenizer.from_file(str(Path(art) / "tokenizer.json"))
    bos = meta["tokenizer"]["bos_token_id"] if meta["tokenizer"]["add_bos"] else None
    ids = _prompt(tok, bos, 600)
    rt = Runtime(Path(art), 1, device="cuda", context_length=2048, prefill_chunk=256)
    got = [rt.prefill(ids)]
    out: list[int] = []
    for _ in range(8):
        out.append(int(np.argmax(got[-1])))
        got.append(rt.decode(out[-1]))
    want = ReferenceModel(GGUFModel(gguf), context=2048).logits(ids + out)[len(ids) - 1 :]
    diff = float(np.abs(np.stack(got) - want).max())
    row: dict[str, Any] = {"model": name, "build_s": build_s, "max_diff": diff}
    row["greedy_agrees"] = [int(x) for x in want[:-1].argmax(axis=1)] == out
    for n in (100, 1000):
        rt.reset()
        rt.prefill(ids[:n] if n <= len(ids) else (ids * 2)[:n])  # warm-up
        rt.reset()
        t = time.perf_counter()
        logits = rt.prefill((ids * 2)[:n])
        row[f"prefill{n}"] = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(128):
        logits = rt.decode(int(np.argmax(logits)))
    row["decode"] = 128 / (time.perf_counter() - t)
    row["ok"] = diff <= TOL and row["greedy_agrees"]
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python bench/cuda_check.py")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--compile-only", action="store_true")
    a = p.parse_args(argv)
    names = [m for m in a.models.split(",") if m]
    import tvm

    if not tvm.cuda(0).exist:
        if not a.compile_only:
            print(
                "cuda_check: no CUDA GPU on this host (tvm.cuda(0) does not exist); run it on a "
                "GPU host, or pass --compile-only to build the cuda artifacts here"
            )
            return NO_GPU
        if shutil.which("nvcc") is None:
            print("cuda_check: --compile-only needs nvcc (the CUDA compiler) on PATH")
            return NO_GPU
        import agentsim.engines.mlc.compile  # noqa: F401
        from agentsim.engines.mlc.build import ensure_artifact
        from agentsim.engines.mlc.models import model_path

        for name in names:
            t = time.perf_counter()
            art = ensure_artifact(model_path(name), "cuda")
            size = os.path.getsize(os.path.join(art, "model.so")) / 2**20
            print(
                f"{name}: cuda artifact built in {time.perf_counter() - t:.0f} s, model.so "
                f"{size:.1f} MiB ({art}); no GPU here to run it"
            )
        return 0
    rows = [check(n) for n in names]
    print(f"GPU: {tvm.cuda(0).device_name} (compute {tvm.cuda(0).compute_version})")
    print(
        "| model | build s | max |logit diff| | greedy = reference | prefill@100 tok/s "
        "| prefill@1000 tok/s | decode tok/s | ok |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['build_s']:.0f} | {r['max_diff']:.1e} | {r['greedy_agrees']} "
            f"| {r['prefill100']:.0f} | {r['prefill1000']:.0f} | {r['decode']:.0f} | {r['ok']} |"
        )
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
