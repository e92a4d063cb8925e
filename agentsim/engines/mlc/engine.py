"""``MLCEngine``: the default engine — a GGUF model compiled with TVM, run runtime-only.

The KV cache keeps the previous request's tokens: an agent's next prompt usually extends the
last one, so only the new suffix is prefilled (the rest is rolled back with ``popn``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog

from agentsim.chat import ChatRequest, Completion, EngineInfo, FinishReason, Timings, Usage
from agentsim.engines.base import ContextOverflow, EngineConfig, EngineError
from agentsim.engines.mlc.build import artifact_dir, ensure_artifact
from agentsim.engines.mlc.config import DEFAULT_CONTEXT_CAP, ModelConfig, TokenizerMeta
from agentsim.engines.mlc.grammar import GrammarFactory
from agentsim.engines.mlc.memory import check_file_fits, check_fits, estimate
from agentsim.engines.mlc.model_files import META_FILE, TOKENIZER_FILE
from agentsim.engines.mlc.models import local_model_path, model_path
from agentsim.engines.mlc.prompt import PromptRenderer, parse_tool_calls
from agentsim.engines.mlc.runtime import Runtime, load_artifact
from agentsim.engines.mlc.sampling import Sampler
from agentsim.engines.mlc.tvm_api import tvm_api

if TYPE_CHECKING:
    from tokenizers import Tokenizer

log = structlog.get_logger("agentsim.engines.mlc")


_TOKENIZERS: dict[str, Tokenizer] = {}


def tokenizer(artifact: Path, *, share: bool = True) -> Tokenizer:
    """The artifact's tokenizer, one per process when shared (~30 MB and 0.1 s each)."""
    from tokenizers import Tokenizer

    key = str(artifact.resolve())
    tok = _TOKENIZERS.get(key) if share else None
    if tok is None:
        tok = Tokenizer.from_file(str(artifact / TOKENIZER_FILE))
        if share:
            _TOKENIZERS[key] = tok
    return tok


