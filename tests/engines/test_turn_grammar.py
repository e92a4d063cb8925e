"""Per-tool turn grammars on the compiled tiny random model: calls obey each tool's schema.

The random model's logits are noise, so whatever comes out under the grammar is the grammar's
doing: every constrained turn must be one call of a real tool with exactly that tool's keys and
types, or a final answer. A call with an extra or a missing key must be refused by the matcher.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentsim.chat import ChatMessage, ChatRequest, Sampling
from agentsim.engines import make_engine
from agentsim.engines.base import EngineConfig
from agentsim.engines.mlc import MLCEngine
from agentsim.protocols.styles import parse_seed_turn
from agentsim.protocols.turns import seed_grammar, turn_schema
from agentsim.tools import load_tools, tool_schemas
from agentsim.tools import turn_schema as open_turn_schema

# A BFCL-style function: its parameter object does not forbid extra keys.
OPEN_FUNCTION: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "convert",
        "parameters": {
            "type": "object",
            "properties": {
                "amount": {"type": "integer"},
                "unit": {"type": "string", "enum": ["km", "mi"]},
            },
            "required": ["amount", "unit"],
        },
    },
}


@pytest.fixture(scope="module")
def engine(tiny_ggufs: dict[str, Path], tiny_artifacts: dict[str, Path]) -> MLCEngine:
    cfg = EngineConfig(
        engine="mlc", model=str(tiny_ggufs["llama-q4_1-tied"]), threads=1, constrained=True
    )
    eng = make_engine(cfg)
    assert isinstance(eng, MLCEngine)
    return eng


def _tools() -> list[dict[str, Any]]:
    return [*tool_schemas(load_tools(["calculator", "search"])), OPEN_FUNCTION]


def _accepts(engine: MLCEngine, schema: dict[str, Any], text: str) -> bool:
    matcher = engine._grammar_factory().json_schema(schema).m
    ids = engine.tok.encode(text, add_special_tokens=False).ids
    return all(matcher.consume_token(i) for i in ids) and bool(matcher.is_accepting())


def test_extra_or_missing_key_is_refused_by_the_per_tool_grammar(engine: MLCEngine) -> None:
    schema = turn_schema(_tools())
    good = '{"tool":"convert","arguments":{"amount":3,"unit":"km"}}'
    extra = '{"tool":"convert","arguments":{"amount":3,"unit":"km","note":"x"}}'
    missing = '{"tool":"convert","arguments":{"amount":3}}'
    wrong_enum = '{"tool":"convert","arguments":{"amount":3,"unit":"m"}}'
    wrong_type = '{"tool":"calculator","arguments":{"expression":5}}'
    unknown = '{"tool":"weather","arguments":{}}'
    assert _accepts(engine, schema, good)
    assert _accepts(engine, schema, '{"final_answer":"42"}')
    for bad in (extra, missing, wrong_enum, wrong_type, unknown):
        assert not _accepts(engine, schema, bad), bad
    # the schema as written (open object) lets the invented key through: the bug this fixes
    assert _accepts(engine, open_turn_schema(_tools()), extra)


def test_seed_grammar_refuses_extra_keys_inside_the_action_tags(engine: MLCEngine) -> None:
    schema = seed_grammar(_tools())
    ok = '<think>convert</think>\n<action>{"tool":"convert","arguments":{"amount":3,"unit":"mi"}}</action>'
    assert _accepts(engine, schema, ok)
    assert _accepts(engine, schema, "<think>done</think>\n<final_answer>12</final_answer>")
    extra = '<think>x</think>\n<action>{"tool":"convert","arguments":{"amount":3,"unit":"mi","y":1}}</action>'
    assert not _accepts(engine, schema, extra)
    assert not _accepts(engine, schema, "<final_answer>12</final_answer>")  # no <think> first


@pytest.mark.parametrize("seed", range(6))
def test_random_logits_under_the_grammar_give_only_valid_calls(
    engine: MLCEngine, seed: int
) -> None:
    tools = _tools()
    by_name = {t["function"]["name"]: t["function"]["parameters"] for t in tools}
    req = ChatRequest(
        messages=[ChatMessage(role="user", content="call a tool")],
        sampling=Sampling(temperature=1.0, seed=seed, max_tokens=120),
        response_schema=turn_schema(tools),
    )
    out = engine.chat(req)
    if out.finish_reason == "length":
        pytest.skip("the random model ran out of tokens inside a string")  # a model limit
    obj = json.loads(out.text)
    if "final_answer" in obj:
        assert set(obj) == {"final_answer"} and isinstance(obj["final_answer"], str)
        return
    assert set(obj) == {"tool", "arguments"}
    params = by_name[obj["tool"]]
    assert set(obj["arguments"]) <= set(params["properties"])
    assert set(params.get("required", [])) <= set(obj["arguments"])
    if obj["tool"] == "convert":
        assert obj["arguments"]["unit"] in ("km", "mi")
        assert isinstance(obj["arguments"]["amount"], int)


def test_random_logits_under_the_seed_grammar_parse_as_seed_turns(engine: MLCEngine) -> None:
    seen = 0
    for seed in range(4):
        req = ChatRequest(
            messages=[ChatMessage(role="user", content="go")],
            sampling=Sampling(temperature=1.0, seed=seed, max_tokens=200),
            response_schema=seed_grammar(_tools(), max_thought=12, max_answer=12),
        )
        out = engine.chat(req)
        if out.finish_reason == "length":
            continue
        turn = parse_seed_turn(out.text)
        assert turn.problem is None, out.text
        assert turn.tool_calls or turn.final_answer is not None, out.text
        seen += 1
    assert seen, "every sample ran out of tokens"
