// report.html behaviour: message panel, evidence links, task filter. No network, no libraries.
(function () {
  "use strict";
  var dataByTask = null, cache = {}, failures = null;

  function taskData(task) {
    if (dataByTask === null) {
      dataByTask = {};
      document.querySelectorAll("script.msgdata").forEach(function (s) { dataByTask[s.dataset.task] = s; });
    }
    if (!(task in cache)) {
      var s = dataByTask[task];
      cache[task] = s ? JSON.parse(s.textContent) : {};
    }
    return cache[task];
  }
  function failureData() {
    if (failures === null) {
      var s = document.getElementById("failuredata");
      failures = s ? JSON.parse(s.textContent) : [];
    }
    return failures;
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function chat(role, text) {
    var d = el("div", "chat " + role);
    d.appendChild(el("span", "role", role));
    d.appendChild(document.createTextNode(text === undefined || text === null ? "" : String(text)));
    return d;
  }
  function openPanel(title, meta, blocks, raw) {
    var panel = document.getElementById("panel");
    document.getElementById("panel-title").textContent = title;
    var dl = document.getElementById("panel-meta");
    dl.replaceChildren();
    meta.forEach(function (kv) { dl.appendChild(el("dt", "", kv[0])); dl.appendChild(el("dd", "", kv[1])); });
    var content = document.getElementById("panel-content");
    content.replaceChildren.apply(content, blocks);
    document.getElementById("panel-raw").textContent = JSON.stringify(raw, null, 2);
    panel.hidden = false;
  }
  function bodyBlocks(m) {
    var b = m.body || {}, out = [];
    switch (m.kind) {
      case "ask":
        (b.messages || []).forEach(function (x) {
          var text = x.content;
          if (x.tool_calls) text = (text || "") + "\n" + JSON.stringify(x.tool_calls, null, 1);
          out.push(chat(x.role || "user", text));
        });
        if (b.tools) out.push(chat("tool", "tools offered: " + b.tools.map(function (t) { return (t.function || t).name; }).join(", ")));
        break;
      case "reply":
        var c = b.completion || {};
        out.push(chat("assistant", c.text));
        if (c.tool_calls) out.push(chat("tool", JSON.stringify(c.tool_calls, null, 1)));
        out.push(el("p", "muted", "finish " + c.finish_reason + " · tokens " + JSON.stringify(c.usage || {})));
        break;
      case "peer": out.push(chat("assistant", b.content)); break;
      case "tool_call": out.push(chat("tool", b.name + "(" + b.arguments + ")")); break;
      case "tool_result": out.push(chat(b.error ? "error" : "tool", b.error || b.content)); break;
      case "error": out.push(chat("error", b.kind + ": " + b.detail)); break;
      default: break;
    }
    return out;
  }
  function select(node) {
    document.querySelectorAll(".selected").forEach(function (n) { n.classList.remove("selected"); });
    if (node) node.classList.add("selected");
  }
  function showMessage(node) {
    var m = taskData(node.dataset.task)[node.dataset.msg];
    select(node);
    if (!m) { openPanel(node.dataset.msg, [["note", "content not in this page"]], [], {}); return; }
    openPanel(m.kind + " " + m.msg_id, [
      ["from → to", m.src + " → " + m.dst], ["task", m.task_id || "(run)"], ["round", m.round],
      ["t", m.t + " s"], ["seq", m.seq], ["bytes", m.bytes], ["direction", m.dir]
    ], bodyBlocks(m), m);
  }
  function showFailure(node) {
    var f = failureData()[Number(node.dataset.failure)];
    select(node);
    if (!f) return;
    var ev = el("p", "");
    ev.appendChild(document.createTextNode("evidence: "));
    (f.evidence || []).forEach(function (id) {
      var target = document.getElementById("m-" + id) || document.getElementById("x-" + id);
      var a = el("a", "evidence", id);
      if (target) a.href = "#" + target.id;
      ev.appendChild(a); ev.appendChild(document.createTextNode(" "));
    });
    openPanel("failure " + f.kind, [
      ["category", f.category], ["task", f.task_id || "(run)"], ["agents", (f.agents || []).join(", ")],
      ["round", f.round === undefined ? "" : f.round], ["at", f.at]
    ], [chat("error", f.detail), ev], f);
  }
  function reveal(target) {
    for (var p = target.parentElement; p; p = p.parentElement) {
      if (p.tagName === "DETAILS") p.open = true;
    }
    target.scrollIntoView({ block: "center" });
    target.classList.remove("flash"); void target.getBoundingClientRect(); target.classList.add("flash");
  }
  function go(hash) {
    var target = document.getElementById(decodeURIComponent(hash.replace(/^#/, "")));
    if (!target) return false;
    reveal(target);
    if (target.classList.contains("msg")) showMessage(target);
    else if (target.classList.contains("failure-marker")) showFailure(target);
    else if (target.classList.contains("fault-marker")) select(target);
    return true;
  }
  document.addEventListener("click", function (e) {
    var t = e.target;
    var a = t.closest("a[href^='#']");
    if (a) {
      if (go(a.getAttribute("href"))) { e.preventDefault(); history.replaceState(null, "", a.getAttribute("href")); }
      return;
    }
    var node = t.closest(".msg");
    if (node) { showMessage(node); return; }
    node = t.closest(".failure-marker");
    if (node) { showFailure(node); return; }
    node = t.closest(".fault-marker");
    if (node) {
      var m = document.getElementById("m-" + node.dataset.msg);
      if (m) showMessage(m);
      select(node);
    }
  });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") document.getElementById("panel").hidden = true;
    if (e.key === "Enter" && e.target.classList && e.target.classList.contains("msg")) showMessage(e.target);
  });
  document.getElementById("panel-close").addEventListener("click", function () {
    document.getElementById("panel").hidden = true;
  });
  var filter = document.getElementById("task-filter");
  function shown(d) {
    var v = filter ? filter.value : "all";
    return v === "all" || (v === "failures" && Number(d.dataset.failures) > 0) || (v === "incorrect" && d.dataset.correct !== "yes");
  }
  if (filter) filter.addEventListener("change", function () {
    document.querySelectorAll("details.task").forEach(function (d) { d.hidden = !shown(d); });
  });
  var expand = document.getElementById("expand-all");
  if (expand) expand.addEventListener("click", function () {
    document.querySelectorAll("details.task").forEach(function (d) { if (!d.hidden) d.open = true; });
  });
  var collapse = document.getElementById("collapse-all");
  if (collapse) collapse.addEventListener("click", function () {
    document.querySelectorAll("details.task").forEach(function (d) { d.open = false; });
  });
  if (location.hash) go(location.hash);
})();
