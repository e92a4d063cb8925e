"""The small engines: OpenAI-compatible HTTP (against a real local server), optional packages."""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from agentsim.chat import ChatMessage, ChatRequest, Sampling
from agentsim.engines import make_engine
from agentsim.engines.base import ContextOverflow, EngineConfig, EngineError, EngineUnavailable

SEEN: list[dict[str, Any]] = []


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        SEEN.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        last = body["messages"][-1]["content"]
        if last == "too long":
            self._send(
                400,
                {
                    "error": {
                        "message": "This model's maximum context length is 2048 tokens. However, you requested 3000 tokens"
                    }
                },
            )
        elif last == "call":
            msg = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "add", "arguments": '{"a": 1}'},
                    }
                ],
            }
            self._send(200, {"choices": [{"message": msg, "finish_reason": "tool_calls"}]})
        else:
            msg = {"role": "assistant", "content": "Paris."}
            usage = {"prompt_tokens": 9, "completion_tokens": 2}
            self._send(
                200, {"choices": [{"message": msg, "finish_reason": "stop"}], "usage": usage}
            )

    def _send(self, code: int, obj: dict[str, Any]) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def server() -> Iterator[str]:
    httpd = HTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()
    t.join()


def _req(text: str) -> ChatRequest:
    return ChatRequest(
        messages=[ChatMessage(role="user", content=text)], sampling=Sampling(seed=5, stop=["\n"])
    )


def test_openai_engine_round_trip(server: str) -> None:
    SEEN.clear()
    cfg = EngineConfig(engine="openai", model="m", options={"base_url": server, "api_key": "k"})
    eng = make_engine(cfg)
    out = eng.chat(_req("capital?"))
    assert (out.text, out.finish_reason, out.usage.prompt_tokens, out.seed) == (
        "Paris.",
        "stop",
        9,
        5,
    )
    sent = SEEN[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["auth"] == "Bearer k"
    assert sent["body"]["stop"] == ["\n"]
    assert sent["body"]["model"] == "m"
    calls = eng.chat(_req("call"))
    assert calls.finish_reason == "tool_calls"
    assert calls.tool_calls is not None
    assert calls.tool_calls[0].function.name == "add"
    with pytest.raises(ContextOverflow) as info:
        eng.chat(_req("too long"))
    assert (info.value.prompt_tokens, info.value.context_length) == (3000, 2048)
    assert eng.info().extra["base_url"] == server


def test_openai_engine_unreachable_and_unconfigured() -> None:
    with pytest.raises(EngineUnavailable, match=r"needs options\.base_url"):
        make_engine(EngineConfig(engine="openai", options={}))
    eng = make_engine(
        EngineConfig(engine="openai", options={"base_url": "http://127.0.0.1:9/v1", "timeout_s": 2})
    )
    with pytest.raises(EngineError, match=r"cannot reach http://127\.0\.0\.1:9/v1"):
        eng.chat(_req("x"))


@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is not None, reason="llama-cpp-python installed"
)
def test_llamacpp_without_the_package_is_unavailable() -> None:
    with pytest.raises(EngineUnavailable, match="needs llama-cpp-python"):
        make_engine(EngineConfig(engine="llamacpp"))


@pytest.mark.skipif(importlib.util.find_spec("mlc_llm") is not None, reason="mlc_llm installed")
def test_official_mlc_llm_without_the_package_is_unavailable() -> None:
    with pytest.raises(EngineUnavailable, match="needs the official mlc_llm package"):
        make_engine(EngineConfig(engine="mlc-llm"))


LLAMACPP = """
import sys
from agentsim.chat import ChatMessage, ChatRequest, Sampling
from agentsim.engines import EngineConfig, make_engine
eng = make_engine(EngineConfig(engine="llamacpp", model=sys.argv[1], threads=1))
req = ChatRequest(messages=[ChatMessage(role="user", content="hi")], sampling=Sampling(max_tokens=4))
out = eng.chat(req)
print("OK", out.usage.prompt_tokens, out.usage.completion_tokens, out.finish_reason)
"""


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python absent")
def test_llamacpp_engine_runs_a_tiny_gguf(tiny_ggufs: dict[str, Any]) -> None:
    import subprocess
    import sys

    # a child process: a broken llama.cpp build crashes hard instead of raising
    proc = subprocess.run(
        [sys.executable, "-c", LLAMACPP, str(tiny_ggufs["llama-q4_1-tied"])],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = proc.stdout.strip().splitlines()[-1].split()
    assert line[0] == "OK" and int(line[1]) > 5
