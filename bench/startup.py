"""Start-up benchmark: how long a fresh process takes to have an engine of a cached model ready,
where that time goes, and the process's peak RSS — mlc against llama.cpp, in one run.

Each sample is a fresh process (medians of ``--runs``). "warm start" is what ``bench/engine.py``
has always reported: from the first line of the script (interpreter already up) to the engine
object returned, the artifact already built. The phases: imports (``agentsim.chat`` and
``agentsim.engines``), then the engine's own ``load_phases`` (mlc: artifact lookup, TVM runtime
import, module + weights + VM + KV cache, tokenizer + chat template), then the first call (a
1-token chat). CPU columns are user+sys of the process: on a busy machine they say more than
the wall clock. Peak RSS is read after a 1000-token prefill and 64 decode steps.

``--python OTHER/python --src OTHER_CHECKOUT`` adds rows for another checkout (e.g. ``main``
before a change), measured in the same run.

    python bench/startup.py [--runs 7] [--threads 1] [--python /work/main/.venv/bin/python --src /work/main]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

CHILD = r"""
import json, os, resource, sys, time
w0, c0 = time.perf_counter(), time.process_time()
engine, model, threads, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if os.environ.get("BENCH_NO_EXTRA_BUFTS"):
    # llama.cpp's AMX / repacked weight buffers off (they crash on some machines)
    import llama_cpp, llama_cpp.llama
    _default = llama_cpp.llama_model_default_params
    def _params():
        p = _default(); p.use_extra_bufts = False; return p
    llama_cpp.llama_model_default_params = _params
    llama_cpp.llama.llama_cpp.llama_model_default_params = _params
    w0, c0 = time.perf_counter(), time.process_time()  # the workaround is not start-up
from agentsim.chat import ChatMessage, ChatRequest, Sampling
from agentsim.engines import EngineConfig, make_engine
w1, c1 = time.perf_counter(), time.process_time()
eng = make_engine(EngineConfig(engine=engine, model=model, threads=threads,
                               options={"context_length": 2048}))
w2, c2 = time.perf_counter(), time.process_time()
req = ChatRequest(messages=[ChatMessage(role="user", content="What is the capital of France?")],
                  sampling=Sampling(max_tokens=1))
eng.chat(req)
w3, c3 = time.perf_counter(), time.process_time()
res = {"start_s": w2 - w0, "start_cpu_s": c2 - c0, "imports_s": w1 - w0, "engine_s": w2 - w1,
       "imports_cpu_s": c1 - c0, "engine_cpu_s": c2 - c1,
       "first_call_s": w3 - w2, "phases": getattr(eng, "load_phases", {})}
