"""The Redis layout of the store: key names, the record codec and the Lua scripts.

Every key of a scope shares the hash tag ``{scope}`` (after the store's
prefix), so one scope lives in one Redis Cluster slot and a script that
touches its record and its index stays on one shard::

    <prefix>{<scope>}:r:<key>   hash: v = version, m = msgpack [data|nil, at, by, trace]
    <prefix>{<scope>}:live      sorted set (all scores 0) of the live keys, for scan
    <prefix>{<scope>}:changes   stream, the scope's change log: one entry per committed
                                write or delete, id ``0-<n>`` with n = 1, 2, 3, ...
                                (consecutive, so a reader sees what was trimmed),
                                fields k = key, v = version, m = meta as in the record,
                                o = the writing store object's random tag

The change log is what watches in other processes read. It is capped at
about ``change_log`` entries (``XADD MAXLEN ~``: Redis trims whole nodes,
so a little more stays), which bounds its memory but means a reader
further behind than that misses entries (it then delivers a ``WatchGap``).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import msgspec

from greenroom.store._record import decode_value
from greenroom.store._watch_messages import StateChanged

if TYPE_CHECKING:
    from greenroom.store._scope import Scope

__all__ = [
    "SCAN",
    "WRITE",
    "WRITE_SHA",
    "Meta",
    "changes_key",
    "decode_change",
    "decode_meta",
    "encode_meta",
    "key_bytes",
    "live_key",
    "record_key",
    "record_prefix",
]

Meta = tuple[bytes | None, float, str | None, str | None]
"""A record's stored fields besides its version: data (None: tombstone), at, by, trace."""

_meta_encoder = msgspec.msgpack.Encoder()
_meta_decoder: msgspec.msgpack.Decoder[Meta] = msgspec.msgpack.Decoder(Meta)


def encode_meta(meta: Meta) -> bytes:
    return _meta_encoder.encode(meta)


def decode_meta(raw: bytes) -> Meta:
    return _meta_decoder.decode(raw)


def decode_change(
    name: str, scope: Scope[object] | None, key: str, fields: dict[bytes, bytes]
) -> StateChanged:
    """The change a log entry records (its value decoded with ``scope``'s type).

    Raises:
        StoredValueInvalid: the value does not decode into the scope's type.
        KeyError, ValueError, msgspec.DecodeError: the entry is malformed.
    """
    if not key:
        raise KeyError("k")
    version = int(fields[b"v"])
    data, updated_at, updated_by, trace_id = decode_meta(fields[b"m"])
    value = None
    if data is not None and scope is not None:
        value = decode_value(scope, key, version, data)
    return StateChanged(
        scope=name,
        key=key,
        version=version,
        deleted=data is None,
        value=value,
        updated_at=updated_at,
        updated_by=updated_by,
        trace_id=trace_id,
    )


def key_bytes(key: str) -> bytes:
    """A store key as Redis bytes (UTF-8, so byte order is code point order)."""
    return key.encode("utf-8", "surrogatepass")


def record_prefix(prefix: bytes, scope: str) -> bytes:
    return prefix + b"{" + key_bytes(scope) + b"}:r:"


def record_key(prefix: bytes, scope: str, key: str) -> bytes:
    return record_prefix(prefix, scope) + key_bytes(key)


def live_key(prefix: bytes, scope: str) -> bytes:
    return prefix + b"{" + key_bytes(scope) + b"}:live"


def changes_key(prefix: bytes, scope: str) -> bytes:
    return prefix + b"{" + key_bytes(scope) + b"}:changes"


# KEYS: record, live index, change log. ARGV: member, expected ("" = any), meta, "w" | "d",
# change log length (0: keep no log), origin (the writing store's tag, for its reader).
# Returns "1 <new version> <change entry id>" written ("1 <new version>" without a log),
# "0 <current>" conflict, "2 <current>" nothing to delete: one bulk string, the cheapest
# reply to parse. The log entry is added in the same script, so the log's order is the
# commit order and no reader sees a version the log lacks.
WRITE = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= cur then
    return '0 ' .. cur
end
if ARGV[4] == 'd' and redis.call('ZSCORE', KEYS[2], ARGV[1]) == false then
    return '2 ' .. cur
end
local new = cur + 1
redis.call('HSET', KEYS[1], 'v', new, 'm', ARGV[3])
if ARGV[4] == 'd' then
    redis.call('ZREM', KEYS[2], ARGV[1])
else
    redis.call('ZADD', KEYS[2], 0, ARGV[1])
end
if ARGV[5] == '0' then
    return '1 ' .. new
end
return '1 ' .. new .. ' ' .. redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '0-*',
                                        'k', ARGV[1], 'v', new, 'm', ARGV[3], 'o', ARGV[6])
"""
WRITE_SHA = hashlib.sha1(WRITE.encode()).hexdigest()  # Redis names a script by its SHA1
"""EVALSHA sends these 40 characters instead of the script with every write."""

# KEYS: live index. ARGV: min, max (ZRANGEBYLEX bounds), limit (-1: none), record prefix.
# Returns member, version, meta, member, version, meta, ... in key order, one snapshot.
SCAN = """
local members
if tonumber(ARGV[3]) >= 0 then
    members = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, ARGV[3])
else
    members = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2])
end
local out = {}
for _, member in ipairs(members) do
    local record = redis.call('HMGET', ARGV[4] .. member, 'v', 'm')
    out[#out + 1] = member
    out[#out + 1] = record[1]
    out[#out + 1] = record[2]
end
return out
"""
