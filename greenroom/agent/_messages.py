"""The messages of an agent: a request, the answer to it, and the verdict on a parked call.

Every agent message names its ``conversation``: the coordinator routes on
it, so one conversation keeps one worker and its order. ``Passivate`` and
``Passivated`` are the coordinator's exchange with a keyed worker it found
idle (see :class:`~greenroom.agent.Entity`).
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import greenroom as gr
from greenroom.tools import Approve, Deny

__all__ = ["Answer", "AnswerStatus", "Passivate", "Passivated", "Request", "Resolve"]

AnswerStatus: TypeAlias = Literal["replied", "finished", "awaiting_approval", "denied", "expired"]
"""How a turn ended: a reply, a finish without words, a call parked for a
person's approval, or a parked call that was denied or expired."""


class Request(gr.Message, frozen=True, kw_only=True):
    """A user's message in ``conversation``.

    Attributes:
        conversation: the conversation id; the routing key.
        text: what the user said.
        user: who said it (context builders key their reads on it).
    """

    conversation: str
    text: str
    user: str = ""


class Resolve(gr.Message, frozen=True, kw_only=True):
    """A person's verdict on the call parked in ``conversation``: ``Approve`` or ``Deny``.

    The worker hands ``verdict`` to its ``ToolBox`` and goes on with the
    conversation; the answer to this message is how that turn ended.
    """

    conversation: str
    verdict: Approve | Deny


class Answer(gr.Message, frozen=True, kw_only=True):
    """How one turn of ``conversation`` ended; the reply to ``Request`` and ``Resolve``.

    Attributes:
        conversation: the conversation id.
        status: see :data:`AnswerStatus`.
        text: the reply (``"replied"``), the reason (``"finished"``,
            ``"denied"``, ``"expired"``), or what waits (``"awaiting_approval"``).
        ticket: the ticket of the parked call (``"awaiting_approval"``).
        tool: the tool of the parked call (``"awaiting_approval"``).
        redos: decisions made on stale context and redone during the turn.
        worker: the name of the worker that handled it.
    """

    conversation: str
    status: AnswerStatus
    text: str = ""
    ticket: str | None = None
    tool: str | None = None
    redos: int = 0
    worker: str = ""


class Passivate(gr.Message, frozen=True, kw_only=True):
    """From a coordinator's router to the worker of ``key``: you are idle, stop if you may.

    The router sends it after the last message it forwarded to the worker,
    and holds the key's next messages until the answer. The worker answers
    with :class:`Passivated` to the actor named ``router``, echoing
    ``pool``, ``key`` and ``epoch``.
    """

    pool: str
    key: str
    epoch: int
    router: str


class Passivated(gr.Message, frozen=True, kw_only=True):
    """A keyed worker's answer to :class:`Passivate`.

    ``stopped`` is ``True`` when the worker stopped itself (the router then
    starts a new one for the messages it held), ``False`` when it stays
    (a call of it waits for approval, or a message arrived meanwhile).
    """

    pool: str
    key: str
    epoch: int
    stopped: bool
