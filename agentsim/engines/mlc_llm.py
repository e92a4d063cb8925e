"""``OfficialMLCEngine``: the official ``mlc_llm.MLCEngine`` when that package is installed.

Its wheels are not on PyPI (only placeholders), so this engine is for hosts where MLC-LLM was
installed from mlc.ai. ``model`` is what MLC-LLM accepts (e.g. ``HF://mlc-ai/...-MLC``);
``options.model_lib`` optionally names a compiled model library.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from agentsim.chat import (
    ChatRequest,
    Completion,
    EngineInfo,
    FunctionCall,
    Timings,
    ToolCall,
    Usage,
)
from agentsim.engines.base import EngineConfig, EngineError, EngineUnavailable


class OfficialMLCEngine:
    def __init__(self, config: EngineConfig) -> None:
        try:
            from mlc_llm import MLCEngine as _Official  # type: ignore[import-not-found, unused-ignore]
        except ImportError as e:
            raise EngineUnavailable(
                "engine 'mlc-llm' needs the official mlc_llm package (install it from "
                "https://mlc.ai/package/; PyPI has only placeholders) — or use engine 'mlc'"
            ) from e
        t0 = time.perf_counter()
        opts: dict[str, Any] = dict(config.options)
        kwargs: dict[str, Any] = {"mode": opts.get("mode", "interactive")}
        if "device" in opts:
            kwargs["device"] = opts["device"]
        if "model_lib" in opts:
            kwargs["model_lib"] = opts["model_lib"]
        try:
            self.engine = _Official(config.model, **kwargs)
        except Exception as e:
            raise EngineUnavailable(f"mlc_llm could not load {config.model!r}: {e}") from e
        self.config = config
        self.load_s = time.perf_counter() - t0

    def chat(self, request: ChatRequest) -> Completion:
        s = request.sampling
        seed = s.seed or self.config.seed
        kwargs: dict[str, Any] = {
            "messages": [msgspec.to_builtins(m) for m in request.messages],
            "model": self.config.model,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
            "seed": seed,
            "stop": s.stop or None,
            "tools": request.tools,
        }
        if request.response_schema is not None and self.config.constrained:
            kwargs["response_format"] = {"type": "json_object", "schema": request.response_schema}
        t0 = time.perf_counter()
        try:
            resp = self.engine.chat.completions.create(**kwargs)
        except Exception as e:
            raise EngineError(f"mlc_llm failed: {e}") from e
        choice = resp.choices[0]
        calls = None
        if getattr(choice.message, "tool_calls", None):
            calls = [
                ToolCall(
                    id=str(c.id),
                    function=FunctionCall(
                        name=c.function.name, arguments=str(c.function.arguments)
                    ),
                )
                for c in choice.message.tool_calls
            ]
        usage = resp.usage
        reason = str(choice.finish_reason or "stop")
        return Completion(
            text=choice.message.content or "",
            finish_reason=reason if reason in ("stop", "length", "tool_calls") else "stop",  # type: ignore[arg-type]
            tool_calls=calls,
            usage=Usage(
                prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            ),
            timings=Timings(decode_s=time.perf_counter() - t0),
            seed=seed,
        )

    def info(self) -> EngineInfo:
        return EngineInfo(engine="mlc-llm", model=self.config.model, load_s=self.load_s)

    def close(self) -> None:
        self.engine.terminate()
