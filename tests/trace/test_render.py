"""The terminal tree: parents before children, errors marked, durations shown."""

from __future__ import annotations

from greenroom.trace import Span, render_tree

from ._spans import request_spans


def test_the_tree_nests_children_under_parents_in_start_order() -> None:
    spans = request_spans(base=1_700_000_000.0)
    lines = render_tree(list(reversed(spans))).splitlines()
    assert lines[0].startswith(f"trace {spans[0].trace_id:016x}")
    assert "5 spans" in lines[0]
    assert "1 failed" in lines[0]
    body = [line[: line.index("  ", len(line) - len(line.lstrip()))] for line in lines[1:]]
    assert body == [
        "• message Ask @coordinator",
        "  • llm gpt-test @worker",
        "  • tool weather @tools",
        "  ✗ message Store @writer",
        "    • supervisor retry @root",
    ]
    assert "ERROR ValueError: disk said no" in lines[4]
    assert "500.0ms" in lines[1]
    assert "190.0ms" in lines[2]


def test_a_span_whose_parent_is_missing_is_shown_as_a_root() -> None:
    orphan = Span(trace_id=1, span_id=2, parent_id=99, kind="tool", name="t", start=0.0, end=0.0)
    assert render_tree([orphan]).splitlines()[1].startswith("• tool t")
    assert render_tree([]) == "(no spans)\n"


def test_attributes_are_listed_under_their_span_when_asked() -> None:
    text = render_tree(request_spans(), attributes=True)
    assert "gen_ai.request.model = gpt-test" in text
