"""Tool: one job, a typed Input and Output, an async ``call``, and a declared effect.

Two ways to define one, checked the same way when the class is created:

A function, for a stateless tool (its docstring is the description)::

    @tool(effect=PURE)
    async def add(input: AddInput) -> AddOutput:
        \"\"\"Add two integers.\"\"\"
        return AddOutput(total=input.a + input.b)

A subclass, for a tool that holds something (a client, a table)::

    class Fetch(Tool[FetchInput, FetchOutput]):
        \"\"\"Fetch a page from an allowed host.\"\"\"
        name = "fetch"
        effect = PURE

        def __init__(self, http: HttpClient) -> None:
            self.http = http

        async def call(self, input: FetchInput) -> FetchOutput: ...

``Input`` and ``Output`` are read from the type arguments (or set as class
attributes). A tool does its one job: no retries (the supervisor retries),
no caching, no effects beyond the declared one.
"""

from __future__ import annotations

import abc
import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Generic, TypeVar, get_args, get_origin, get_type_hints

import msgspec

from greenroom.tools._arguments import ArgumentDecoder
from greenroom.tools._effect import Compensable, Effect, Idempotent, Irreversible, Pure
from greenroom.tools._errors import InvalidTool
from greenroom.tools._schema import JsonSchema, ToolDefinition, input_schema

__all__ = ["Tool", "tool"]

InT = TypeVar("InT", bound=msgspec.Struct)
OutT = TypeVar("OutT", bound=msgspec.Struct)

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


