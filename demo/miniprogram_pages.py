"""The HTML of the demo's mini-program page (demo.miniprogram): one phone-sized page whose
sections follow the mini-program's steps. Chinese, plain forms, no script but the one
that fills the bind form with a demo person; phone numbers shown masked.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from starlette.responses import HTMLResponse

from gateway.assurance import LEVEL_NAMES
from gateway.identity import level_rank
from gateway.privacy import mask_phone

if TYPE_CHECKING:
    from demo.miniprogram import Device, Person, Target, User
    from demo.miniprogram_client import Login

__all__ = ["render"]

TITLE = "湘易办（演示小程序）"
CHANNEL_NAMES = {"wechat": "微信", "alipay": "支付宝"}
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY"}

_STYLE = """
* { box-sizing: border-box; }
body { font-family: "PingFang SC", "Microsoft YaHei", "WenQuanYi Micro Hei", sans-serif;
       background: #eef1f5; margin: 0; color: #1f2d3d; font-size: 15px; line-height: 1.5; }
header { background: #c0392b; color: #fff; padding: 12px 16px; font-size: 17px;
         text-align: center; }
main { max-width: 440px; margin: 0 auto; padding: 12px; }
section { background: #fff; border-radius: 10px; padding: 14px 16px; margin: 12px 0;
          box-shadow: 0 1px 4px rgba(0,0,0,.06); }
h2 { font-size: 16px; margin: 0 0 8px; }
h2 .n { display: inline-block; width: 22px; height: 22px; border-radius: 11px;
        background: #c0392b; color: #fff; text-align: center; font-size: 13px;
        line-height: 22px; margin-right: 6px; }
.muted { color: #6b7785; font-size: 13px; }
.flash { padding: 10px 12px; border-radius: 8px; margin: 12px 0; }
.ok { background: #e8f5e9; color: #1b5e20; }
.error { background: #fdecea; color: #8a1c1c; }
.done { color: #1b5e20; }
label.choice { display: flex; align-items: flex-start; gap: 8px; padding: 8px 0;
               border-bottom: 1px solid #f0f2f5; }
label.choice:last-of-type { border-bottom: 0; }
.tag { display: inline-block; font-size: 12px; padding: 0 6px; border-radius: 4px;
       color: #fff; margin-right: 4px; }
.wechat { background: #07c160; } .alipay { background: #1677ff; }
dl { display: grid; grid-template-columns: 6.5em 1fr; gap: 4px 8px; margin: 0; }
dt { color: #6b7785; } dd { margin: 0; word-break: break-all; }
input[type=text] { width: 100%; padding: 9px 10px; font-size: 15px; border: 1px solid #ccd3db;
                   border-radius: 6px; margin: 4px 0 10px; }
button, a.button { display: block; width: 100%; padding: 11px; font-size: 16px; border: 0;
       border-radius: 8px; background: #c0392b; color: #fff; text-align: center;
       text-decoration: none; margin-top: 10px; cursor: pointer; }
button.secondary { background: #fff; color: #c0392b; border: 1px solid #c0392b; }
.row { display: flex; gap: 8px; } .row > * { flex: 1; }
.people button { display: inline-block; width: auto; padding: 4px 10px; font-size: 13px;
                 margin: 4px 4px 0 0; background: #f0f2f5; color: #1f2d3d; }
code, .url { font-family: "DejaVu Sans Mono", monospace; font-size: 12px; }
.url { display: block; background: #f6f8fa; padding: 8px; border-radius: 6px;
       word-break: break-all; margin: 6px 0; }
table { width: 100%; border-collapse: collapse; font-size: 13px; }
th, td { text-align: left; padding: 5px 4px; border-bottom: 1px solid #f0f2f5;
         word-break: break-all; vertical-align: top; }
.nowrap { white-space: nowrap; word-break: normal; }
"""

_FILL = """
document.querySelectorAll('.people button').forEach(function (b) {
  b.addEventListener('click', function () {
    document.getElementById('name').value = b.dataset.name;
    document.getElementById('id-number').value = b.dataset.id;
  });
});
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _level(level: str) -> str:
    name = LEVEL_NAMES.get(level, "")
    return f"{_e(level)}（{_e(name)}）" if name else _e(level or "—")


def _tag(channel: str) -> str:
    return f'<span class="tag {_e(channel)}">{_e(CHANNEL_NAMES.get(channel, channel))}</span>'


def _login_form(users: list[User]) -> str:
    choices = "".join(
        f'<label class="choice"><input type="radio" name="user" value="{_e(u.key)}"'
        f'{" checked" if i == 0 else ""}><span>{_tag(u.channel)}{_e(u.nickname)}'
        f'<br><span class="muted">{_e(u.account)}</span></span></label>'
        for i, u in enumerate(users))
    return (
        '<form method="post" action="/login">'
        '<p class="muted">选择一位虚构的微信或支付宝用户。登录时小程序调用 wx.login / '
        "my.getAuthCode 取得一次性 code，由小程序服务端提交给统一身份认证平台，无需密码。</p>"
        f"{choices}"
        '<label class="choice"><input type="checkbox" name="phone" id="share-phone">'
        "<span>同时授权手机号（微信“获取手机号”按钮；该用户在平台登记了手机号时有效）</span>"
        '</label><button type="submit" id="login">一键登录</button></form>')


def _section(number: int, anchor: str, title: str, body: str) -> str:
    return (f'<section id="{anchor}"><h2><span class="n">{number}</span>{_e(title)}</h2>'
            f"{body}</section>")


def _status(login: Login, user: User) -> str:
    phone = login.userinfo.get("phone_number")
    amr = " ".join(str(m) for m in login.claims.get("amr", []))
    return (
        f"<dl><dt>当前用户</dt><dd>{_tag(user.channel)}{_e(user.nickname)}</dd>"
        f'<dt>用户标识 sub</dt><dd><code id="sub">{_e(login.sub)}</code></dd>'
        f'<dt>本次认证 acr</dt><dd id="acr">{_level(str(login.claims.get("acr", "")))}</dd>'
        f'<dt>认证方式 amr</dt><dd id="amr">{_e(amr)}</dd>'
        f'<dt>账户核验等级</dt><dd id="verified-level">{_level(login.verified_level)}</dd>'
        + (f'<dt>手机号</dt><dd id="phone">{_e(mask_phone(str(phone)))}</dd>' if phone else "")
        + "</dl>"
        '<p class="muted">acr 是本次登录做了什么：小程序渠道登录总是 L1；账户核验等级是'
        "该渠道身份绑定的居民账户核验到的等级。</p>"
        '<div class="row"><form method="post" action="/relogin">'
        '<button type="submit" class="secondary" id="relogin">静默重新登录</button></form>'
        '<form method="post" action="/logout">'
        '<button type="submit" class="secondary" id="switch-user">切换用户</button></form></div>')


def _bind_form(people: list[Person]) -> str:
    buttons = "".join(
        f'<button type="button" data-name="{_e(p.name)}" data-id="{_e(p.id_number)}">'
        f"{_e(p.name)}</button>" for p in people)
    return (
        '<form method="post" action="/bind" autocomplete="off">'
        '<label for="name">姓名</label><input type="text" id="name" name="name">'
        '<label for="id-number">居民身份证号码</label>'
        '<input type="text" id="id-number" name="id_number" inputmode="text" maxlength="18">'
        '<button type="submit" id="bind">提交实名核验</button></form>'
        '<p class="muted people">演示人员（虚构，点击填入）：'
        f"{buttons}</p>")


def _bind_section(device: Device, people: list[Person]) -> str:
    login = device.login
    if login is None:
        body = '<p class="muted">登录后可将该渠道身份绑定到居民统一身份账户。</p>'
    elif device.bound is not None:
        body = (f'<p class="done" id="bound">已绑定到居民 sub <code>{_e(device.bound.get("sub"))}'
                f'</code>，核验等级 {_level(str(device.bound.get("verified_level")))}</p>')
    elif login.verified_level != "L1":
        body = (f'<p class="done" id="bound">该{_e(CHANNEL_NAMES.get(login.channel, ""))}'
                f"身份已绑定到居民 sub <code>{_e(login.sub)}</code>，核验等级 "
                f"{_level(login.verified_level)}</p>")
    else:
        body = ('<p class="muted">渠道身份只是 L1，没有实名信息。填写姓名和身份证号码，'
                "由统一身份认证平台向核验服务（本演示的模拟服务）核对，通过后为 L2。</p>"
                + _bind_form(people))
    return _section(2, "step-bind", "实名绑定（L2）", body)


def _face_section(device: Device) -> str:
    if device.verification_id:
        body = ('<p class="muted">实人认证：手机上的人脸识别把结果交给核验服务，统一身份认证'
                "平台再凭核验编号向核验服务取结果，从不采信小程序自己的说法。这里模拟扫脸。</p>"
                '<div class="row"><form method="post" action="/face">'
                '<input type="hidden" name="outcome" value="passed">'
                '<button type="submit" id="face-pass">模拟扫脸：本人</button></form>'
                '<form method="post" action="/face"><input type="hidden" name="outcome" '
                'value="failed"><button type="submit" class="secondary" id="face-fail">'
                "模拟扫脸：非本人</button></form></div>")
    elif device.login is not None and device.login.verified_level == "L3":
        body = '<p class="done">已完成实人认证（L3）。</p>'
    else:
        body = '<p class="muted">完成实名绑定后可进行人脸核验，升级到 L3。</p>'
    return _section(3, "step-face", "人脸核验（L3）", body)


def _target_note(target: Target, acr: str) -> str:
    """What the person will meet on the way, given the session's level (the gateway steps
    a session up, never refuses it outright; what it can step up with is its own)."""
    if level_rank(target.needs) <= level_rank(acr):
        return "直接到达，不出现登录页"
    needs = f"需要 {_level(target.needs)}，当前会话 {_e(acr)}："
    if target.needs == "L2":
        return needs + "网关先用短信验证码升级认证（需在登录时授权手机号）"
    return needs + ("网关先用短信验证码和人脸核验升级认证（需在登录时授权手机号，且账户已完成"
                    "实人认证 L3；演示中人脸核验为模拟）")


def _switch_section(device: Device, targets: list[Target]) -> str:
    login = device.login
    if login is None:
        body = '<p class="muted">登录后可打开各市州、区县的政务服务系统。</p>'
        return _section(4, "step-switch", "打开城市服务", body)
    acr = str(login.claims.get("acr", ""))
    choices = "".join(
        f'<label class="choice"><input type="radio" name="target" value="{_e(t.key)}"'
        f'{" checked" if i == 0 else ""}><span>{_e(t.label)}<br>'
        f'<span class="muted">{_e(t.kind)} · {_target_note(t, acr)}</span></span></label>'
        for i, t in enumerate(targets))
    body = (
        '<p class="muted">小程序凭访问令牌向统一身份认证平台换取一次性链接，在 web-view 中'
        "打开：目标系统无需再次登录（无感切换）。</p>"
        f'<form method="post" action="/transfer">{choices}'
        '<button type="submit" id="get-link">获取一次性链接</button></form>'
        + _transfer_box(device))
    return _section(4, "step-switch", "打开城市服务（无感切换）", body)


def _transfer_box(device: Device) -> str:
    transfer = device.transfer
    if transfer is None:
        return ""
    target: Target = transfer["target"]
    url = str(transfer["url"])
    return (
        f'<div id="transfer"><p>一次性链接（{_e(transfer.get("expires_in"))} 秒内有效，只能使用'
        f"一次），目标：{_e(target.label)}</p>"
        f'<span class="url" id="transfer-url">{_e(url)}</span>'
        f'<a class="button" id="open-webview" href="{_e(url)}" target="_blank" '
        'rel="noopener noreferrer">在 web-view 中打开（新窗口）</a>'
        '<p class="muted">真实小程序的 web-view 里没有浏览器的任何 Cookie，也就没有网关的'
        "登录会话：这条链接本身就是凭证，网关据此建立会话后转到目标系统。演示中的新窗口与本"
        "浏览器共享 Cookie；若本浏览器已在网关登录了另一个人，网关会拒绝这条链接（防止登录"
        "劫持）。要看到与 web-view 完全相同的效果，请把链接复制到无痕窗口中打开。</p></div>")


def _history(device: Device) -> str:
    if not device.history:
        return ""
    rows = "".join(
        f"<tr><td>{_tag(user.channel)}{_e(user.nickname)}</td><td><code>{_e(sub)}</code></td>"
        f'<td class="nowrap">{_e(acr)} / {_e(level)}</td></tr>'
        for user, sub, acr, level in device.history)
    channels_by_sub: dict[str, set[str]] = {}
    for user, sub, _, _ in device.history:
        channels_by_sub.setdefault(sub, set()).add(user.channel)
    same = sorted(sub for sub, channels in channels_by_sub.items() if len(channels) > 1)
    note = "".join(
        f'<p class="ok flash" id="same-person">微信与支付宝身份已对应同一位居民：'
        f'<code class="nowrap">sub {_e(sub)}</code></p>' for sub in same)
    return (
        '<section id="history"><h2>本机登录记录</h2>'
        "<table><tr><th>渠道用户</th><th>sub</th><th class=\"nowrap\">acr / 核验</th></tr>"
        f"{rows}</table>{note}"
        '<p class="muted">同一位居民的微信和支付宝身份绑定后，登录得到同一个 sub。</p></section>')


def render(device: Device, *, users: list[User], people: list[Person],
           targets: list[Target]) -> HTMLResponse:
    flash = ""
    if device.flash is not None:
        kind, text = device.flash
        role = "alert" if kind == "error" else "status"
        flash = f'<p class="flash {_e(kind)}" id="flash" role="{role}">{_e(text)}</p>'
    if device.login is not None and device.user is not None:
        login = _status(device.login, device.user)
    else:
        login = _login_form(users)
    body = (
        '<p class="muted">本页在浏览器中模拟省级政务小程序（微信 / 支付宝）。登录凭证由模拟'
        "平台发放；令牌只保存在小程序服务端，浏览器只有本页自己的 Cookie。</p>"
        f"{flash}"
        f"{_section(1, 'step-login', '登录', login)}"
        f"{_bind_section(device, people)}{_face_section(device)}"
        f"{_switch_section(device, targets)}{_history(device)}")
    text = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{TITLE}</title><style>{_STYLE}</style></head>"
        f"<body><header>{TITLE}</header><main>{body}</main>"
        f"<script>{_FILL}</script></body></html>")
    return HTMLResponse(text, headers=_HEADERS)
