"""Delegator: hands a task the decider delegated to another agent, and brings its answer back.

When a decider decides ``Delegate(to=..., task=...)``, the worker asks the
agent ``to`` names (usually another coordinator's router) with a
:class:`~greenroom.agent.Request` in a conversation of its own, and puts the
exchange into the conversation as a tool call named ``"delegate"`` and its
result: the delegate's answer is an observation the decider reads on its
next step, exactly like a tool result (``tool_returned("delegate")`` matches
it in a rules decider). The turn goes on under the same budget.

Only the agents named in ``Delegator(agents=...)`` can be delegated to, as
only granted tools can be called. A delegation the decider can correct
comes back to it as the result ``"error: ..."``: an unknown name, or a
delegate that failed, stopped, refused the message or timed out. Past the
turn's budget deadline the turn ends with ``BudgetExceeded``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

import greenroom as gr
from greenroom.agent._conversation import Conversation
from greenroom.agent._messages import Answer, Request
from greenroom.decide import BudgetExceeded, BudgetTracker, CallTool, ChatMessage, Delegate
from greenroom.trace import current_tracer

__all__ = ["DELEGATE_TOOL", "Delegator", "UnknownDelegate"]

DELEGATE_TOOL = "delegate"
"""The tool name a delegation is recorded under in the conversation."""

_ENCODE = msgspec.json.Encoder().encode


class UnknownDelegate(gr.UsageError):
    """The decider delegated to a name its worker may not delegate to.

    Attributes:
        name: the name the decider used.
        known: the names it may use.
    """

    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        super().__init__(
            f"the decider delegated to {name!r}, which this worker may not delegate to; "
            f"it may delegate to: {', '.join(known) or 'nobody'} "
            "(add the agent to Delegator(agents=...))"
        )
        self.name = name
        self.known = known


_FEEDBACK: tuple[type[Exception], ...] = (
    UnknownDelegate,
    gr.HandlerError,
    gr.ActorStopped,
    gr.UnknownMessage,
    gr.AskTimeout,
    gr.MailboxFull,
)


class Delegator:
    """The agents a worker may delegate to, and how one delegation runs.

    Args:
        agents: the name a decider uses -> the agent: an actor name (looked
            up when delegating, so it may start later) or a ref. Usually a
            coordinator's router: ``{"billing": "billing/router"}``.
        timeout: seconds one delegated task may take (default 60.0); never
            past the turn's budget deadline.
        feedback: failures that come back to the decider as the result
            ``"error: <message>"`` instead of failing the turn (default: an
            unknown name, and a delegate that failed, stopped, has no
            handler for ``Request``, timed out or has a full mailbox).

    Override :meth:`request` to send the delegate another message, and
    :meth:`observe` to read its answer differently. A delegate that routes
    back to the delegating worker itself waits for ``timeout``: give a
    delegated task a key of its own (the default conversation id does).
    """

    def __init__(
        self,
        agents: Mapping[str, str | gr.ActorRef] | None = None,
        *,
        timeout: float = 60.0,
        feedback: Sequence[type[Exception]] = _FEEDBACK,
    ) -> None:
        if not timeout > 0:
            raise gr.InvalidSpec(f"Delegator timeout must be seconds > 0, got {timeout!r}")
        self.agents = dict(agents or {})
        self.timeout = timeout
        self.feedback = tuple(feedback)

    def call(self, decision: Delegate, made: int) -> CallTool:
        """The delegation as the tool call recorded in the conversation (``made`` calls before)."""
        arguments: dict[str, object] = {"to": decision.to, "task": decision.task}
        return CallTool(name=DELEGATE_TOOL, arguments=arguments, id=f"{DELEGATE_TOOL}-{made}")

    def request(self, conversation: Conversation, decision: Delegate) -> gr.Message:
        """The message the delegate gets: a ``Request`` in a conversation of its own."""
        return Request(
            conversation=f"{conversation.id}>{decision.to}",
            text=decision.task,
            user=conversation.user,
        )

    def observe(self, answer: object) -> str:
        """The delegate's answer as the text the decider reads."""
        if isinstance(answer, Answer):
            if answer.status in ("replied", "finished"):
                return answer.text
            return f"{answer.status}: {answer.text}"
        if isinstance(answer, str):
            return answer
        if isinstance(answer, msgspec.Struct):
            return _ENCODE(answer).decode()
        return repr(answer)

    def target(self, name: str, runtime: gr.Runtime) -> gr.ActorRef:
        """The ref of the agent the decider calls ``name``.

        Raises:
            UnknownDelegate: ``name`` is not in ``agents``.
            ActorStopped: the agent it names is not running.
        """
        agent = self.agents.get(name)
        if agent is None:
            raise UnknownDelegate(name, tuple(sorted(self.agents)))
        return agent if isinstance(agent, gr.ActorRef) else runtime.ref(agent)

    async def run(
        self,
        ctx: gr.ActorContext,
        conversation: Conversation,
        decision: Delegate,
        call: CallTool,
        budget: BudgetTracker | None = None,
    ) -> ChatMessage:
        """Ask the delegate and wait for its answer; the tool message answering ``call``.

        Raises:
            BudgetExceeded: the turn's budget deadline passed, or came while
                the delegate worked.
            GreenroomError: a delegation failure not in ``feedback``.
        """
        timeout = self.timeout
        remaining = None if budget is None else budget.remaining_seconds()
        if budget is not None and remaining is not None:
            if remaining <= 0:
                raise _past_deadline(budget)
            timeout = min(timeout, remaining)
        by_budget = remaining is not None and remaining < self.timeout
        tracer = current_tracer.get()
        try:
            target = self.target(decision.to, ctx.runtime)
            message = self.request(conversation, decision)
            if tracer is None:
                answer = await ctx.ask(target, message, timeout=timeout)
            else:
                with tracer.span(
                    "delegate", decision.to, attributes={"greenroom.task": decision.task}
                ):
                    answer = await ctx.ask(target, message, timeout=timeout)
        except self.feedback as exc:
            if budget is not None and by_budget and isinstance(exc, gr.AskTimeout):
                raise _past_deadline(budget) from exc
            ctx.log.bind(event="agent.delegate_failed", to=decision.to).info(
                "delegation to {to} came back as an error: {error}", to=decision.to, error=exc
            )
            return ChatMessage.tool_result(call, f"error: {exc}")
        return ChatMessage.tool_result(call, self.observe(answer))


def _past_deadline(budget: BudgetTracker) -> BudgetExceeded:
    return BudgetExceeded("deadline", budget.usage().elapsed, budget.budget.deadline or 0.0)
