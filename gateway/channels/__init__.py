"""Mini-program channels: redeeming WeChat and Alipay login codes with the platforms.

The gateway never trusts what a mini-program says about its user: it sends the platform
code to the platform itself and builds a :class:`ChannelIdentity` from the answer.
"""

from gateway.channels.errors import ChannelError
from gateway.channels.identity import ChannelIdentity
from gateway.channels.login import ChannelLogin
from gateway.channels.subject import subject_for

__all__ = ["ChannelError", "ChannelIdentity", "ChannelLogin", "subject_for"]
