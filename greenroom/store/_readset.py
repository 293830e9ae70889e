"""Read sets: the versions a context was built from, to check for staleness later."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

__all__ = ["ReadEntry", "ReadSet"]


class ReadEntry(msgspec.Struct, frozen=True):
    """One read: the scope and key read and the version seen.

    ``version`` is 0 when the key had never been written, and a deleted
    key's tombstone version when it had been deleted.
    """

    scope: str
    key: str
    version: int


class ReadSet(msgspec.Struct):
    """The reads a decision depends on, in the order they were made.

    Fill it by passing ``read_set=`` to the reads of a store view (or with
    :meth:`add`), carry it beside the context built from those reads (it
    encodes with msgspec), and ask ``check_fresh(read_set)`` before acting
    on the decision. The same (scope, key, version) is kept once; a key read
    at two versions is kept twice, since the context holds data from both.
    """

    entries: list[ReadEntry] = msgspec.field(default_factory=list)

    def add(self, scope: str, key: str, version: int) -> None:
        """Record a read of ``key`` of ``scope`` at ``version`` (0: absent)."""
        entry = ReadEntry(scope, key, version)
        if entry not in self.entries:
            self.entries.append(entry)

    def __iter__(self) -> Iterator[ReadEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, entry: object) -> bool:
        return entry in self.entries
