"""The HTML timeline in a real headless Chromium: renders clean, one bar per span, clicks work."""

from __future__ import annotations

import base64
from pathlib import Path

import anyio
import pytest

from greenroom.trace import render_html

from ..conftest import need_server
from ._chromium import chromium_binary, open_page
from ._spans import request_spans

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


async def test_the_timeline_renders_one_bar_per_span_and_shows_attributes_on_click(
    tmp_path: Path,
) -> None:
    binary = chromium_binary()
    if binary is None:
        need_server("chromium is not installed (apt-get install chromium)")
        return
    spans = request_spans()
    page_file = tmp_path / "trace.html"
    page_file.write_text(render_html(spans), encoding="utf-8")
    expected = sorted(f"{s.span_id:016x}" for s in spans)
    llm = f"{spans[1].span_id:016x}"

    with anyio.fail_after(60):
        async with open_page(binary, tmp_path / "profile") as page:
            for domain in ("Runtime", "Log", "Page", "Network"):
                await page.send(f"{domain}.enable")
            await page.send("Page.navigate", url=page_file.as_uri())
            await page.wait_event("Page.loadEventFired")

            bars = await page.evaluate(
                "Array.from(document.querySelectorAll('.bar')).map(b => b.dataset.spanId)"
            )
            assert sorted(bars) == expected
            widths = await page.evaluate(
                "Array.from(document.querySelectorAll('.bar'))"
                ".map(b => b.getBoundingClientRect().width)"
            )
            assert all(w >= 2 for w in widths)

            box = await page.evaluate(
                f"(() => {{ const r = document.querySelector('.row[data-row=\"{llm}\"]')"
                ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
            )
            await page.click(box[0], box[1])
            details = await page.evaluate("document.getElementById('details').innerText")
            assert "llm gpt-test" in details
            assert "gen_ai.request.model" in details
            assert "gen_ai.usage.input_tokens" in details
            assert "Context sent to the model" in details
            assert "Weather in Oslo?" in details
            assert "Decision" in details
            assert "CallTool" in details
            selected = await page.evaluate("document.querySelector('.row.selected').dataset.row")
            assert selected == llm

            shot = await page.send("Page.captureScreenshot", format="png")
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / "trace-timeline.png").write_bytes(base64.b64decode(shot["data"]))

            errors = [
                e
                for e in page.events
                if e["method"] == "Runtime.exceptionThrown"
                or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
                or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
            ]
            assert errors == []
            requests = [
                e["params"]["request"]["url"]
                for e in page.events
                if e["method"] == "Network.requestWillBeSent"
            ]
            assert requests, "no network events were seen: the checks above saw nothing"
            assert all(url.startswith("file://") for url in requests), requests
