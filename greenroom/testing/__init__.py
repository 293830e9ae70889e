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

:class:`Replay` re-runs code with a recorded trace's decisions and tool
outputs served back in order and reports where the run diverged
(:class:`ReplayDiverged`); :func:`evaluate` (``greenroom eval``) runs a
decider against the contexts recorded in traces and compares its decisions.
"""

from greenroom._errors import publish_errors as _publish_errors
from greenroom.testing._eval import EvalReport, StepOutcome, evaluate, load_decider
from greenroom.testing._probe import ProbeTimeout, TestProbe
from greenroom.testing._recorded import (
    RecordedStep,
    RecordedToolCall,
    decision_steps,
    tool_calls,
)
from greenroom.testing._replay import (
    Divergence,
    Replay,
    ReplayDecider,
    ReplayDiverged,
    ReplayReport,
    ReplayTools,
)
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
    "Divergence",
    "EvalReport",
    "ProbeTimeout",
    "RecordedRequest",
    "RecordedStep",
    "RecordedToolCall",
    "Replay",
    "ReplayDecider",
    "ReplayDiverged",
    "ReplayReport",
    "ReplayTools",
    "ScriptItem",
    "ScriptedError",
    "ScriptedMalformed",
    "ScriptedModelServer",
    "ScriptedReply",
    "ScriptedToolCall",
    "ScriptedUsage",
    "StepOutcome",
    "TestProbe",
    "decision_steps",
    "evaluate",
    "load_decider",
    "tool_calls",
]

_publish_errors(__name__, globals())