def choose_threads(requested: int) -> int:
    """``requested`` if > 0, else ``$AGENTSIM_THREADS``, else the cores this process may use."""
    if requested > 0:
        return requested
    env = os.environ.get("AGENTSIM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class MLCEngine:
    """Engine over a compiled artifact.

    Options (``EngineConfig.options``): ``target`` (``llvm`` | ``cuda``), ``mcpu``,
    ``prefill_chunk`` (tokens per prefill call, default 256), ``context_length`` (KV
    capacity, default the model's up to ``DEFAULT_CONTEXT_CAP``), ``reuse_prefix`` (default
    true). Before loading, weights + KV cache are checked against the available memory.
    """

    def __init__(self, config: EngineConfig) -> None:
        t0 = time.perf_counter()
        self.config = config
        opts: dict[str, Any] = dict(config.options)
        target = str(opts.get("target", "llvm"))
        if target not in ("llvm", "cuda"):
            raise EngineError(f"options.target must be 'llvm' or 'cuda', got {target!r}")
        share = bool(opts.get("share_weights", True))
        self.gguf = model_path(config.model)
        if target != "cuda":
            check_file_fits(self.gguf, config.model)
        self.artifact = ensure_artifact(self.gguf, target, opts.get("mcpu"))
        t1 = time.perf_counter()
        self.threads = choose_threads(config.threads)
        meta = json.loads((self.artifact / META_FILE).read_text())
        cfg = ModelConfig.from_json(meta["config"])
        context = int(opts.get("context_length") or min(cfg.context_length, DEFAULT_CONTEXT_CAP))
        chunk = int(opts.get("prefill_chunk", 256))
        weights = sum(_nbytes(e) for e in meta["weights"] if e["name"] in meta["param_order"])
        self.memory = estimate(cfg, weights, context, chunk)
        if target != "cuda":
            check_fits(self.memory, config.model)
        tvm_api("cuda" if target == "cuda" else "cpu")  # timed apart from the loading
        t2 = time.perf_counter()
        self.rt = Runtime(
            self.artifact,
            self.threads,
            device="cuda" if target == "cuda" else "cpu",
            prefill_chunk=chunk,
            context_length=context,
            share_weights=share,
        )
        t3 = time.perf_counter()
        self.reuse_prefix = bool(opts.get("reuse_prefix", True))
        self.tmeta = TokenizerMeta.from_json(meta["tokenizer"])
        self.target = meta["target"]
        self.tok = tokenizer(self.artifact, share=share)
        self.renderer = PromptRenderer(
            self.tmeta.chat_template, self.tmeta.bos_token, self.tmeta.eos_token
        )
        self.stop_ids = set(self.tmeta.eos_token_ids)
        self._grammar: GrammarFactory | None = None
        self.kv_ids: list[int] = []
        self.load_s = time.perf_counter() - t0
        #: where the start went (seconds): shared state loaded earlier in the process (the
        #: forkserver preloads it) shows up as ~0 here.
        self.load_phases = {
            "artifact": t1 - t0,
            "runtime_import": t2 - t1,
            "runtime": t3 - t2,
            "tokenizer_prompt": time.perf_counter() - t3,
        }
        log.info(
            "mlc_engine_ready",
            model=config.model,
            load_s=round(self.load_s, 3),
            threads=self.threads,
            shared_weights=self.rt.art.mapped,
            phases={k: round(v, 3) for k, v in self.load_phases.items()},
        )

    # -- prompt -----------------------------------------------------------------------------
    def encode_prompt(self, request: ChatRequest) -> list[int]:
        text = self.renderer.render(request.messages, request.tools)
        ids: list[int] = self.tok.encode(text, add_special_tokens=False).ids
        bos = self.tmeta.bos_token_id
        if self.tmeta.add_bos and bos is not None and (not ids or ids[0] != bos):
            ids = [bos, *ids]
        return ids

    def _prefill(self, ids: list[int]) -> np.ndarray:
        """Logits after ``ids``, reusing the cached prefix shared with the last request."""
        common = 0
        if self.reuse_prefix:
            limit = min(len(self.kv_ids), len(ids) - 1)
            while common < limit and self.kv_ids[common] == ids[common]:
                common += 1
        if common == 0:
            self.rt.reset()
        else:
            self.rt.popn(self.rt.seq_len - common)
        self.kv_ids = list(ids[:common])
        logits = self.rt.prefill(ids[common:])
        self.kv_ids = list(ids)
        return logits

    # -- generation -------------------------------------------------------------------------
    def chat(self, request: ChatRequest) -> Completion:
        s = request.sampling
        if s.max_tokens <= 0:
            raise EngineError(f"sampling.max_tokens must be > 0, got {s.max_tokens}")
        ids = self.encode_prompt(request)
        ctx = self.rt.context_length
        if len(ids) + 1 > ctx:
            raise ContextOverflow(len(ids), ctx)
        seed = s.seed or self.config.seed
        sampler = Sampler(s, seed)
        constraint = None
        if request.response_schema is not None and self.config.constrained:
            constraint = self._grammar_factory().json_schema(request.response_schema)
        t0 = time.perf_counter()
        try:
            logits = self._prefill(ids)
        except ContextOverflow:
            raise
        except Exception as e:
            self.kv_ids = []
            raise EngineError(f"prefill of {len(ids)} tokens failed: {e}") from e
        t1 = time.perf_counter()
        out: list[int] = []
        text = ""
        finish: FinishReason = "length"
        history = list(ids)
        while True:
            if constraint is not None:
                logits = constraint.mask(logits)
            token = sampler(logits, history)
            if token in self.stop_ids:
                finish = "stop"
                break
            out.append(token)
            history.append(token)
            if constraint is not None:
                constraint.consume(token)
            text = self.tok.decode(out, skip_special_tokens=True)
            hit = _find_stop(text, s.stop)
            if hit is not None:
                text, finish = text[:hit], "stop"
                break
            if constraint is not None and constraint.stopped:
                finish = "stop"
                break
            if len(out) >= s.max_tokens or self.rt.seq_len + 1 >= ctx:
                break
            try:
                logits = self.rt.decode(token)
            except Exception as e:
                self.kv_ids = []
                raise EngineError(f"decode step {len(out)} failed: {e}") from e
            self.kv_ids.append(token)
        t2 = time.perf_counter()
        content, calls = parse_tool_calls(text, bool(request.tools))
        if calls:
            finish = "tool_calls"
        return Completion(
            text=content,
            finish_reason=finish,
            tool_calls=calls,
            usage=Usage(prompt_tokens=len(ids), completion_tokens=len(out)),
            timings=Timings(prefill_s=t1 - t0, decode_s=t2 - t1),
            token_ids=out,
            seed=seed,
        )

    def _grammar_factory(self) -> GrammarFactory:
        if self._grammar is None:
            self._grammar = GrammarFactory(
                self.tok.to_str(), self.rt.cfg.vocab_size, sorted(self.stop_ids)
            )
        return self._grammar

    def info(self) -> EngineInfo:
        return EngineInfo(
            engine="mlc",
            model=self.config.model,
            load_s=self.load_s,
            threads=self.threads,
            context_length=self.rt.context_length,
            extra={
                "artifact": str(self.artifact),
                "gguf": str(self.gguf),
                "target": str(self.target.get("kind")),
                "mcpu": str(self.target.get("mcpu")),
                "model_context_length": str(self.rt.cfg.context_length),
                "chat_template": self.tmeta.template_source,
                "memory_estimate_mb": str(round(self.memory.total_bytes / 2**20)),
            },
        )

    def close(self) -> None:
        self.rt.close()
        self.kv_ids = []


def _nbytes(entry: dict[str, Any]) -> int:
    size = int(np.prod(entry["shape"], dtype=np.int64))
    return size * int(np.dtype(entry["dtype"]).itemsize)


def preload(config: EngineConfig) -> None:
    """Load what agents of ``config`` share, before the forkserver forks them: the runtime
    imports, and (when the model file and its artifact are on disk already, and the weights
    are shared) the compiled module, the memory-mapped weights and the tokenizer. Forked
    agents then find them loaded. Never downloads or builds; nothing touches a GPU."""
    tvm_api("cpu")
    import tokenizers  # noqa: F401

    opts = dict(config.options)
    target = str(opts.get("target", "llvm"))
    if not opts.get("share_weights", True) or target != "llvm":
        return
    gguf = local_model_path(config.model)
    if gguf is None:
        return
    try:
        artifact = artifact_dir(gguf, target, opts.get("mcpu"))
    except (OSError, EngineError):
        return
    if (artifact / META_FILE).exists():
        load_artifact(artifact, "cpu")
        tokenizer(artifact)


def _find_stop(text: str, stops: list[str]) -> int | None:
    hits = [i for i in (text.find(st) for st in stops if st) if i >= 0]
    return min(hits) if hits else None


__all__ = ["MLCEngine", "choose_threads", "preload"]
