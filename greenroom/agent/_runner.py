"""ToolRunner: runs one decided tool call through the worker's ToolBox, and nothing more.

It never retries. A tool that fails raises out of the worker's handler, so
the message is retried by the worker's supervisor, under the worker's
:class:`~greenroom.RetryPolicy` (with backoff, counted, traced, and past the
policy a dead letter), exactly like any other handler failure. A call that
needs approval raises :class:`~greenroom.tools.ApprovalPending`; the worker
parks the conversation.

Only mistakes a decider can correct come back as a tool result instead of an
error (by default :class:`~greenroom.tools.ToolInputError` and refusals such
as an ungranted tool): the decider reads the error and decides again.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from greenroom.decide import CallTool, ChatMessage
from greenroom.tools import ApprovalError, ToolBox, ToolError, ToolInputError, ToolRefused

__all__ = ["ToolRunner"]

_ENCODE = msgspec.json.Encoder().encode


class ToolRunner:
    """Runs one tool call and turns its Output into the tool message the decider reads.

    Args:
        feedback: tool errors that come back to the decider as the call's
            result (``"error: <message>"``) instead of failing the handler
            (default: invalid input and refusals). Approval errors always
            propagate: the worker handles them.

    Replace it (``Worker(runner=...)``) to run calls differently; it is a
    plain object used inside the worker's handler, so the tools run with
    the worker's grants and tickets.
    """

    def __init__(
        self, *, feedback: Sequence[type[ToolError]] = (ToolInputError, ToolRefused)
    ) -> None:
        self.feedback = tuple(feedback)

    async def run(self, toolbox: ToolBox, call: CallTool) -> ChatMessage:
        """Call ``call.name`` with ``call.arguments`` once; the tool message for its result.

        Raises:
            ApprovalPending: the call is parked for approval; the tool did not run.
            ToolFailed, HttpError, ToolOutputError, GreenroomError: the call
                failed; it is not retried here.
        """
        try:
            output = await toolbox.call(call.name, call.arguments)
        except ApprovalError:
            raise
        except self.feedback as exc:
            return ChatMessage.tool_result(call, f"error: {exc}")
        return self.result(call, output)

    def result(self, call: CallTool, output: msgspec.Struct) -> ChatMessage:
        """The tool message for ``output`` (its JSON), answering ``call``."""
        return ChatMessage.tool_result(call, _ENCODE(output).decode())
