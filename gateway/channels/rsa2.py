"""Alipay's RSA2: SHA256withRSA (PKCS#1 v1.5) over its signing strings, base64.

Requests: every parameter but ``sign`` with a non-empty value, sorted by name, joined as
``k=v&k=v`` with raw (not URL-encoded) values. Responses: the JSON text of the
``<method>_response`` (or ``error_response``) value exactly as the gateway sent it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = [
    "load_private_key",
    "load_public_key",
    "response_content",
    "sign",
    "signing_string",
    "verify",
]


def signing_string(params: Mapping[str, str]) -> str:
    return "&".join(f"{name}={params[name]}" for name in sorted(params)
                    if name != "sign" and params[name] != "")


def sign(key: rsa.RSAPrivateKey, content: str) -> str:
    signature = key.sign(content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def verify(key: rsa.RSAPublicKey, content: str, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), content.encode("utf-8"),
                   padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def response_content(text: str, name: str) -> str | None:
    """The JSON text of ``name``'s value in the answer ``text``, byte for byte as sent
    (re-serialising would change spacing or escapes and break the signature)."""
    marker = f'"{name}"'
    start = text.find(marker)
    if start < 0:
        return None
    colon = text.find(":", start + len(marker))
    if colon < 0:
        return None
    begin = colon + 1
    while begin < len(text) and text[begin] in " \t\r\n":
        begin += 1
    try:
        _, end = json.JSONDecoder().raw_decode(text, begin)
    except ValueError:
        return None
    return text[begin:end]


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path}: not an RSA private key")
    return key


def load_public_key(path: Path) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"{path}: not an RSA public key")
    return key
