"""A channel login after binding (gateway/wiring/parts.bound_citizen joins gateway/channels and
gateway/binding): the citizen's ``sub`` from WeChat and from Alipay, its verified level,
and the login itself still L1 (what a channel code proves)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.channels.conftest import Platforms, channel_form
from tests.channels.test_login import claims_of, wechat_login

ZHANG = {"name": "张三", "id_number": "430102199001010016"}  # c-0001 in config/directory.toml


def bind(gateway_url: str, token: str) -> httpx.Response:
    return httpx.post(f"{gateway_url}/channel/bind", data=ZHANG,
                      headers={"Authorization": f"Bearer {token}"})


def id_claims(gateway_url: str, response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return claims_of(gateway_url, response.json()["id_token"])


def test_a_bound_channel_logs_in_as_its_citizen_from_either_platform(
        gateway_url: str, platforms: Platforms) -> None:
    first = wechat_login(gateway_url, platforms, openid="o-bob")
    unbound = id_claims(gateway_url, first)
    assert unbound["sub"].startswith("ch-")
    bound = bind(gateway_url, first.json()["access_token"])
    assert bound.status_code == 200, bound.text

    again = id_claims(gateway_url, wechat_login(gateway_url, platforms, openid="o-bob"))
    assert again["sub"] == "c-0001", "the citizen, not the channel's own subject"
    assert again["acr"] == "L1", "a channel code proves no more than the channel"
    assert again["amr"] == ["wechat"]
    assert "name" not in unbound, "an unbound channel identity has no real name"
    token = wechat_login(gateway_url, platforms, openid="o-bob",
                         scope="openid profile phone").json()["access_token"]
    info = httpx.get(f"{gateway_url}/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert info.json()["sub"] == "c-0001"
    # the binding proved name and ID number: the citizen's claims come with the login,
    # cut to the client's registration as always (no ID number for the mini-program)
    assert info.json()["name"] == ZHANG["name"]
    assert "id_number" not in info.json()
    assert "channel_sub" not in info.json()
    assert "channel_sub" not in again

    # the same person's Alipay account, bound too, ends at the same subject
    code = platforms.alipay.auth_code("2088102150470001")
    alipay = httpx.post(f"{gateway_url}/token", data=channel_form("alipay", code))
    assert id_claims(gateway_url, alipay)["sub"].startswith("ch-")
    assert bind(gateway_url, alipay.json()["access_token"]).status_code == 200
    code = platforms.alipay.auth_code("2088102150470001")
    later = httpx.post(f"{gateway_url}/token", data=channel_form("alipay", code))
    assert id_claims(gateway_url, later)["sub"] == "c-0001"
