"""Engine benchmark: one run, threads 1 and 2, ``mlc`` and (if installed) llama.cpp.

Prints prefill tok/s at 100 and 1000 prompt tokens, decode tok/s over 128 tokens (greedy,
after a 100-token prompt), time to first token of a short chat, cold build time, warm start
time and peak RSS. Each (engine, threads) runs in a fresh process so start time and RSS are
its own. Also prints how llama.cpp was built (its version and the CPU features compiled
into ggml: a build without native flags is not a fair baseline), this machine's memory
read bandwidth per thread count, and decode as a share of that limit (weight bytes read
per token / bandwidth). Usage: ``python bench/engine.py [--model NAME_OR_GGUF] [--threads 1,2]``.
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
if os.environ.get("BENCH_NO_EXTRA_BUFTS"):
    # llama.cpp's AMX / repacked weight buffers off (they crash on some machines)
    import llama_cpp
    import llama_cpp.llama
    _default = llama_cpp.llama_model_default_params
    def _params():
        p = _default(); p.use_extra_bufts = False; return p
    llama_cpp.llama_model_default_params = _params
    llama_cpp.llama.llama_cpp.llama_model_default_params = _params
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


BIGGER_IS_BETTER = ("prefill100", "prefill1000", "decode")
#: set when llama.cpp's default extra buffer types crashed here and were turned off.
NOTES: list[str] = []


def run_child(engine: str, model: str, threads: int, decode_n: int) -> dict[str, float]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), AGENTSIM_THREADS=str(threads))
    if engine == "llamacpp" and NOTES:
        env["BENCH_NO_EXTRA_BUFTS"] = "1"
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
    if engine == "llamacpp" and proc.returncode == -11 and not NOTES:
        NOTES.append(
            "llama.cpp crashed (SIGSEGV) with its default extra weight buffers (AMX/repack) "
            "on this machine; its runs use use_extra_bufts=False (plain AVX-512/VNNI kernels)"
        )
        return run_child(engine, model, threads, decode_n)
    raise RuntimeError(
        f"{engine} benchmark failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
    )


BANDWIDTH_CHILD = r"""
import sys, time
import numpy as np, tvm
from tvm import te
from tvm.s_tir import Schedule
from agentsim.engines.mlc.compile import make_target
threads, n = int(sys.argv[1]), 1 << 27  # 512 MiB of float32: far beyond any cache
parts, vec = 64, 64
x = te.placeholder((parts, n // parts // vec, vec), "float32", name="x")
r = te.reduce_axis((0, n // parts // vec), name="r")
y = te.compute((parts, vec), lambda p, v: te.sum(x[p, r, v], axis=r), name="y")
sch = Schedule(te.create_prim_func([x, y]))
p, v, rr = sch.get_loops(sch.get_sblock("y"))
sch.reorder(p, rr, v)
sch.parallel(p)
sch.vectorize(v)
lib = tvm.compile(sch.mod, target=make_target("llvm", None, threads))
xs = tvm.runtime.tensor(np.ones((parts, n // parts // vec, vec), np.float32))
ys = tvm.runtime.tensor(np.zeros((parts, vec), np.float32))
best = 1e9
for _ in range(8):
    t = time.perf_counter(); lib(xs, ys); best = min(best, time.perf_counter() - t)
print("RESULT", n * 4 / best / 1e9)
"""


def read_bandwidth_gbs(threads: int) -> float:
    """Memory read bandwidth (GB/s) of a vectorised TVM sum over 512 MiB, best of 8."""
    env = dict(os.environ, TVM_NUM_THREADS=str(threads), TVM_BIND_THREADS="0")
    env.pop("TVM_USE_RUNTIME_LIB", None)
    proc = subprocess.run(
        [sys.executable, "-c", BANDWIDTH_CHILD, str(threads)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return float(line.split()[1])
    raise RuntimeError(f"bandwidth probe failed:\n{proc.stderr[-2000:]}")


def weight_bytes_per_token(model: str) -> dict[str, float]:
    """Bytes of weights one decode step reads: every matrix, plus the embedding only when it
    is also the LM head (an untied embedding reads one row). ``mlc``: the artifact's stored
    tensors; ``llamacpp``: the GGUF's tensors."""
    import gguf
    import numpy as np

    from agentsim.engines.mlc import ensure_artifact, model_path

    path = model_path(model)
    reader = gguf.GGUFReader(str(path))
    names = {t.name for t in reader.tensors}
    tied = "output.weight" not in names
    gg = sum(int(t.n_bytes) for t in reader.tensors if tied or t.name != "token_embd.weight")
    meta = json.loads((ensure_artifact(path) / "meta.json").read_text())
    ours = 0
    for ent in meta["weights"]:
        if not tied and ent["name"].startswith("embed."):
            continue
        count = 1
        for dim in ent["shape"]:
            count *= int(dim)
        ours += count * np.dtype(ent["dtype"]).itemsize
    return {"mlc": float(ours), "llamacpp": float(gg)}


def llama_cpp_build() -> str:
    """llama-cpp-python's version, wheel builder and the CPU features compiled into ggml."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode().strip()
    from importlib import metadata

    wheel = metadata.distribution("llama-cpp-python").read_text("WHEEL") or ""
    gens = [ln.split(":", 1)[1].strip() for ln in wheel.splitlines() if ln.startswith("Generator")]
    gen = gens[0] if gens else "?"
    return f"llama-cpp-python {llama_cpp.__version__} (wheel built by {gen}); ggml compiled with: {info}"


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
        "--repeat",
        type=int,
        default=1,
        help="rounds over all engines; the best figure of each is kept (a busy machine)",
    )
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
    thread_counts = [int(x) for x in a.threads.split(",")]
    bandwidth = {t: 0.0 for t in thread_counts}
    per_token = weight_bytes_per_token(a.model)
    for _ in range(a.repeat):  # rounds interleave the engines; each keeps its best figures
        for threads in thread_counts:
            bandwidth[threads] = max(bandwidth[threads], read_bandwidth_gbs(threads))
            for eng in engines:
                r = run_child(eng, a.model, threads, a.decode_tokens)
                old = rows.get((eng, threads))
                if old is not None:
                    r = {
                        k: max(v, old[k]) if k in BIGGER_IS_BETTER else min(v, old[k])
                        for k, v in r.items()
                    }
                rows[(eng, threads)] = r
    for (eng, threads), r in rows.items():
        r["bw_share"] = r["decode"] * per_token[eng] / (bandwidth[threads] * 1e9)
    cols = [
        ("prefill100", "prefill 100 tok/s", "{:.0f}"),
        ("prefill1000", "prefill 1000 tok/s", "{:.0f}"),
        ("decode", f"decode {a.decode_tokens} tok/s", "{:.1f}"),
        ("ttft_s", "TTFT s", "{:.3f}"),
        ("start_s", "warm start s", "{:.2f}"),
        ("rss_mb", "peak RSS MB", "{:.0f}"),
        ("bw_share", "decode / bandwidth limit", "{:.0%}"),
    ]
    head = ["engine", "threads", *[c[1] for c in cols]]
    print(f"model {a.model}; mlc cold build {build:.1f} s; best of {a.repeat} round(s)")
    if "llamacpp" in engines:
        print(f"baseline: {llama_cpp_build()}")
    for note in NOTES:
        print(f"note: {note}")
    bw = ", ".join(f"{t} thread(s) {g:.1f} GB/s" for t, g in bandwidth.items())
    print(f"memory read bandwidth: {bw}")
    print(
        "weight bytes per decode token: "
        + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in per_token.items() if k in engines)
    )
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
