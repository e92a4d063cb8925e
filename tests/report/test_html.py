"""report.html as a file: self-contained, complete, escaped, and bounded for large runs."""

from __future__ import annotations

import re
import time
import webbrowser
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from agentsim.cli import main
from agentsim.report.html import MAX_ROWS_PER_TASK, render_html
from agentsim.report.summary import summarize
from agentsim.testing import journal


class Collect(HTMLParser):
    """Element ids, in-page links, external references and <details> states."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.external: list[str] = []
        self.details_open: list[bool] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        if a.get("id"):
            self.ids.add(str(a["id"]))
        href = a.get("href") or ""
        if href.startswith("#"):
            self.links.append(href[1:])
        for key in ("src", "href", "xlink:href", "action"):
            v = a.get(key) or ""
            if v and not v.startswith(("#", "data:")):
                self.external.append(f"{tag} {key}={v}")
        if tag == "link":
            self.external.append(f"link {a}")
        if tag == "details" and "task" in (a.get("class") or ""):
            self.details_open.append("open" in a)


def parse(html: str) -> Collect:
    c = Collect()
    c.feed(html)
    return c


def test_report_html_is_written_with_the_run_and_is_self_contained(faulty_run: Path) -> None:
    html = (faulty_run / "report.html").read_text(encoding="utf-8")
    page = parse(html)
    assert page.external == []
    assert not re.search(r"url\(\s*['\"]?(https?:)?//|@import|https?://", html)
    assert "<svg" in html
    assert "<style>" in html
    assert "<script>" in html


def test_every_message_has_an_arrow_and_every_evidence_link_resolves(faulty_run: Path) -> None:
    recs = journal(faulty_run)
    page = parse((faulty_run / "report.html").read_text(encoding="utf-8"))
    for r in recs:
        if r["event"] == "envelope":
            assert f"m-{r['msg_id']}" in page.ids
        elif r["event"] == "fault":
            assert f"x-{r['fault_id']}" in page.ids
    failures = [r for r in recs if r["event"] == "failure"]
    assert {f"fail-{i}" for i in range(len(failures))} <= page.ids
    assert {f"failure-row-{i}" for i in range(len(failures))} <= page.ids
    assert page.links
    missing = [x for x in page.links if x not in page.ids]
    assert missing == []
    evidence = {e for f in failures for e in f.get("evidence", [])}
    assert any(f"m-{e}" in page.links for e in evidence)


def test_agentsim_report_open_regenerates_and_opens_the_page(
    faulty_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url, *a, **k: opened.append(url) or True)
    (faulty_run / "report.html").rename(faulty_run / "report.before.html")
    try:
        assert main(["report", str(faulty_run), "--open"]) == 0
        assert opened == [(faulty_run / "report.html").resolve().as_uri()]
        before = (faulty_run / "report.before.html").read_text(encoding="utf-8")
        assert (faulty_run / "report.html").read_text(encoding="utf-8") == before
    finally:
        (faulty_run / "report.before.html").unlink()
    assert '"tasks_done": 8' in capsys.readouterr().out


def test_agentsim_report_of_a_folder_without_journal_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path), "--open"]) == 2
    assert (
        capsys.readouterr().err
        == f"agentsim: error: run_dir must hold a journal.jsonl, got {str(tmp_path)!r}\n"
    )


def synthetic(tasks: int, msgs_per_task: int, *, content: str = "hello") -> list[dict[str, Any]]:
    """A journal as a runner writes it, with ask/reply pairs and one failure per task."""
    recs: list[dict[str, Any]] = [
        {
            "event": "run_start",
            "t": 0.0,
            "run_id": "big",
            "scenario": "big",
            "seed": 1,
            "protocol": "vote",
            "agents": ["a", "b"],
        },
        {"event": "tasks_loaded", "t": 0.0, "count": tasks},
        {"event": "mystery_event_from_the_future", "t": 0.0, "x": 1},
    ]
    t = 0.0
    for i in range(tasks):
        tid = f"task-{i}"
        recs.append({"event": "task_start", "t": t, "task_id": tid})
        for j in range(msgs_per_task // 2):
            t += 0.001
            ask = f"runner-{i}-{j}"
            recs.append(
                {
                    "event": "envelope",
                    "t": t,
                    "dir": "out",
                    "msg_id": ask,
                    "seq": j,
                    "src": "runner",
                    "dst": "a",
                    "kind": "ask",
                    "task_id": tid,
                    "round": j % 3,
                    "bytes": 100,
                    "body": {"type": "ask", "messages": [{"role": "user", "content": content}]},
                }
            )
            t += 0.001
            recs.append(
                {
                    "event": "envelope",
                    "t": t,
                    "dir": "in",
                    "msg_id": f"a-{i}-{j}",
                    "seq": j,
                    "src": "a",
                    "dst": "runner",
                    "kind": "reply",
                    "task_id": tid,
                    "round": j % 3,
                    "bytes": 100,
                    "body": {
                        "type": "reply",
                        "in_reply_to": ask,
                        "completion": {
                            "text": content,
                            "usage": {"prompt_tokens": 10, "completion_tokens": 2},
                            "timings": {"decode_s": 0.01},
                        },
                    },
                }
            )
        recs.append(
            {
                "event": "envelope",
                "t": t,
                "dir": "in",
                "msg_id": f"odd-{i}",
                "src": "b",
                "dst": "*",
                "kind": "heartbeat",
                "task_id": tid,
            }
        )  # no body, broadcast, unknown to the diagram
        recs.append(
            {
                "event": "failure",
                "t": t,
                "kind": "no_consensus",
                "category": "inter_agent",
                "task_id": tid,
                "agents": ["a", "b"],
                "evidence": [f"runner-{i}-0", "not-journaled"],
                "detail": "split",
                "at": t,
            }
        )
        recs.append(
            {
                "event": "task_result",
                "t": t,
                "task_id": tid,
                "answer": "x",
                "extracted": "x",
                "gold": "y",
                "correct": i % 2 == 0,
                "completed": True,
                "rounds": 1,
                "prompt_tokens": 10,
                "completion_tokens": 2,
                "decode_s": 0.01,
                "latency_s": 0.1,
                "messages": msgs_per_task,
                "bytes": 100,
                "failures": ["no_consensus"],
            }
        )
    recs.append({"event": "run_end", "t": t + 0.1, "completed": True})
    return recs


def test_a_huge_task_is_capped_and_the_rest_is_counted() -> None:
    recs = synthetic(1, 2 * MAX_ROWS_PER_TASK)
    html = render_html(summarize(recs), recs)
    page = parse(html)
    drawn = html.count('class="msg ')
    assert drawn == MAX_ROWS_PER_TASK
    assert re.search(r"\d+ more rows not drawn", html)
    assert "m-runner-0-0" in page.ids


def test_a_run_of_300_tasks_renders_quickly_with_every_task_collapsed() -> None:
    recs = synthetic(300, 20)
    t0 = time.perf_counter()
    html = render_html(summarize(recs), recs)
    elapsed = time.perf_counter() - t0
    page = parse(html)
    assert page.details_open == [False] * 300
    assert elapsed < 10, elapsed
    assert len(html) < 20_000_000
    assert "not-journaled" in html  # evidence that is not in the journal is listed, not linked
    assert "not-journaled" not in page.links


def test_message_content_cannot_break_out_of_the_page() -> None:
    evil = "</script><script>document.title='pwned'</script><b onmouseover=x>&amp;"
    recs = synthetic(1, 2, content=evil)
    html = render_html(summarize(recs), recs)
    assert "<script>document.title" not in html
    assert "<b onmouseover" not in html
    assert parse(html).tags.count("script") == 1 + 1 + 1  # page JS, one task's data, failure data
