"""Redis keys and scripts of a cluster: membership, partition leases, pools, replies.

Every key starts with the system's prefix (the one its RedisMailboxes use):
``nodes`` (a sorted set: node name -> last heartbeat, Redis server time in
ms), ``pool:<name>`` (a hash: partitions, capacity), ``pool:<name>:hosts``
(the nodes hosting that pool, scored like ``nodes``), ``lease:<name>:<p>``
(the node holding partition ``p``, expiring unless renewed) and
``reply:{<node>}`` (the stream of replies to the asks a node made). Times
come from the server's clock, so nodes on different machines agree.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["ACQUIRE", "HEARTBEAT", "RELEASE", "RENEW", "Keys"]

HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[3] == '1' then redis.call('ZADD', KEYS[1], now, ARGV[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 20 * tonumber(ARGV[2]))
return redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[2]), '+inf')
"""

RENEW = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

ACQUIRE = """
local got = {}
local want = tonumber(ARGV[3])
for i, key in ipairs(KEYS) do
  if #got >= want then break end
  if redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]) then got[#got + 1] = i - 1 end
end
return got
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Keys(NamedTuple):
    """The key names of one system."""

    prefix: str

    @property
    def nodes(self) -> str:
        return self.prefix + "nodes"

    def pool(self, pool: str) -> str:
        return f"{self.prefix}pool:{pool}"

    def hosts(self, pool: str) -> str:
        return f"{self.prefix}pool:{pool}:hosts"

    def lease(self, pool: str, partition: int) -> str:
        return f"{self.prefix}lease:{pool}:{partition}"

    def reply(self, node: str) -> str:
        return f"{self.prefix}reply:{{{node}}}"