if mode == "rss":
    import numpy as np
    ids = [int(x) for x in np.random.default_rng(0).integers(100, 30000, 1000)]
    if engine == "mlc":
        eng.rt.reset(); logits = eng.rt.prefill(ids)
        for _ in range(64): logits = eng.rt.decode(int(np.argmax(logits)))
    else:
        eng.llm.reset(); eng.llm.eval(ids)
        for _ in range(64): eng.llm.eval([int(ids[-1])])
    res["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps(res))
"""

PHASES = [
    ("artifact", "artifact"),
    ("runtime_import", "TVM import"),
    ("runtime", "module+weights+VM+KV"),
    ("tokenizer_prompt", "tokenizer+template"),
]


def child(
    python: str,
    src: str,
    engine: str,
    model: str,
    threads: int,
    mode: str,
    env_extra: dict[str, str],
) -> dict[str, Any] | None:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), AGENTSIM_THREADS=str(threads))
    env.update(env_extra)
    proc = subprocess.run(
        [python, "-c", CHILD, engine, model, str(threads), mode],
        capture_output=True,
        text=True,
        env=env,
        cwd=src,
        timeout=900,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            out: dict[str, Any] = json.loads(line[7:])
            return out
    if proc.returncode < 0:  # killed by a signal: the caller may retry with a workaround
        return None
    raise RuntimeError(f"{engine} start-up child failed:\n{proc.stderr[-2000:]}")


def measure(
    python: str, src: str, engine: str, model: str, threads: int, runs: int, notes: list[str]
) -> dict[str, Any]:
    env: dict[str, str] = {}
    probe = child(python, src, engine, model, threads, "rss", env)
    if probe is None and engine == "llamacpp":
        env["BENCH_NO_EXTRA_BUFTS"] = "1"
        notes.append(
            "llama.cpp crashed with its default extra buffer types (AMX/repack) here; "
            "measured with use_extra_bufts=False"
        )
        probe = child(python, src, engine, model, threads, "rss", env)
    if probe is None:
        raise RuntimeError(f"{engine} start-up child was killed by a signal")
    samples = [probe]
    for _ in range(runs - 1):
        s = child(python, src, engine, model, threads, "start", env)
        if s is not None:
            samples.append(s)

    def med(key: str) -> float:
        return statistics.median(float(s[key]) for s in samples)

    phases = {
        k: statistics.median(float(s["phases"].get(k, 0.0)) for s in samples) for k, _ in PHASES
    }
    return {
        "start_s": med("start_s"),
        "start_cpu_s": med("start_cpu_s"),
        "imports_s": med("imports_s"),
        "engine_s": med("engine_s"),
        "imports_cpu_s": med("imports_cpu_s"),
        "engine_cpu_s": med("engine_cpu_s"),
        "first_call_s": med("first_call_s"),
        "phases": phases if any(phases.values()) else {},
        "rss_mb": float(probe["rss_mb"]),
        "runs": len(samples),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--python", help="another interpreter whose checkout to compare (e.g. main)")
    ap.add_argument("--src", help="that checkout's root (the child's working directory)")
    ap.add_argument("--nice", type=int, default=10, help="niceness for the run (shared machines)")
    a = ap.parse_args()
    if a.nice:
        os.nice(a.nice)
    report(a.model, a.threads, a.runs, a.python, a.src)


def report(
    model: str, threads: int, runs: int, python: str | None = None, src: str | None = None
) -> None:
    """Measure and print the start-up table (``bench/engine.py`` calls this too)."""
    from agentsim.engines.mlc import ensure_artifact, model_path

    ensure_artifact(model_path(model))  # warm: nothing below builds
    here = str(Path(__file__).resolve().parents[1])
    rows: list[tuple[str, dict[str, Any]]] = []
    notes: list[str] = []
    rows.append(("mlc", measure(sys.executable, here, "mlc", model, threads, runs, notes)))
    if python and src:
        rows.append(
            ("mlc @ " + Path(src).name, measure(python, src, "mlc", model, threads, runs, notes))
        )
    if importlib.util.find_spec("llama_cpp") is not None:
        rows.append(
            ("llama.cpp", measure(sys.executable, here, "llamacpp", model, threads, runs, notes))
        )
    base = dict(rows).get("llama.cpp")
    print(f"\nstart-up: {model}, {threads} thread(s), medians of {runs} fresh processes")
    for n in notes:
        print(f"note: {n}")
    head = ["engine", "warm start s", "× llama.cpp", "CPU s", "× llama.cpp", "imports s (CPU)"]
    head += [f"{label} s" for _, label in PHASES] + ["first call s", "peak RSS MB", "× llama.cpp"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, r in rows:
        ph = [f"{r['phases'][k]:.3f}" if r["phases"] else "—" for k, _ in PHASES]
        if not r["phases"]:
            ph[0] = f"(engine {r['engine_s']:.3f}; CPU {r['engine_cpu_s']:.3f})"
        vs = f"{r['start_s'] / base['start_s']:.2f}" if base and name != "llama.cpp" else "—"
        rss_vs = f"{r['rss_mb'] / base['rss_mb']:.2f}" if base and name != "llama.cpp" else "—"
        cpu_vs = (
            f"{r['start_cpu_s'] / base['start_cpu_s']:.2f}" if base and name != "llama.cpp" else "—"
        )
        cells = [
            name,
            f"{r['start_s']:.3f}",
            vs,
            f"{r['start_cpu_s']:.3f}",
            cpu_vs,
            f"{r['imports_s']:.3f} ({r['imports_cpu_s']:.3f})",
        ]
        cells += [*ph, f"{r['first_call_s']:.3f}", f"{r['rss_mb']:.0f}", rss_vs]
        print("| " + " | ".join(cells) + " |")
    mlc = rows[0][1]
    print(
        f"targets: warm start ≤ 0.5 s: {mlc['start_s']:.3f} s (CPU {mlc['start_cpu_s']:.3f} s)"
        + (
            f"; ≤ 1.5× llama.cpp: {mlc['start_s'] / base['start_s']:.2f}×"
            f" (CPU {mlc['start_cpu_s'] / base['start_cpu_s']:.2f}×)"
            f"; peak RSS ≤ 1.1× llama.cpp: {mlc['rss_mb'] / base['rss_mb']:.2f}×"
            if base
            else ""
        )
    )


if __name__ == "__main__":
    main()
