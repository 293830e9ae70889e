"""What every ``greenroom`` subcommand shares: exit statuses, one-line errors, safe output.

:func:`guarded` runs a command and turns whatever it raises into one line
on stderr and a documented exit status (:data:`EXIT_STATUSES`); nothing
reaches the terminal as a traceback unless ``GREENROOM_DEBUG=1`` is set.
:func:`say` and :func:`say_json` print through
:func:`~greenroom.trace._terminal.terminal_text` /
:func:`~greenroom.trace._terminal.terminal_json`, so stored text never drives
the terminal. :class:`CommandParser` is argparse with one-line usage errors
(exit 2) whose text is escaped too.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import traceback
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Final, NoReturn

from greenroom._errors import GreenroomError, UsageError
from greenroom.trace._terminal import terminal_json, terminal_text

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_STATUSES",
    "EXIT_USAGE",
    "CommandParser",
    "NotFound",
    "count_arg",
    "guarded",
    "report",
    "say",
    "say_json",
    "seconds_arg",
    "text_arg",
]

EXIT_OK: Final = 0
EXIT_NOT_FOUND: Final = 1
EXIT_USAGE: Final = 2
EXIT_FAILED: Final = 3
EXIT_INTERNAL: Final = 4
EXIT_INTERRUPTED: Final = 130
EXIT_STATUSES: Final = frozenset(
    {EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_FAILED, EXIT_INTERNAL, EXIT_INTERRUPTED}
)
EXIT_HELP: Final = """\
exit status:
  0    done
  1    not found or not done: a letter or trace named does not exist (the
       others were still handled), a purge declined at the prompt, or (eval
       --fail-on-diff) a decision that differs
  2    usage error: a bad option or value (a time, an id, a number, text that
       is not UTF-8), a missing file or one that is not a greenroom database,
       a purge without --yes where no terminal can confirm it
  3    the database or Redis failed (locked, corrupt, unreachable, disk full)
  4    internal error: a bug in greenroom (GREENROOM_DEBUG=1 shows the traceback)
  130  interrupted
Every error is one line on stderr: "greenroom: error: ...". Stored text is
printed with control characters escaped and known secrets redacted."""
"""The exit statuses, as the ``--help`` epilog of every command shows them."""

_MAX_COUNT: Final = (1 << 63) - 1


class NotFound(GreenroomError):
    """A letter or trace that was named does not exist (exit status 1)."""


def _debug() -> bool:
    return os.environ.get("GREENROOM_DEBUG", "") not in ("", "0")


def report(message: str, stream: IO[str] | None = None) -> None:
    """Write ``greenroom: error: <message>`` as one escaped line to stderr."""
    line = f"greenroom: error: {terminal_text(message)}\n"
    out = sys.stderr if stream is None else stream
    try:
        out.write(line)
        out.flush()
    except (OSError, ValueError):  # stderr closed: nowhere left to tell
        pass


def say(text: str = "", *, multiline: bool = False) -> None:
    """Print ``text`` to stdout, escaped (see :func:`terminal_text`)."""
    sys.stdout.write(terminal_text(text, multiline=multiline) + "\n")


def say_json(value: object) -> None:
    """Print ``value`` to stdout as one line of JSON, escaped (see :func:`terminal_json`)."""
    sys.stdout.write(terminal_json(value) + "\n")


def _status_of(error: BaseException) -> tuple[int, str]:
    if isinstance(error, NotFound):
        return EXIT_NOT_FOUND, str(error)
    if isinstance(error, UsageError):
        return EXIT_USAGE, str(error)
    if isinstance(error, GreenroomError):
        return EXIT_FAILED, str(error)
    if isinstance(error, BrokenPipeError):
        return EXIT_FAILED, "the output was closed before everything was written"
    where = ""
    frames = traceback.extract_tb(error.__traceback__)
    if frames:
        last = frames[-1]
        where = f" at {os.path.basename(last.filename)}:{last.lineno}"
    return EXIT_INTERNAL, (
        f"internal error: {type(error).__name__}: {error}{where}; this is a bug in greenroom, "
        "please report it (GREENROOM_DEBUG=1 shows the traceback)"
    )


def _leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def _quiet_stdout() -> None:
    # After a broken pipe, flushing stdout at exit would fail again, with a traceback.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def guarded(run: Callable[[], int]) -> int:
    """Run a command; return its exit status, whatever it raises.

    A :class:`NotFound` gives 1, a :class:`UsageError` 2, any other
    :class:`GreenroomError` 3, each reported as one line on stderr;
    ``SystemExit`` (argparse's ``--help`` and usage errors) its own status;
    Ctrl-C 130; anything else is a bug: one "internal error" line naming the
    exception, status 4. With ``GREENROOM_DEBUG=1`` the traceback is printed
    first. Never raises (``SystemExit`` included).
    """
    try:
        return run()
    except SystemExit as done:
        code = done.code
        if code is None:
            return EXIT_OK
        if isinstance(code, int) and code in EXIT_STATUSES:
            return code
        report(f"internal error: the command exited with {code!r}")
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        report("interrupted")
        return EXIT_INTERRUPTED
    except BaseException as caught:
        error = _leaf(caught)
        if isinstance(error, KeyboardInterrupt):
            report("interrupted")
            return EXIT_INTERRUPTED
        if not isinstance(error, Exception):
            raise  # cancellation and the like are not the command's to answer for
        if isinstance(error, BrokenPipeError):
            _quiet_stdout()
        if _debug():
            text = "".join(traceback.format_exception(caught))
            sys.stderr.write(terminal_text(text, multiline=True))
        status, message = _status_of(error)
        report(message)
        return status


class CommandParser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit status 2), escaped output, the exit epilog."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("epilog", EXIT_HELP)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        if message:
            (sys.stderr if file is None else file).write(terminal_text(message, multiline=True))

    def error(self, message: str) -> NoReturn:
        """Report a usage error as one line and exit with status 2."""
        report(f"{message} (see `{self.prog} --help`)")
        raise SystemExit(EXIT_USAGE)


def text_arg(value: str) -> str:
    """An argparse type: text that can be stored and compared (no lone surrogates)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not valid text: it holds bytes that are not UTF-8"
        ) from None
    return value


def count_arg(value: str) -> int:
    """An argparse type: a count, an int from 0 to 2**63 - 1."""
    try:
        number = int(value.strip(), 10) if value.strip().isascii() else None
    except ValueError:
        number = None
    if number is None or not 0 <= number <= _MAX_COUNT:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 0 to 2**63 - 1, got {value!r}"
        )
    return number


def seconds_arg(value: str) -> float:
    """An argparse type: a duration in seconds, finite and > 0."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"expected seconds, a number > 0, got {value!r}")
    return seconds
