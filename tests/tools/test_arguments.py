"""Whatever a model sends as arguments either validates into Input or is a ToolInputError."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from greenroom.tools import Tool, ToolInputError
from tests.tools._inputs import EXAMPLES, INPUTS, Constrained, Nested, tool_over

TOOLS = [tool_over(t) for t in INPUTS]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["low", "high", "fast", "careful", "12345", "London", ""])
)
FIELD_NAMES = [
    *("query", "limit", "exact", "name", "home", "work", "city", "postcode", "title"),
    *("page", "priority", "mode", "tags", "stops", "count", "ratio", "codes", "label"),
    *("children", "subtitle", "x"),
]
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(FIELD_NAMES) | st.text(max_size=5),
            inner,
            max_size=6,
        )
    ),
    max_leaves=20,
)


def _outcome(tool: Tool[Any, Any], arguments: object) -> None:
    error: ToolInputError | None = None
    try:
        result = tool.decode(arguments)
    except ToolInputError as exc:  # anything else escapes and fails the test
        error = exc
    if error is None:
        assert isinstance(result, tool.Input)
        return
    assert error.tool == tool.name
    assert str(error).startswith(f"arguments for tool {tool.name!r} are invalid")
    assert error.path is None or error.path.startswith("$")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(tool=st.sampled_from(TOOLS), value=json_values)
def test_any_json_value_validates_or_is_a_tool_input_error(
    tool: Tool[Any, Any], value: object
) -> None:
    _outcome(tool, json.dumps(value))
    _outcome(tool, value)


@settings(max_examples=200)
@given(tool=st.sampled_from(TOOLS), text=st.text(max_size=40) | st.binary(max_size=40))
def test_any_text_validates_or_is_a_tool_input_error(tool: Tool[Any, Any], text: str) -> None:
    _outcome(tool, text)


@settings(max_examples=200)
@given(
    example=st.sampled_from(EXAMPLES),
    field=st.text(max_size=8),
    value=json_values,
)
def test_a_valid_argument_object_with_one_field_changed_validates_or_is_refused(
    example: msgspec.Struct, field: str, value: object
) -> None:
    tool = next(t for t in TOOLS if t.Input is type(example))
    arguments = msgspec.to_builtins(example)
    arguments[field] = value
    _outcome(tool, arguments)
    _outcome(tool, json.dumps(arguments))


@pytest.mark.parametrize(
    ("arguments", "path", "words"),
    [
        ('{"name": "", "count": 1, "codes": [1]}', "$.name", "length >= 1"),
        ('{"name": "n", "count": 11, "codes": [1]}', "$.count", "<= 10"),
        ('{"name": "n", "count": 1}', "$", "missing required field `codes`"),
        ('{"name": "n", "count": "1", "codes": [1]}', "$.count", "Expected `int`, got `str`"),
        ('{"name": "n", "count": 1, "codes": [1, "2"]}', "$.codes[1]", "Expected `int`"),
        ("[1, 2]", "$", "Expected `object`, got `array`"),
        ('{"name": ', None, "not valid JSON"),
    ],
)
def test_an_input_error_names_what_was_expected_found_and_where(
    arguments: str, path: str | None, words: str
) -> None:
    tool = next(t for t in TOOLS if t.Input is Constrained)
    with pytest.raises(ToolInputError) as info:
        tool.decode(arguments)
    assert info.value.path == path
    assert words in str(info.value)


def test_a_nested_error_has_the_nested_path() -> None:
    tool = next(t for t in TOOLS if t.Input is Nested)
    arguments = {
        "name": "a",
        "home": {"city": "x", "postcode": "12"},
        "work": {"city": "y", "postcode": "00000"},
    }
    with pytest.raises(ToolInputError) as info:
        tool.decode(arguments)
    assert info.value.path == "$.home.postcode"


@pytest.mark.parametrize("arguments", [None, 3, ["a"], object()])
def test_arguments_that_are_neither_text_nor_a_mapping_are_an_input_error(
    arguments: object,
) -> None:
    with pytest.raises(ToolInputError, match="Expected `object`"):
        TOOLS[0].decode(arguments)


def test_arguments_nested_past_the_recursion_limit_are_an_input_error() -> None:
    tool = next(t for t in TOOLS if t.Input.__name__ == "Tree")
    depth = 100_000
    text = '{"label": "x", "children": [' * depth + "]}" * depth
    with pytest.raises(ToolInputError):
        tool.decode(text)
    with pytest.raises(ToolInputError):
        tool.decode({"label": "x", "children": [json.loads('{"label": 1}')]})
