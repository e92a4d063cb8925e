"""Prompt rendering from GGUF chat templates, tool schemas and tool-call parsing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from agentsim.chat import ChatMessage, FunctionCall, Sampling, ToolCall
from agentsim.engines.mlc.prompt import CHATML, PromptRenderer, parse_tool_calls
from agentsim.engines.mlc.sampling import Sampler

TOOLS = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]


def test_chatml_renders_generation_prompt() -> None:
    text = PromptRenderer(CHATML, "", "").render([ChatMessage(role="user", content="hi")], None)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_tools_go_into_the_system_message_when_the_template_ignores_them() -> None:
    r = PromptRenderer(CHATML, "", "")
    msgs = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="2+2"),
    ]
    text = r.render(msgs, TOOLS)
    assert text.count("<|im_start|>system") == 1
    assert "Be brief.\n\nYou can call these functions:" in text
    assert json.dumps(TOOLS[0]["function"]) in text


def test_tool_turns_render_as_tagged_text() -> None:
    r = PromptRenderer(CHATML, "", "")
    call = ToolCall(id="call_0", function=FunctionCall(name="add", arguments='{"a": 1}'))
    msgs = [
        ChatMessage(role="user", content="add"),
        ChatMessage(role="assistant", tool_calls=[call]),
        ChatMessage(role="tool", content="3", tool_call_id="call_0", name="add"),
    ]
    text = r.render(msgs, TOOLS)
    assert '<tool_call>\n{"name": "add", "arguments": {"a": 1}}\n</tool_call>' in text
    assert '<|im_start|>user\n<tool_response name="add">\n3\n</tool_response>' in text


def test_template_with_tools_support_receives_them() -> None:
    tmpl = "{% for t in tools %}[{{ t.function.name }}]{% endfor %}{{ messages[0].content }}"
    text = PromptRenderer(tmpl, "", "").render([ChatMessage(role="user", content="q")], TOOLS)
    assert text == "[add]q"


def test_parse_tool_calls_tagged_and_bare() -> None:
    text = 'Sure.\n<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>'
    content, calls = parse_tool_calls(text, tools_given=True)
    assert content == "Sure."
    assert calls is not None
    assert calls[0].function.name == "add"
    assert json.loads(calls[0].function.arguments) == {"a": 1, "b": 2}
    _, bare = parse_tool_calls('{"name": "add", "arguments": {}}', tools_given=True)
    assert bare is not None
    assert bare[0].function.arguments == "{}"
    assert parse_tool_calls('{"name": "add"}', tools_given=False) == ('{"name": "add"}', None)
    assert parse_tool_calls("<tool_call>{not json}</tool_call>", True)[1] is None


def test_sampler_greedy_topk_and_penalty() -> None:
    logits = np.array([1.0, 3.0, 2.0, -1.0], dtype=np.float32)
    assert Sampler(Sampling(), 0)(logits, []) == 1
    assert Sampler(Sampling(repetition_penalty=4.0), 0)(logits, [1]) == 2
    picks = {Sampler(Sampling(temperature=5.0, top_k=2), s)(logits, []) for s in range(40)}
    assert picks == {1, 2}
    picks = {Sampler(Sampling(temperature=1.0, top_p=0.5), s)(logits, []) for s in range(20)}
    assert picks == {1}


def test_gemma_turns_fold_the_system_message_into_the_first_user_turn() -> None:
    from agentsim.engines.mlc.prompt import GEMMA_TURNS

    r = PromptRenderer(GEMMA_TURNS, "<bos>", "<eos>")
    msgs = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content=" 2+2? "),
        ChatMessage(role="assistant", content="4"),
        ChatMessage(role="user", content="and 3+3?"),
    ]
    assert r.render(msgs, None) == (
        "<start_of_turn>user\nBe brief.\n\n2+2?<end_of_turn>\n"
        "<start_of_turn>model\n4<end_of_turn>\n"
        "<start_of_turn>user\nand 3+3?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    # tool results come back as user turns (the format has no tool role)
    tool = [ChatMessage(role="tool", content="6", name="add")]
    assert "<start_of_turn>user\n<tool_response" in r.render(tool, None)


def test_gemma_files_without_a_template_get_the_turn_format(tmp_path: Path) -> None:
    from tiny_gguf import TinySpec, write_tiny_gguf

    from agentsim.engines.mlc.convert import GGUFModel, read_tokenizer_meta
    from agentsim.engines.mlc.prompt import GEMMA_TURNS

    path = write_tiny_gguf(tmp_path / "g.gguf", TinySpec(arch="gemma3", tokenizer="llama"))
    meta = read_tokenizer_meta(GGUFModel(path))
    assert meta.chat_template == GEMMA_TURNS
    assert meta.template_source.startswith("gemma-turns (the GGUF has no chat template)")
    assert meta.add_bos and meta.bos_token == "<s>"
    llama = write_tiny_gguf(tmp_path / "l.gguf", TinySpec())
    assert read_tokenizer_meta(GGUFModel(llama)).template_source == "gguf"
