"""What went wrong at a platform, in the terms the token endpoint answers with.

Platform error codes are mapped here once: an invalid or used code is the citizen's to
retry (``invalid_grant``, 请重新登录); a busy or rate-limited platform is ours to wait
for (``temporarily_unavailable``, 503 with ``Retry-After``).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["RETRY_AFTER", "ChannelError", "wechat_error"]

RETRY_AFTER = 5
"""Seconds a mini-program is told to wait when a platform is busy or rate-limits us."""

Outcome = Literal["invalid_request", "invalid_grant", "temporarily_unavailable", "server_error"]


class ChannelError(Exception):
    """A login the platform refused or could not serve; ``description`` is for citizens."""

    def __init__(self, outcome: Outcome, description: str, *, platform_code: str = "",
                 retry_after: int = 0) -> None:
        super().__init__(description)
        self.outcome = outcome
        self.description = description
        self.platform_code = platform_code  # for the log; never a secret
        self.retry_after = retry_after


def wechat_error(errcode: int) -> ChannelError:
    """A WeChat ``errcode`` (other than 0) as the refusal the mini-program gets."""
    code = str(errcode)
    if errcode in (40029, 40163):  # invalid code, code already used
        return ChannelError("invalid_grant", "登录凭证无效或已使用，请重新登录。",
                            platform_code=code)
    if errcode == 40226:  # a high-risk user the platform blocks
        return ChannelError("invalid_grant", "该微信账号存在安全风险，暂时无法登录。",
                            platform_code=code)
    if errcode in (45011, -1):  # rate limited, system busy
        return ChannelError("temporarily_unavailable", "微信服务繁忙，请稍后再试。",
                            platform_code=code, retry_after=RETRY_AFTER)
    return ChannelError("server_error", "微信登录暂时无法完成，请稍后再试。", platform_code=code)
