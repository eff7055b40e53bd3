"""Which Redis the store talks to: one node (a URL), a Cluster (seed nodes; redis-py's
cluster client finds the rest, follows MOVED/ASK and a failover), or the master that
Sentinel names (redis-py's Sentinel client asks the sentinels again after a failover).

Every command and script of ``RedisStore`` touches one key, and its keys are hash-tagged,
so the same store runs on all three; its pipelines of one event-loop turn are split by
node by the cluster client. The password of the data nodes, and the sentinels' own, come
from the environment (the config names the variables), never from a file.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff

__all__ = ["Opened", "cluster_client", "quick_retry", "sentinel_client"]


def quick_retry() -> Retry:
    """Two more tries, 10–100 ms apart, for a command whose connection failed: redis-py's
    default (ten, up to a second apart) holds a request for seconds while a master is
    gone; the gateway answers 503 instead and the client retries (Retry-After). A
    Cluster or Sentinel client finds the new master on its next call. (Like redis-py's
    own retries, it may send a command again whose connection broke after it was sent:
    a single-use script then finds itself used and fails closed, as a replay.)"""
    return Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), retries=2)


@dataclass
class Opened:
    """A client, the secrets its errors must never show, and what else to close."""

    client: Redis | RedisCluster
    secrets: tuple[str, ...] = ()
    also_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def cluster_client(nodes: Sequence[str], *, password: str = "", timeout: float,
                   connect_timeout: float) -> Opened:
    """A client of the Cluster these seed URLs (``redis://`` or ``rediss://host:port``,
    user and password allowed) belong to; it connects on its first command."""
    seeds, username, secret, tls = [], None, password, False
    for node in nodes:
        parts = urlsplit(node)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"cluster node {parts.hostname or '?'}: no host:port")
        seeds.append(ClusterNode(parts.hostname, parts.port))
        tls = tls or parts.scheme == "rediss"
        username = username or (unquote(parts.username) if parts.username else None)
        secret = secret or (unquote(parts.password) if parts.password else "")
    client = RedisCluster(startup_nodes=seeds, username=username, password=secret or None,
                          ssl=tls, socket_timeout=timeout,
                          socket_connect_timeout=connect_timeout, retry=quick_retry())
    return Opened(client, (secret,) if secret else ())


# redis-py types ``Sentinel.__init__`` from 8.2 on and left it untyped before: called
# through this, the call checks alike against both.
_sentinel: Callable[..., Sentinel] = Sentinel


def sentinel_client(sentinels: Sequence[str], service: str, *, password: str = "",
                    sentinel_password: str = "", timeout: float,
                    connect_timeout: float) -> Opened:
    """A client of whichever server the sentinels say is ``service``'s master now."""
    addresses = []
    for address in sentinels:
        host, _, port = address.rpartition(":")
        addresses.append((host, int(port)))
    timeouts: dict[str, object] = {"socket_timeout": timeout,
                                   "socket_connect_timeout": connect_timeout,
                                   "retry": quick_retry()}
    sentinel_kwargs = {**timeouts, **({"password": sentinel_password}
                                      if sentinel_password else {})}
    manager = _sentinel(addresses, sentinel_kwargs=sentinel_kwargs, **timeouts)
    client = manager.master_for(service, password=password or None, socket_timeout=timeout,
                                socket_connect_timeout=connect_timeout, retry=quick_retry())

    async def close_sentinels() -> None:
        for connection in manager.sentinels:
            await connection.aclose()

    return Opened(client, tuple(s for s in (password, sentinel_password) if s),
                  [close_sentinels])
