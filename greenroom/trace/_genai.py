"""Attribute names for model and tool spans: the OpenTelemetry GenAI conventions.

Record LLM and tool spans with these keys, so the trace store sums tokens,
the HTML timeline shows the context and decision, and the OTel exporter
passes them on unchanged. Names follow the GenAI semantic conventions
(``gen_ai.system`` is deprecated there in favour of ``gen_ai.provider.name``).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DECISION",
    "INPUT_MESSAGES",
    "INPUT_TOKENS",
    "OPERATION_NAME",
    "OUTPUT_MESSAGES",
    "OUTPUT_TOKENS",
    "PROVIDER_NAME",
    "REQUEST_MODEL",
    "RESPONSE_MODEL",
    "TOOL_CALL_ARGUMENTS",
    "TOOL_CALL_ID",
    "TOOL_CALL_RESULT",
    "TOOL_NAME",
]

OPERATION_NAME: Final = "gen_ai.operation.name"
"""``"chat"`` for a model call, ``"execute_tool"`` for a tool call."""
PROVIDER_NAME: Final = "gen_ai.provider.name"
"""``"openai"``, ``"ollama"``, ...: who serves the model."""
REQUEST_MODEL: Final = "gen_ai.request.model"
RESPONSE_MODEL: Final = "gen_ai.response.model"
"""The model that answered (a fallback's, when the router fell back)."""
INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
INPUT_MESSAGES: Final = "gen_ai.input.messages"
"""The exact messages sent: a list of ``{"role": ..., "content": ...}``."""
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
TOOL_NAME: Final = "gen_ai.tool.name"
TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
DECISION: Final = "greenroom.decision"
"""The decision a decider made, as plain data (greenroom's own key)."""
