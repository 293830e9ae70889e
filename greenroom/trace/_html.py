"""A trace as one self-contained HTML page: a timeline of bars, details on click.

The page loads nothing: styles and script are inline, the spans are embedded
as JSON, and a Content-Security-Policy forbids every network request.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable
from typing import Final

import msgspec

from greenroom.trace._ids import format_id
from greenroom.trace._redact import redact_span
from greenroom.trace._span import Span
from greenroom.trace._tree import format_duration, walk

__all__ = ["render_html"]

_encode = msgspec.json.Encoder(enc_hook=str).encode

_CSS: Final = """
*{box-sizing:border-box}
body{font:13px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#fafbfc}
header{padding:10px 16px;background:#1d2330;color:#fff}
header h1{font-size:15px;margin:0}
header .meta{opacity:.75}
main{display:flex;align-items:flex-start}
#timeline{flex:1 1 62%;min-width:0;padding:8px 0}
#details{flex:1 1 38%;min-width:0;position:sticky;top:0;max-height:100vh;overflow:auto;
 border-left:1px solid #d6dae1;padding:12px 16px;background:#fff}
.row{display:flex;align-items:center;height:24px;cursor:pointer}
.row:hover,.row.selected{background:#e8eefb}
.label{flex:0 0 40%;overflow:hidden;white-space:nowrap;text-overflow:ellipsis;padding:0 8px}
.label .kind{color:#66708a;font-size:11px;margin-right:4px}
.track{position:relative;flex:1;height:100%;margin-right:12px}
.bar{position:absolute;top:5px;height:14px;min-width:2px;border-radius:3px;background:#4f7bd9}
.bar.k-llm{background:#8a5cd1}.bar.k-tool{background:#d18b2c}.bar.k-store{background:#3a9a6b}
.bar.k-supervisor{background:#7a8294}.bar.error{background:#d1453b}
.axis{display:flex;justify-content:space-between;margin:0 12px 4px 40%;color:#66708a;font-size:11px}
.err{color:#b3261e;font-weight:600}
table{border-collapse:collapse;width:100%}
td{border-top:1px solid #eceff3;padding:4px;vertical-align:top}
td.k{width:34%;color:#4a5468;word-break:break-all}
pre{margin:0;white-space:pre-wrap;word-break:break-word;font:12px/1.35 ui-monospace,monospace}
.msg{border:1px solid #e1e5ec;border-radius:6px;margin:6px 0;padding:6px 8px}
.msg .role{font-weight:600;text-transform:uppercase;font-size:11px;color:#4a5468}
.msg.system{background:#f4f5f7}.msg.user{background:#eef4ff}.msg.assistant{background:#f3eefc}
.msg.tool{background:#fdf5e9}
h2{font-size:14px;margin:4px 0 8px}h3{font-size:12px;margin:12px 0 4px;color:#4a5468}
"""

_JS: Final = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("trace-data").textContent);
  var details = document.getElementById("details");
  var rows = document.querySelectorAll(".row");
  var byId = {};
  data.spans.forEach(function (s) { byId[s.span_id] = s; });
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function pretty(v) { return typeof v === "string" ? v : JSON.stringify(v, null, 2); }
  function contentText(c) {
    if (c === null || c === undefined) { return ""; }
    if (typeof c === "string") { return c; }
    if (Array.isArray(c)) {
      return c.map(function (p) {
        if (p && typeof p === "object" && "content" in p) { return contentText(p.content); }
        if (p && typeof p === "object" && "text" in p) { return String(p.text); }
        return pretty(p);
      }).join("\n");
    }
    return pretty(c);
  }
  function messages(title, list) {
    var box = el("div");
    box.appendChild(el("h3", null, title));
    list.forEach(function (m) {
      var role = (m && m.role) ? String(m.role) : "message";
      var div = el("div", "msg " + role.replace(/[^a-z]/g, ""));
      div.appendChild(el("div", "role", role));
      var text = contentText(m ? (m.content !== undefined ? m.content : m.parts) : m);
      if (text) { div.appendChild(el("pre", null, text)); }
      var calls = m && (m.tool_calls || m.tool_call);
      if (calls) { div.appendChild(el("pre", null, "tool calls: " + pretty(calls))); }
      box.appendChild(div);
    });
    return box;
  }
  var SPECIAL = {"gen_ai.input.messages": "Context sent to the model",
                 "gen_ai.output.messages": "Model output",
                 "greenroom.decision": "Decision"};
  function show(id) {
    var s = byId[id];
    if (!s) { return; }
    rows.forEach(function (r) { r.classList.toggle("selected", r.dataset.row === id); });
    details.textContent = "";
    details.appendChild(el("h2", null, s.kind + " " + s.name));
    var t = el("table");
    function add(k, v, cls) {
      var tr = el("tr"); tr.appendChild(el("td", "k", k));
      var td = el("td", cls); td.appendChild(el("pre", null, pretty(v))); tr.appendChild(td);
      t.appendChild(tr);
    }
    add("span", s.span_id); add("parent", s.parent_id || "(root)");
    if (s.actor) { add("actor", s.actor); }
    add("start", "+" + s.offset_label); add("duration", s.duration_label);
    add("status", s.status, s.status === "error" ? "err" : null);
    if (s.error) { add("error", s.error.type + ": " + s.error.message, "err"); }
    details.appendChild(t);
    Object.keys(SPECIAL).forEach(function (key) {
      if (!(key in s.attributes)) { return; }
      var v = s.attributes[key];
      if (Array.isArray(v) && key !== "greenroom.decision") {
        details.appendChild(messages(SPECIAL[key], v));
      } else {
        details.appendChild(el("h3", null, SPECIAL[key]));
        details.appendChild(el("pre", "decision", pretty(v)));
      }
    });
    var keys = Object.keys(s.attributes).filter(function (k) { return !(k in SPECIAL); });
    details.appendChild(el("h3", null, "Attributes"));
    var at = el("table"); at.className = "attributes";
    if (!keys.length) { details.appendChild(el("p", null, "(none)")); }
    keys.sort().forEach(function (k) {
      var tr = el("tr"); tr.appendChild(el("td", "k", k));
      var td = el("td"); td.appendChild(el("pre", null, pretty(s.attributes[k])));
      tr.appendChild(td); at.appendChild(tr);
    });
    details.appendChild(at);
    if (s.error && s.error.traceback) {
      details.appendChild(el("h3", null, "Traceback"));
      details.appendChild(el("pre", "err", s.error.traceback));
    }
  }
  rows.forEach(function (r) {
    r.addEventListener("click", function () { show(r.dataset.row); });
  });
  window.greenroomShowSpan = show;
})();
"""


def render_html(spans: Iterable[Span], *, title: str | None = None) -> str:
    """A self-contained HTML timeline of one trace's spans.

    One row per span in tree order, each with one bar (``class="bar"``,
    ``data-span-id`` = the span id in hex) placed on a shared time axis;
    clicking a row shows the span's attributes, its error and, for LLM
    spans, the messages sent (``gen_ai.input.messages``), the model output
    (``gen_ai.output.messages``) and the decision (``greenroom.decision``).
    Spans are redacted again here (they are when written to a trace store),
    so no secret this process knows reaches the page.
    """
    rows = walk(redact_span(s) for s in spans)
    begin = min((s.start for _, s in rows), default=0.0)
    end = max((s.end for _, s in rows), default=0.0)
    total = max(end - begin, 1e-9)
    trace = format_id(rows[0][1].trace_id) if rows else "-"
    heading = title or f"trace {trace}"
    body: list[str] = []
    payload: list[dict[str, object]] = []
    for depth, span in rows:
        sid = format_id(span.span_id)
        left = (span.start - begin) / total * 100
        width = span.duration / total * 100
        classes = f"bar k-{html.escape(span.kind)}" + (" error" if span.status == "error" else "")
        body.append(
            f'<div class="row" data-row="{sid}" title="{html.escape(span.name)}">'
            f'<div class="label" style="padding-left:{8 + 14 * depth}px">'
            f'<span class="kind">{html.escape(span.kind)}</span>{html.escape(span.name)}'
            + (' <span class="err">✗</span>' if span.status == "error" else "")
            + "</div>"
            f'<div class="track"><div class="{classes}" data-span-id="{sid}" '
            f'style="left:{left:.4f}%;width:{width:.4f}%"></div></div></div>'
        )
        payload.append(
            {
                "span_id": sid,
                "parent_id": None if span.parent_id is None else format_id(span.parent_id),
                "kind": span.kind,
                "name": span.name,
                "actor": span.actor,
                "status": span.status,
                "offset_label": format_duration(span.start - begin),
                "duration_label": format_duration(span.duration),
                "attributes": span.attributes,
                "error": span.error,
            }
        )
    data = _encode({"trace_id": trace, "spans": payload}).decode()
    # JSON inside <script>: no "<" may survive, or "</script>" in a value would end it.
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    when = dt.datetime.fromtimestamp(begin).isoformat(sep=" ", timespec="milliseconds")
    ticks = "".join(f"<span>{format_duration(total * i / 4)}</span>" for i in range(5))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; \
style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(heading)}</title><style>{_CSS}</style></head>
<body><header><h1>{html.escape(heading)}</h1>
<div class="meta">{html.escape(when)} · {format_duration(end - begin)} · {len(rows)} spans</div>
</header><main><section id="timeline"><div class="axis">{ticks}</div>
{"".join(body)}</section>
<aside id="details"><p>Click a span to see its attributes.</p></aside></main>
<script type="application/json" id="trace-data">{data}</script>
<script>{_JS}</script></body></html>
"""
