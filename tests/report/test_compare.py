"""Sweeps run every configuration into one folder and ``compare`` tabulates them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SWEEP = """
[run]
name = "sw"
[tasks]
suite = "gsm8k"
limit = 4
[agents.a]
engine = "scripted"
options = { table = "gsm8k", error_rate = 0.5 }
[agents.b]
engine = "scripted"
options = { table = "gsm8k", error_rate = 0.0 }
[agents.c]
engine = "scripted"
options = { table = "gsm8k", error_rate = 0.0 }
[[sweep.configs]]
name = "solo"
protocol = { kind = "solo", agents = ["a"] }
[[sweep.configs]]
name = "vote"
protocol = { kind = "vote", agents = ["a", "b", "c"] }
[sweep.axes]
"run.seed" = [1, 2]
"""


def test_sweep_runs_the_cross_product_and_compares_against_solo(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(SWEEP)
    p = subprocess.run(
        [sys.executable, "-m", "agentsim", str(f), "--out", str(tmp_path / "runs"), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    parent = next((tmp_path / "runs").iterdir())
    runs = sorted(d.name.rsplit("-", 2)[0] for d in parent.iterdir() if d.is_dir())
    assert runs == ["solo-seed_1", "solo-seed_2", "vote-seed_1", "vote-seed_2"]
    rows = json.loads((parent / "comparison.json").read_text())
    assert len(rows) == 4
    for r in rows:
        if r["protocol"] == "solo":
            assert r["relative_gain"] == 0.0
        else:  # two perfect voters outvote the bad one: vote beats solo on the same seed
            assert r["accuracy"] == 1.0
            solo = next(x for x in rows if x["protocol"] == "solo" and x["seed"] == r["seed"])
            assert solo["accuracy"] < 1.0
            assert r["relative_gain"] == round((1.0 - solo["accuracy"]) / solo["accuracy"], 4)
        assert r["energy_j_per_token"] is None or r["energy_j_per_token"] > 0
    assert (parent / "quality_vs_cost.png").stat().st_size > 1000
    page = (parent / "comparison.html").read_text()
    assert page.count("report.html") == 4 and "data:image/png;base64," in page
    # compare also works on chosen run folders
    one, two = sorted(d for d in parent.iterdir() if d.is_dir())[:2]
    q = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentsim",
            "compare",
            str(one),
            str(two),
            "--out",
            str(tmp_path / "cmp"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert q.returncode == 0, q.stderr
    assert "| solo |" in q.stdout


def test_compare_rejects_a_folder_without_runs(tmp_path: Path) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "agentsim", "compare", str(tmp_path)], capture_output=True, text=True
    )
    assert p.returncode == 2
    assert p.stderr.startswith("agentsim: error: run_dirs hold no run folder with a journal.jsonl")
