"""``agentsim models list`` and ``models check``: what runs, and one line for what does not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tiny_gguf import TinySpec, write_tiny_gguf

from agentsim.engines.mlc.config import ARCHITECTURES, SUPPORTED_QUANTS


def _agentsim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentsim", "models", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_list_shows_models_architectures_and_quant_types() -> None:
    p = _agentsim("list")
    assert p.returncode == 0, p.stderr
    assert "smollm2-135m-instruct" in p.stdout and "gemma3-270m" in p.stdout
    assert "license: Gemma Terms of Use" in p.stdout
    for arch in ARCHITECTURES:
        assert f"\n  {arch} " in p.stdout
    assert f"supported quantization types: {', '.join(SUPPORTED_QUANTS)}" in p.stdout


def test_check_accepts_a_supported_file(tmp_path: Path) -> None:
    path = write_tiny_gguf(
        tmp_path / "g3.gguf",
        TinySpec(arch="gemma3", layers=6, sliding_window=16, tokenizer="llama", vocab=400),
    )
    p = _agentsim("check", str(path))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("g3.gguf: gemma3, 6 layers, hidden 128")
    assert "sliding window 16" in p.stdout and p.stdout.rstrip().endswith(
        "supported by the mlc engine"
    )


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        (
            TinySpec(arch="falcon", layers=1),
            r"\(falcon; tensors .*\) cannot run: GGUF architecture 'falcon'",
        ),
        (
            TinySpec(layers=1, hidden=256, ffn=256, overrides={"blk.0.ffn_down.weight": "IQ2_XXS"}),
            r"\(llama; tensors .*IQ2_XXS 1.*\) cannot run: tensor blk.0.ffn_down.weight .* has quant "
            r"type IQ2_XXS; the mlc engine supports F32, F16",
        ),
        (
            TinySpec(meta={"rope.scaling.type": "dynamic"}),
            r"cannot run: .* uses RoPE scaling 'dynamic'; the mlc engine supports none, linear, yarn",
        ),
        (
            TinySpec(meta={"expert_count": 8}),
            r"cannot run: .* is a mixture-of-experts llama model \(8 experts\)",
        ),
    ],
)
def test_check_names_what_is_unsupported_in_one_line(
    spec: TinySpec, says: str, tmp_path: Path
) -> None:
    import re

    path = write_tiny_gguf(tmp_path / "bad.gguf", spec)
    p = _agentsim("check", str(path))
    assert p.returncode == 2
    assert p.stdout == "" and p.stderr.count("\n") == 1, p.stderr
    assert re.search(says, p.stderr), p.stderr


def test_check_of_a_file_that_is_not_gguf_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "notes.gguf"
    bad.write_text("not a model")
    p = _agentsim("check", str(bad))
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    assert "cannot read GGUF file" in p.stderr
