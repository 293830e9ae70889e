"""What a decider sees: the conversation so far, the known facts and the tools it may call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import msgspec

from greenroom.decide._decision import CallTool
from greenroom.decide._errors import InvalidDeciderConfig

__all__ = ["ChatMessage", "Context", "Role", "tool_name"]

Role = Literal["system", "user", "assistant", "tool"]


class ChatMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One message of a conversation, in the roles of the chat-completions protocol.

    Attributes:
        role: ``"system"``, ``"user"``, ``"assistant"`` or ``"tool"``.
        content: the text (``None`` for an assistant message that only calls tools).
        tool_calls: the calls an assistant message decided.
        tool_call_id: for a ``"tool"`` message, the id of the call it answers.
        name: for a ``"tool"`` message, the tool's name (the rules decider
            matches on it; the OpenAI client sends only ``tool_call_id``).
    """

    role: Role
    content: str | None = None
    tool_calls: tuple[CallTool, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    @classmethod
    def system(cls, text: str) -> ChatMessage:
        """A system message."""
        return cls(role="system", content=text)

    @classmethod
    def user(cls, text: str) -> ChatMessage:
        """A user message."""
        return cls(role="user", content=text)

    @classmethod
    def assistant(cls, text: str | None = None, calls: Sequence[CallTool] = ()) -> ChatMessage:
        """An assistant message: a reply, or the tool calls it decided."""
        return cls(role="assistant", content=text, tool_calls=tuple(calls))

    @classmethod
    def tool_result(cls, call: CallTool, content: str) -> ChatMessage:
        """The result of ``call``, as text (JSON for a structured result)."""
        return cls(role="tool", content=content, tool_call_id=call.id, name=call.name)


class Context(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a decider sees for one decision: plain data, built upstream.

    Attributes:
        messages: the conversation so far, oldest first.
        facts: what is known, by name (from the store); a model sees them as
            one JSON system message after the leading system messages.
        tools: the tools the decider may call, as OpenAI function-tool
            definitions (``{"type": "function", "function": {"name": ...,
            "description": ..., "parameters": <JSON Schema>}}``).
    """

    messages: tuple[ChatMessage, ...] = ()
    facts: Mapping[str, object] = msgspec.field(default_factory=dict)
    tools: tuple[Mapping[str, object], ...] = ()

    def add(self, *messages: ChatMessage) -> Context:
        """A new context with ``messages`` appended; this one is unchanged."""
        return msgspec.structs.replace(self, messages=(*self.messages, *messages))

    def tool_names(self) -> tuple[str, ...]:
        """The names of :attr:`tools`, in order.

        Raises:
            InvalidDeciderConfig: a tool definition has no ``function.name``.
        """
        return tuple(tool_name(t) for t in self.tools)


def tool_name(tool: Mapping[str, object]) -> str:
    """The name of an OpenAI function-tool definition.

    Raises:
        InvalidDeciderConfig: ``tool`` is not ``{"type": "function",
            "function": {"name": <str>, ...}}``.
    """
    function = tool.get("function")
    name = function.get("name") if isinstance(function, Mapping) else None
    if tool.get("type") != "function" or not isinstance(name, str) or not name:
        raise InvalidDeciderConfig(
            "a tool definition",
            f"expected {{'type': 'function', 'function': {{'name': <str>, ...}}}}, got {tool!r}",
            "pass OpenAI function-tool definitions in Context.tools",
        )
    return name
