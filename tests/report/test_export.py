"""``agentsim export``: OpenAI chat transcripts, CSV and Parquet results, read back."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from agentsim.cli import main
from agentsim.testing import journal


def test_openai_export_has_one_conversation_per_agent_per_task_that_parses_back(
    faulty_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "t.jsonl"
    assert main(["export", str(faulty_run), "--format", "openai", "--out", str(dest)]) == 0
    recs = journal(faulty_run)
    asks = [r for r in recs if r["event"] == "envelope" and r["kind"] == "ask"]
    lines = [json.loads(x) for x in dest.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == len({(a["task_id"], a["dst"]) for a in asks})
    assert f"{len(lines)} conversations" in capsys.readouterr().out
    replies = {
        r["body"]["in_reply_to"]: r
        for r in recs
        if r["event"] == "envelope" and r["kind"] == "reply"
    }
    for line in lines:
        meta = line["metadata"]
        assert meta["run_id"] == faulty_run.name
        mine = [a for a in asks if a["task_id"] == meta["task_id"] and a["dst"] == meta["agent"]]
        msgs = line["messages"]
        assert all(
            set(m) >= {"role", "content"} and m["role"] in ("system", "user", "assistant", "tool")
            for m in msgs
        )
        assert msgs[: len(mine[-1]["body"]["messages"])] == mine[-1]["body"]["messages"]
        answered = [replies[a["msg_id"]] for a in mine if a["msg_id"] in replies]
        assert meta["replies"] == len(answered)
        if answered:  # the reply is the assistant's last word
            assert msgs[-1] == {
                "role": "assistant",
                "content": answered[-1]["body"]["completion"]["text"],
            }
        else:  # a dropped ask: the conversation ends with what was sent
            assert msgs[-1]["role"] == "user"


def test_openai_export_merges_debate_rounds_into_one_conversation(tmp_path: Path) -> None:
    from agentsim.report.export import conversations

    q = {"role": "user", "content": "2+2?"}
    a1 = {"role": "assistant", "content": "4"}

    def ask(mid: str, msgs: list[dict[str, str]]) -> dict[str, object]:
        return {
            "event": "envelope",
            "kind": "ask",
            "msg_id": mid,
            "task_id": "t1",
            "dst": "alice",
            "body": {"type": "ask", "messages": msgs},
        }

    def reply(mid: str, to: str, text: str) -> dict[str, object]:
        return {
            "event": "envelope",
            "kind": "reply",
            "msg_id": mid,
            "task_id": "t1",
            "src": "alice",
            "body": {
                "type": "reply",
                "in_reply_to": to,
                "completion": {"text": text, "usage": {"prompt_tokens": 3, "completion_tokens": 1}},
            },
        }

    convs = conversations(
        [
            ask("r1", [q]),
            reply("a1", "r1", "4"),
            ask("r2", [q, a1, {"role": "user", "content": "peers say 5"}]),
            reply("a2", "r2", "still 4"),
        ]
    )
    assert len(convs) == 1
    assert convs[0]["messages"] == [
        q,
        a1,
        {"role": "user", "content": "peers say 5"},
        {"role": "assistant", "content": "still 4"},
    ]
    assert convs[0]["metadata"]["usage"] == {"prompt_tokens": 6, "completion_tokens": 2}


def test_csv_export_has_one_row_per_task(faulty_run: Path, tmp_path: Path) -> None:
    assert main(["export", str(faulty_run), "--format", "csv"]) == 0
    results = [r for r in journal(faulty_run) if r["event"] == "task_result"]
    with open(faulty_run / "results.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["task_id"] for r in rows] == [r["task_id"] for r in results]
    for row, res in zip(rows, results, strict=True):
        assert row["correct"] == str(res["correct"])
        assert row["failures"].split(";") == (res["failures"] or [""])
        assert float(row["latency_s"]) == pytest.approx(res["latency_s"])


def test_parquet_export_without_pyarrow_is_one_line_and_exit_2(
    faulty_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow -> ImportError
    dest = tmp_path / "r.parquet"
    assert main(["export", str(faulty_run), "--format", "parquet", "--out", str(dest)]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "agentsim: error: --format parquet needs pyarrow, which is not installed (pip install pyarrow)\n"
    )
    assert not dest.exists()


def test_parquet_export_round_trips_when_pyarrow_is_installed(
    faulty_run: Path, tmp_path: Path
) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is optional")
    dest = tmp_path / "r.parquet"
    assert main(["export", str(faulty_run), "--format", "parquet", "--out", str(dest)]) == 0
    table = pq.read_table(dest).to_pylist()
    results = [r for r in journal(faulty_run) if r["event"] == "task_result"]
    assert [r["task_id"] for r in table] == [r["task_id"] for r in results]


def test_export_of_a_folder_without_journal_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", str(tmp_path), "--format", "csv"]) == 2
    assert (
        capsys.readouterr().err
        == f"agentsim: error: run_dir must hold a journal.jsonl, got {str(tmp_path)!r}\n"
    )


def test_export_into_a_missing_folder_is_a_usage_error(
    faulty_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "nope" / "x.csv"
    assert main(["export", str(faulty_run), "--format", "csv", "--out", str(dest)]) == 2
    assert (
        capsys.readouterr().err
        == f"agentsim: error: --out must be in an existing folder, got {str(dest)!r}\n"
    )