class Tool(abc.ABC, Generic[InT, OutT]):
    """A single-purpose tool with a typed ``Input`` and ``Output``.

    Class attributes (checked when the subclass is created; :class:`InvalidTool`
    names what is wrong):

    - ``name``: what a model calls it, ``[A-Za-z0-9_-]{1,64}``; defaults to
      the class name in snake_case.
    - ``description``: what it does, for the model; defaults to the class
      docstring. Required.
    - ``effect``: its :data:`Effect`. Required: ``PURE``, ``Idempotent(key=...)``
      (a field of Input), ``Compensable(undo=...)`` or ``IRREVERSIBLE``.
    - ``strict``: whether its schema is offered in OpenAI strict mode
      (default ``True``).
    - ``requires_approval``: whether every call is parked until a person
      approves it (default ``False``; see ``ApprovalGate``).
    - ``Input`` / ``Output``: msgspec Struct classes; taken from the type
      arguments ``Tool[Input, Output]`` unless set.

    A subclass that does not define ``call`` is an abstract base and is not
    checked.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    effect: ClassVar[Effect]
    strict: ClassVar[bool] = True
    requires_approval: ClassVar[bool] = False
    Input: type[InT]
    Output: type[OutT]
    _gr_parameters: ClassVar[JsonSchema]
    _gr_decoder: ClassVar[ArgumentDecoder[Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "call" not in cls.__dict__:
            return
        _complete(cls)

    @abc.abstractmethod
    async def call(self, input: InT) -> OutT:
        """Do the tool's job once. Raise on failure: the caller decides about retries."""

    @property
    def parameters(self) -> JsonSchema:
        """The JSON Schema of the arguments, derived from ``Input`` (see :func:`input_schema`)."""
        return self._gr_parameters

    def definition(self) -> ToolDefinition:
        """The OpenAI tools entry: ``{"type": "function", "function": {...}}``."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self._gr_parameters,
                "strict": self.strict,
            },
        }

    def decode(self, arguments: object) -> InT:
        """Validate a model's arguments (JSON text or a dict) into ``Input``.

        Raises:
            ToolInputError: they do not validate; the message tells the model
                what was expected, what was found and where.
        """
        result: InT = self._gr_decoder.decode(arguments)
        return result

    def __repr__(self) -> str:
        return f"<tool {self.name!r} {type(self.effect).__name__.lower()}>"


def _complete(cls: type[Tool[Any, Any]]) -> None:
    """Fill in the defaults of a concrete tool class and check it."""
    if "name" not in cls.__dict__:
        cls.name = _CAMEL.sub("_", cls.__name__).lower()
    name = cls.name
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidTool(
            repr(name), "a name must match [A-Za-z0-9_-]{1,64}", "rename the tool, e.g. 'get_user'"
        )
    # Only the class's own docstring: an inherited one describes another tool.
    description = cls.__dict__.get("description") or cls.__dict__.get("__doc__")
    if not isinstance(description, str) or not description.strip():
        raise InvalidTool(
            name, "it has no description", "write a docstring saying what it does, for the model"
        )
    cls.description = inspect.cleandoc(description)
    if "Input" not in cls.__dict__ or "Output" not in cls.__dict__:
        found = _type_arguments(cls)
        if found is not None:
            cls.Input = cls.__dict__.get("Input", found[0])
            cls.Output = cls.__dict__.get("Output", found[1])
    for attr in ("Input", "Output"):
        value = getattr(cls, attr, None)
        if not (isinstance(value, type) and issubclass(value, msgspec.Struct)):
            raise InvalidTool(
                name,
                f"{attr} must be a msgspec.Struct class, got {value!r}",
                f"subclass Tool[InputStruct, OutputStruct] or set `{attr} = SomeStruct`",
            )
    effect = getattr(cls, "effect", None)
    if not isinstance(effect, Pure | Idempotent | Compensable | Irreversible):
        raise InvalidTool(
            name,
            f"it declares no effect (found {effect!r})",
            "set `effect` to PURE, Idempotent(key=...), Compensable(undo=...) or IRREVERSIBLE",
        )
    fields = msgspec.structs.fields(cls.Input)
    if isinstance(effect, Idempotent) and effect.key not in {f.name for f in fields}:
        raise InvalidTool(
            name,
            f"its idempotency key {effect.key!r} is not a field of {cls.Input.__qualname__}",
            f"name one of: {', '.join(f.name for f in fields) or '(no fields)'}",
        )
    if not isinstance(cls.strict, bool):
        raise InvalidTool(name, f"strict must be a bool, got {cls.strict!r}", "set True or False")
    if not isinstance(cls.requires_approval, bool):
        raise InvalidTool(
            name,
            f"requires_approval must be a bool, got {cls.requires_approval!r}",
            "set True or False",
        )
    cls._gr_parameters = input_schema(name, cls.Input, strict=cls.strict)
    cls._gr_decoder = ArgumentDecoder(name, cls.Input)


def _type_arguments(cls: type) -> tuple[object, object] | None:
    for klass in cls.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            origin = get_origin(base)
            if isinstance(origin, type) and issubclass(origin, Tool):
                args = get_args(base)
                if len(args) == 2 and not any(isinstance(a, TypeVar) for a in args):
                    return args[0], args[1]
    return None


ToolFunction = Callable[[InT], Awaitable[OutT]]


def tool(
    _misuse: object = None,
    /,
    *,
    effect: Effect | None = None,
    name: str | None = None,
    description: str | None = None,
    strict: bool = True,
    requires_approval: bool = False,
) -> Callable[[ToolFunction[InT, OutT]], Tool[InT, OutT]]:
    """Make a tool of an async function ``async def f(input: In) -> Out``.

    ``Input`` and ``Output`` come from the annotations, the name from the
    function's name (or ``name``), the description from its docstring (or
    ``description``). ``effect`` is required: ``@tool(effect=PURE)``.
    ``requires_approval=True`` parks every call until a person approves it.

    Raises:
        InvalidTool: no effect (or a bare ``@tool``), no docstring, a
            function that is not async, or annotations that are not msgspec
            Structs.
    """
    if _misuse is not None or effect is None:
        raise InvalidTool(
            name or str(getattr(_misuse, "__name__", "(function)")),
            "it declares no effect",
            "write @tool(effect=PURE) (or Idempotent(key=...), Compensable(undo=...), "
            "IRREVERSIBLE)",
        )
    declared: Effect = effect

    def make(function: ToolFunction[InT, OutT]) -> Tool[InT, OutT]:
        label: str = name or str(getattr(function, "__name__", repr(function)))
        if not inspect.iscoroutinefunction(function):
            raise InvalidTool(label, "it is not an async function", "define it with `async def`")
        try:
            hints = get_type_hints(function)
        except Exception as exc:
            raise InvalidTool(
                label,
                f"its annotations cannot be resolved: {exc}",
                "define its Input and Output at module level",
            ) from exc
        params = list(inspect.signature(function).parameters)
        if len(params) != 1 or params[0] not in hints or "return" not in hints:
            raise InvalidTool(
                label,
                "it must take one annotated argument and annotate its return",
                "write `async def f(input: MyInput) -> MyOutput`",
            )

        async def call(self: Tool[InT, OutT], input: InT) -> OutT:
            return await function(input)

        namespace: dict[str, object] = {
            "__doc__": description or function.__doc__,
            "__module__": function.__module__,
            "__qualname__": getattr(function, "__qualname__", label),
            "name": label,
            "effect": declared,
            "strict": strict,
            "requires_approval": requires_approval,
            "Input": hints[params[0]],
            "Output": hints["return"],
            "call": call,
        }
        cls = type(label, (Tool,), namespace)
        made: Tool[InT, OutT] = cls()
        return made

    return make
