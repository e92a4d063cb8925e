"""``LlamaCppEngine``: llama-cpp-python on the same GGUF, as the baseline to compare with.

Prompts are rendered with the same GGUF chat template code as the ``mlc`` engine, so that the
two engines see identical token sequences. Needs ``pip install 'agentsim[llamacpp]'``.
"""

from __future__ import annotations

import time
from typing import Any

from agentsim.chat import ChatRequest, Completion, EngineInfo, FinishReason, Timings, Usage
from agentsim.engines.base import ContextOverflow, EngineConfig, EngineError, EngineUnavailable


class LlamaCppEngine:
    """Options: ``context_length`` (default 4096), ``n_batch`` (default 512)."""

    def __init__(self, config: EngineConfig) -> None:
        try:
            import llama_cpp
        except ImportError as e:
            raise EngineUnavailable(
                "engine 'llamacpp' needs llama-cpp-python: pip install 'agentsim[llamacpp]'"
            ) from e
        from agentsim.engines.mlc.engine import choose_threads
        from agentsim.engines.mlc.models import model_path
        from agentsim.engines.mlc.prompt import PromptRenderer

        t0 = time.perf_counter()
        opts: dict[str, Any] = dict(config.options)
        self.config = config
        self.path = model_path(config.model)
        self.threads = choose_threads(config.threads)
        self.llm = llama_cpp.Llama(
            model_path=str(self.path),
            n_ctx=int(opts.get("context_length", 4096)),
            n_batch=int(opts.get("n_batch", 512)),
            n_threads=self.threads,
            n_threads_batch=self.threads,
            seed=config.seed,
            verbose=False,
        )
        meta: dict[str, str] = dict(self.llm.metadata)
        eos = self.llm.token_eos()
        self.stop_ids = {eos}
        for marker in ("<|im_end|>", "<|eot_id|>", "<|endoftext|>"):
            ids = self.llm.tokenize(marker.encode(), add_bos=False, special=True)
            if len(ids) == 1:
                self.stop_ids.add(ids[0])
        self.renderer = PromptRenderer(
            meta.get("tokenizer.chat_template"),
            self.llm.detokenize([self.llm.token_bos()]).decode(errors="replace"),
            self.llm.detokenize([eos]).decode(errors="replace"),
        )
        self.load_s = time.perf_counter() - t0

    def chat(self, request: ChatRequest) -> Completion:
        from agentsim.engines.mlc.prompt import parse_tool_calls

        s = request.sampling
        prompt = self.renderer.render(request.messages, request.tools)
        ids = self.llm.tokenize(prompt.encode(), add_bos=False, special=True)
        ctx = self.llm.n_ctx()
        if len(ids) + 1 > ctx:
            raise ContextOverflow(len(ids), ctx)
        seed = s.seed or self.config.seed
        self.llm.set_seed(seed)
        out: list[int] = []
        finish: FinishReason = "length"
        text = ""
        t0 = time.perf_counter()
        t1 = t0
        try:
            gen = self.llm.generate(
                ids,
                temp=s.temperature,
                top_k=s.top_k,
                top_p=s.top_p,
                repeat_penalty=s.repetition_penalty,
                reset=True,
            )
            for token in gen:
                if not out:
                    t1 = time.perf_counter()
                if token in self.stop_ids:
                    finish = "stop"
                    break
                out.append(int(token))
                text = self.llm.detokenize(out).decode(errors="replace")
                hits = [i for i in (text.find(x) for x in s.stop if x) if i >= 0]
                if hits:
                    text, finish = text[: min(hits)], "stop"
                    break
                if len(out) >= s.max_tokens or len(ids) + len(out) >= ctx:
                    break
        except RuntimeError as e:
            raise EngineError(f"llama.cpp failed: {e}") from e
        t2 = time.perf_counter()
        content, calls = parse_tool_calls(text, bool(request.tools))
        return Completion(
            text=content,
            finish_reason="tool_calls" if calls else finish,
            tool_calls=calls,
            usage=Usage(prompt_tokens=len(ids), completion_tokens=len(out)),
            timings=Timings(prefill_s=t1 - t0, decode_s=t2 - t1),
            token_ids=out,
            seed=seed,
        )

    def info(self) -> EngineInfo:
        return EngineInfo(
            engine="llamacpp",
            model=self.config.model,
            load_s=self.load_s,
            threads=self.threads,
            context_length=int(self.llm.n_ctx()),
            extra={"gguf": str(self.path)},
        )

    def close(self) -> None:
        self.llm.close()
