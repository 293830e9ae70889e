"""The testing kit: a scripted OpenAI-compatible model server on loopback, for your tests too.

:class:`ScriptedModelServer` speaks the chat-completions protocol over real
HTTP (JSON and SSE streaming). Script its answers in order with
:class:`ScriptedReply` (text, tool calls, usage, streamed in fragments,
slow or truncated), :class:`ScriptedError` (500, 429 with ``Retry-After``...)
and :class:`ScriptedMalformed`; read what it received in
:attr:`ScriptedModelServer.requests`.

:class:`TestProbe` is an actor that records what it receives; ``await
probe.expect(Type)`` waits for the next message of a type. The pytest plugin
(enabled by installing greenroom) gives tests ``runtime`` and ``probe``
fixtures.
"""

from greenroom.testing._probe import ProbeTimeout, TestProbe
from greenroom.testing._script import (
    RecordedRequest,
    ScriptedError,
    ScriptedMalformed,
    ScriptedReply,
    ScriptedToolCall,
    ScriptedUsage,
    ScriptItem,
)
from greenroom.testing._scripted import ScriptedModelServer

__all__ = [
    "ProbeTimeout",
    "RecordedRequest",
    "ScriptItem",
    "ScriptedError",
    "ScriptedMalformed",
    "ScriptedModelServer",
    "ScriptedReply",
    "ScriptedToolCall",
    "ScriptedUsage",
    "TestProbe",
]
