"""report.html in a real headless Chromium, driven over the DevTools protocol (CDP).

Needs Debian's ``chromium`` (``apt-get install -y chromium``) and the test-only PyPI package
``websocket-client``. The page is opened from disk; every request it makes is checked to be
``file:`` or ``data:``. Clicks are real mouse events (``Input.dispatchMouseEvent``) at the
element's on-screen position. A screenshot is written to ``tmp_path`` and, when
``AGENTSIM_ARTIFACTS`` is set, copied there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from base64 import b64decode
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentsim.testing import journal, wait_for

CHROMIUM = (
    shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)

WIDTH, HEIGHT = 1600, 1000


class Cdp:
    """The smallest CDP client: send a command, wait for its answer, keep events aside."""

    def __init__(self, ws_url: str) -> None:
        import websocket  # websocket-client, a test-only dependency

        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        ident = self.next_id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == ident:
                assert "error" not in msg, f"{method}: {msg['error']}"
                result: dict[str, Any] = msg["result"]
                return result
            self.events.append(msg)

    def js(self, expression: str) -> Any:
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in r, f"{expression}: {r['exceptionDetails']}"
        return r["result"].get("value")

    def click(self, selector: str) -> None:
        """Scroll ``selector`` into view and click its centre with the mouse, as a user would."""
        sel = json.dumps(selector)
        box = self.js(
            f"(() => {{ const e = document.querySelector({sel}); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()"
        )
        assert box is not None, f"no element {selector}"
        # The point must land on the element or its own row (not on the panel or a neighbour).
        hit = self.js(
            f"(() => {{ const h = document.elementFromPoint({box['x']}, {box['y']});"
            f" const e = document.querySelector({sel}); const row = e.closest('g') || e;"
            " return (!!h && (h === e || row.contains(h))) ? '' :"
            " (h ? h.tagName + '.' + h.getAttribute('class') + ' in ' +"
            " (h.parentNode.id || h.parentNode.tagName) : 'nothing'); })()"
        )
        assert not hit, f"{selector} is covered at {box} by {hit}"
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box["x"],
                y=box["y"],
                button="left",
                clickCount=0 if kind == "mouseMoved" else 1,
            )

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Cdp]:
    pytest.importorskip(
        "websocket", reason="the test-only package websocket-client is not installed"
    )
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    assert CHROMIUM is not None
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            f"--window-size={WIDTH},{HEIGHT}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cdp = None
    try:
        port_file = profile / "DevToolsActivePort"
        assert wait_for(
            lambda: port_file.is_file() and port_file.read_text().count("\n") >= 1, 30
        ), "chromium did not open its DevTools port"
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            targets = json.load(resp)
        page = next(t for t in targets if t["type"] == "page")
        cdp = Cdp(page["webSocketDebuggerUrl"])
        cdp.call("Network.enable")
        cdp.call("Page.enable")
        cdp.call(
            "Emulation.setDeviceMetricsOverride",
            width=WIDTH,
            height=HEIGHT,
            deviceScaleFactor=1,
            mobile=False,
        )
        yield cdp
    finally:
        if cdp is not None:
            cdp.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def save_artifact(path: Path) -> None:
    dest = os.environ.get("AGENTSIM_ARTIFACTS")
    if dest:
        Path(dest).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(dest) / path.name)


def test_report_shows_sequence_diagram_faults_failures_and_message_content(
    faulty_run: Path, browser: Cdp, tmp_path: Path
) -> None:
    recs = journal(faulty_run)
    envelopes = [r for r in recs if r["event"] == "envelope"]
    faults = [r for r in recs if r["event"] == "fault"]
    failures = [r for r in recs if r["event"] == "failure"]
    assert faults, "the scenario should have injected drops"
    assert any(f["kind"] == "no_consensus" for f in failures)

    browser.call("Page.navigate", url=(faulty_run / "report.html").resolve().as_uri())
    loaded = "location.protocol === 'file:' && document.readyState === 'complete'"
    assert wait_for(lambda: browser.js(loaded) is True, 20)

    # Every injected fault and every failure is on some timeline.
    assert browser.js("document.querySelectorAll('.fault-marker').length") == len(faults)
    assert browser.js("document.querySelectorAll('.failure-marker').length") == len(failures)

    # A task with a failure: open its <details> by clicking its summary.
    task_id = next(f["task_id"] for f in failures if f.get("task_id"))
    sel = f"details.task[data-task='{task_id}']"
    assert browser.js(f'document.querySelector("{sel}").open') is False
    browser.click(f"{sel} > summary")
    assert browser.js(f'document.querySelector("{sel}").open') is True

    # One arrow per envelope of that task, in journal order, and its failure markers.
    arrows = browser.js(
        f'Array.from(document.querySelectorAll("{sel} svg.seq .msg")).map(g => g.dataset.msg)'
    )
    assert arrows == [e["msg_id"] for e in envelopes if e["task_id"] == task_id]
    assert browser.js(f'document.querySelectorAll("{sel} .failure-marker").length') == sum(
        1 for f in failures if f.get("task_id") == task_id
    )
    assert (
        browser.js(f'document.querySelector("{sel} .failure-marker").textContent').count("✖") == 1
    )

    # Click the first ask: the panel shows the whole question (the arrow label is cut short).
    ask = next(e for e in envelopes if e["task_id"] == task_id and e["kind"] == "ask")
    question = ask["body"]["messages"][-1]["content"]
    assert len(question) > 40
    assert browser.js("document.getElementById('panel').hidden") is True
    browser.click(f"#m-{ask['msg_id']} .arrow")
    assert browser.js("document.getElementById('panel').hidden") is False
    assert ask["msg_id"] in browser.js("document.getElementById('panel-title').textContent")
    assert question in browser.js("document.getElementById('panel-content').textContent")
    assert browser.js(
        f"document.getElementById('m-{ask['msg_id']}').classList.contains('selected')"
    )

    shot = tmp_path / "report-task.png"
    png = browser.call("Page.captureScreenshot", format="png")["data"]
    shot.write_bytes(b64decode(png))
    assert shot.stat().st_size > 10_000
    save_artifact(shot)

    # An evidence link in the failure table jumps to the message (opening its task) and shows it.
    browser.click("#panel-close")
    msg_ids = {e["msg_id"] for e in envelopes}
    failure = next(
        f
        for f in failures
        if f.get("task_id") and f.get("evidence") and f["evidence"][0] in msg_ids
    )
    index = failures.index(failure)
    evidence = failure["evidence"][0]
    target_task = next(e["task_id"] for e in envelopes if e["msg_id"] == evidence)
    browser.js("document.querySelectorAll('details.task').forEach(d => d.open = false)")
    browser.click(f"#failure-row-{index} a.evidence")
    assert (
        browser.js(f"document.querySelector(\"details.task[data-task='{target_task}']\").open")
        is True
    )
    assert browser.js(f"document.getElementById('m-{evidence}').classList.contains('selected')")
    assert evidence in browser.js("document.getElementById('panel-title').textContent")

    shot2 = tmp_path / "report-evidence.png"
    shot2.write_bytes(b64decode(browser.call("Page.captureScreenshot", format="png")["data"]))
    save_artifact(shot2)

    # Opened from disk, it asked nothing of the network.
    urls = [
        e["params"]["request"]["url"]
        for e in browser.events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    assert urls, "the navigation itself should have been seen"
    assert all(u.startswith(("file:", "data:", "about:")) for u in urls), urls
