"""Beyond one process: nodes of one system sharing a Redis (the ``redis`` extra).

A :class:`Node` joins a system (the key prefix of its
:class:`~greenroom.RedisMailboxes`), hosts partitions of keyed pools with
takeover when a node dies, and reaches actors by name wherever they run
(:class:`RemoteRef`, :class:`ClusterPoolRef`). :func:`serve_node` runs a
long-lived node process.
"""

from greenroom._errors import publish_errors as _publish_errors
from greenroom.cluster._errors import RemoteError, UnknownPool
from greenroom.cluster._node import Node
from greenroom.cluster._refs import ClusterPoolRef, RemoteRef, partition_of
from greenroom.cluster._serve import serve_node

__all__ = [
    "ClusterPoolRef",
    "Node",
    "RemoteError",
    "RemoteRef",
    "UnknownPool",
    "partition_of",
    "serve_node",
]

_publish_errors(__name__, globals())
