"""``OpenAIEngine``: any OpenAI-compatible chat-completions server, over stdlib ``urllib``.

Options: ``base_url`` (or ``$OPENAI_BASE_URL``; e.g. ``http://127.0.0.1:8000/v1``),
``api_key`` or ``api_key_env`` (default ``OPENAI_API_KEY``), ``timeout_s`` (default 120).
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
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
from agentsim.engines.base import ContextOverflow, EngineConfig, EngineError, EngineUnavailable

_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
}
_CTX = re.compile(r"maximum context length is (\d+).*?(\d+) tokens", re.DOTALL)


class OpenAIEngine:
    """Sends each ``ChatRequest`` as one ``POST {base_url}/chat/completions``."""

    def __init__(self, config: EngineConfig) -> None:
        opts: dict[str, Any] = dict(config.options)
        base = opts.get("base_url") or os.environ.get("OPENAI_BASE_URL")
        if not base:
            raise EngineUnavailable(
                "engine 'openai' needs options.base_url (e.g. http://127.0.0.1:8000/v1)"
            )
        self.base_url = str(base).rstrip("/")
        self.api_key = opts.get("api_key") or os.environ.get(
            str(opts.get("api_key_env", "OPENAI_API_KEY"))
        )
        self.timeout = float(opts.get("timeout_s", 120.0))
        self.config = config

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        s = request.sampling
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": [msgspec.to_builtins(m) for m in request.messages],
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
            "seed": s.seed or self.config.seed,
        }
        if s.stop:
            body["stop"] = s.stop
        if s.top_k > 0:
            body["top_k"] = s.top_k  # vLLM, llama.cpp server and MLC accept it
        if s.repetition_penalty != 1.0:
            body["repetition_penalty"] = s.repetition_penalty
        if request.tools:
            body["tools"] = request.tools
        if request.response_schema is not None and self.config.constrained:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": request.response_schema},
            }
        return body

    def chat(self, request: ChatRequest) -> Completion:
        body = self._body(request)
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(
            f"{self.base_url}/chat/completions",
            data=json.dumps(body).encode(),
            headers=headers,
            method="POST",
        )
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                data = json.loads(resp.read())
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:500]
            m = _CTX.search(detail)
            if m or "context length" in detail or "context_length_exceeded" in detail:
                ctx, used = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
                raise ContextOverflow(used, ctx) from e
            raise EngineError(f"{self.base_url} answered HTTP {e.code}: {detail}") from e
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            raise EngineError(f"cannot reach {self.base_url}: {e}") from e
        except ValueError as e:
            raise EngineError(f"{self.base_url} sent a response that is not JSON: {e}") from e
        elapsed = time.perf_counter() - t0
        return _completion(data, elapsed, int(body["seed"]))

    def info(self) -> EngineInfo:
        return EngineInfo(
            engine="openai", model=self.config.model, extra={"base_url": self.base_url}
        )

    def close(self) -> None:
        return None


def _completion(data: dict[str, Any], elapsed: float, seed: int) -> Completion:
    try:
        choice = data["choices"][0]
        msg = choice.get("message") or {}
    except (KeyError, IndexError, TypeError) as e:
        raise EngineError(f"response has no choices[0]: {str(data)[:200]}") from e
    calls = None
    if msg.get("tool_calls"):
        calls = [
            ToolCall(
                id=str(c.get("id", f"call_{i}")),
                function=FunctionCall(
                    name=c["function"]["name"],
                    arguments=c["function"].get("arguments") or "{}",
                ),
            )
            for i, c in enumerate(msg["tool_calls"])
        ]
    usage = data.get("usage") or {}
    return Completion(
        text=msg.get("content") or "",
        finish_reason=_FINISH.get(str(choice.get("finish_reason")), "stop"),  # type: ignore[arg-type]
        tool_calls=calls,
        usage=Usage(
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
        ),
        timings=Timings(decode_s=elapsed),
        seed=seed,
    )
