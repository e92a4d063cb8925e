"""Engine benchmark: one run, threads 1 and 2, ``mlc`` and (if installed) llama.cpp.

Prints prefill tok/s at 100 and 1000 prompt tokens, decode tok/s over 128 tokens (greedy,
after a 100-token prompt), time to first token of a short chat, cold build time, warm start
time and peak RSS. Each (engine, threads) runs in a fresh process so start time and RSS are
its own. Usage: ``python bench/engine.py [--model NAME_OR_GGUF] [--threads 1,2]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

CHILD = r"""
import json, os, resource, sys, time
import numpy as np
engine, model, threads, decode_n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t0 = time.perf_counter()
from agentsim.chat import ChatMessage, ChatRequest, Sampling
from agentsim.engines import EngineConfig, make_engine
eng = make_engine(EngineConfig(engine=engine, model=model, threads=threads,
                               options={"context_length": 2048}))
start_s = time.perf_counter() - t0
req = ChatRequest(messages=[ChatMessage(role="user", content="What is the capital of France?")],
                  sampling=Sampling(max_tokens=1))
t = time.perf_counter(); eng.chat(req); ttft = time.perf_counter() - t
rng = np.random.default_rng(0)
def ids(n): return [int(x) for x in rng.integers(100, 30000, n)]
if engine == "mlc":
    rt = eng.rt
    def prefill(toks):
        rt.reset(); return rt.prefill(toks)
    def step(tok): return rt.decode(tok)
else:
    import llama_cpp
    llm = eng.llm
    def last_logits():
        ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).copy()
    def prefill(toks):
        llm.reset(); llm.eval(toks); return last_logits()
    def step(tok):
        llm.eval([tok]); return last_logits()
res = {"start_s": start_s, "ttft_s": ttft}
for n in (100, 1000):
    prefill(ids(n))  # warm-up (page faults, thread pool)
    t = time.perf_counter(); prefill(ids(n)); res[f"prefill{n}"] = n / (time.perf_counter() - t)
logits = prefill(ids(100))
t = time.perf_counter()
for _ in range(decode_n):
    logits = step(int(np.argmax(logits)))
res["decode"] = decode_n / (time.perf_counter() - t)
res["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps(res))
"""


def run_child(engine: str, model: str, threads: int, decode_n: int) -> dict[str, float]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), AGENTSIM_THREADS=str(threads))
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, engine, model, str(threads), str(decode_n)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            out: dict[str, float] = json.loads(line[7:])
            return out
    raise RuntimeError(f"{engine} benchmark failed:\n{proc.stderr[-2000:]}")


def cold_build_s(model: str) -> float:
    """Time a from-scratch build (convert + compile + export) in a child process."""
    from agentsim.engines.mlc.models import model_path

    gguf = model_path(model)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        cmd = [sys.executable, "-m", "agentsim.engines.mlc.build", str(gguf), f"{tmp}/a", "llvm"]
        subprocess.run(cmd, check=True, capture_output=True, timeout=1800)
        return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--decode-tokens", type=int, default=128)
    p.add_argument(
        "--startup-runs",
        type=int,
        default=7,
        help="fresh processes per engine for the start-up table (0: skip)",
    )
    a = p.parse_args()
    engines = ["mlc"]
    if importlib.util.find_spec("llama_cpp") is not None:
        engines.append("llamacpp")
    from agentsim.engines.mlc import ensure_artifact, model_path

    ensure_artifact(model_path(a.model))  # the warm runs below must not build
    build = cold_build_s(a.model)
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for threads in [int(x) for x in a.threads.split(",")]:
        for eng in engines:
            rows[(eng, threads)] = run_child(eng, a.model, threads, a.decode_tokens)
    cols = [
        ("prefill100", "prefill 100 tok/s", "{:.0f}"),
        ("prefill1000", "prefill 1000 tok/s", "{:.0f}"),
        ("decode", f"decode {a.decode_tokens} tok/s", "{:.1f}"),
        ("ttft_s", "TTFT s", "{:.3f}"),
        ("start_s", "warm start s", "{:.2f}"),
        ("rss_mb", "peak RSS MB", "{:.0f}"),
    ]
    head = ["engine", "threads", *[c[1] for c in cols]]
    print(f"model {a.model}; mlc cold build {build:.1f} s")
    print("ratios: tok/s columns >1 = mlc faster; TTFT/start/RSS columns <1 = mlc better")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for (eng, threads), r in rows.items():
        cells = [fmt.format(r[key]) for key, _, fmt in cols]
        print(f"| {eng} | {threads} | " + " | ".join(cells) + " |")
        base = rows.get(("llamacpp", threads))
        if eng == "mlc" and base is not None:
            ratio = [f"{r[key] / base[key]:.2f}x" for key, _, _ in cols]
            print(f"| mlc/llama.cpp | {threads} | " + " | ".join(ratio) + " |")
    if a.startup_runs:
        startup_table(a.model, int(a.threads.split(",")[0]), a.startup_runs)


def startup_table(model: str, threads: int, runs: int) -> None:
    """Warm start (medians of fresh processes, where the time goes) and peak RSS:
    ``bench/startup.py``, which also runs on its own."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import startup

    startup.report(model, threads, runs)


if __name__ == "__main__":
    main()
