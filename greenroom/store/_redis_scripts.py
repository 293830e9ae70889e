"""The Redis layout of the store: key names, the record codec and the Lua scripts.

Every key of a scope shares the hash tag ``{scope}`` (after the store's
prefix), so one scope lives in one Redis Cluster slot and a script that
touches its record and its index stays on one shard::

    <prefix>{<scope>}:r:<key>   hash: v = version, m = msgpack [data|nil, at, by, trace]
    <prefix>{<scope>}:live      sorted set (all scores 0) of the live keys, for scan
"""

from __future__ import annotations

import msgspec

__all__ = [
    "SCAN",
    "WRITE",
    "Meta",
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


def key_bytes(key: str) -> bytes:
    """A store key as Redis bytes (UTF-8, so byte order is code point order)."""
    return key.encode("utf-8", "surrogatepass")


def record_prefix(prefix: bytes, scope: str) -> bytes:
    return prefix + b"{" + key_bytes(scope) + b"}:r:"


def record_key(prefix: bytes, scope: str, key: str) -> bytes:
    return record_prefix(prefix, scope) + key_bytes(key)


def live_key(prefix: bytes, scope: str) -> bytes:
    return prefix + b"{" + key_bytes(scope) + b"}:live"


# KEYS: record, live index. ARGV: member, expected ("" = any), meta, "w" | "d".
# Returns {1, new version} written, {0, current} conflict, {2, current} nothing to delete.
WRITE = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= cur then
    return {0, cur}
end
if ARGV[4] == 'd' and redis.call('ZSCORE', KEYS[2], ARGV[1]) == false then
    return {2, cur}
end
local new = cur + 1
redis.call('HSET', KEYS[1], 'v', new, 'm', ARGV[3])
if ARGV[4] == 'd' then
    redis.call('ZREM', KEYS[2], ARGV[1])
else
    redis.call('ZADD', KEYS[2], 0, ARGV[1])
end
return {1, new}
"""

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
