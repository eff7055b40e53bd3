"""What operators run the gateway with: the probes load balancers ask (``probes``)."""

from gateway.ops.probes import Probes

__all__ = ["Probes"]
