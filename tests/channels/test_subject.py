from __future__ import annotations

from gateway.channels import ChannelIdentity, subject_for


def test_subject_is_stable_pseudonymous_and_per_app_without_unionid() -> None:
    one = ChannelIdentity("wechat", "wx-a", "o-123")
    assert subject_for(one) == subject_for(ChannelIdentity("wechat", "wx-a", "o-123"))
    assert "o-123" not in subject_for(one)
    assert subject_for(one) != subject_for(ChannelIdentity("wechat", "wx-b", "o-123"))
    assert subject_for(one) != subject_for(ChannelIdentity("alipay", "wx-a", "o-123"))
    # a unionid names one person across the developer's apps
    a = ChannelIdentity("wechat", "wx-a", "o-1", unionid="u-9")
    b = ChannelIdentity("wechat", "wx-b", "o-2", unionid="u-9")
    assert subject_for(a) == subject_for(b)


def test_repr_hides_the_openid_and_phone() -> None:
    text = repr(ChannelIdentity("wechat", "wx-a", "o-1234567", phone_number="13912345678"))
    assert "o-1234567" not in text
    assert "13912345678" not in text
