"""Credentials out of URLs before they are shown: health answers, error messages, logs.

A JSON-RPC or database URL often carries a secret: a user and password (`https://u:p@host`), an
API key as a path segment (Infura `/v3/<key>`, Alchemy `/v2/<key>`, QuickNode `/<token>/`) or in
the query (`?apikey=...`). `redact_url` keeps what an operator needs to recognise the endpoint
(scheme, host, port, the ordinary words of the path) and replaces the rest with `***`;
`redact_text` does the same inside free text, such as a transport error that quotes the URL or
only its path.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit, urlunsplit

MASK = "***"

# A path segment that is a secret rather than a word like "v3", "rpc" or "arbitrum-mainnet": a
# long token, or a shorter one mixing letters and digits. Over-redacting a segment is harmless.
_LONG_SEGMENT = 20
_MIXED_SEGMENT = 8
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()\[\]{},]+")


def _secret_segment(segment: str) -> bool:
    if len(segment) >= _LONG_SEGMENT:
        return True
    has_letter = any(c.isalpha() for c in segment)
    has_digit = any(c.isdigit() for c in segment)
    return len(segment) >= _MIXED_SEGMENT and has_letter and has_digit


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return parts if parts.scheme and parts.netloc else None


def redact_url(url: str) -> str:
    """The URL with its user, password, secret-looking path segments, query values and fragment
    replaced by `***`; anything that does not parse as a URL with a host is masked whole."""
    parts = _split(url)
    if parts is None:
        return url if "@" not in url and "?" not in url else MASK
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{MASK}@{host}" if "@" in parts.netloc else host
    path = "/".join(MASK if _secret_segment(s) else s for s in parts.path.split("/"))
    query = "&".join(
        f"{name}={MASK}" if sep else MASK
        for name, sep, _ in (pair.partition("=") for pair in parts.query.split("&") if pair)
    )
    return urlunsplit((parts.scheme, netloc, path, query, MASK if parts.fragment else ""))


def url_secrets(url: str) -> list[str]:
    """The substrings of `url` that `redact_text(text, url)` masks wherever they occur (its
    user and password, key-like path segments, query values): for a caller that masks them in
    many texts, found once."""
    return _secrets_of(url)


def _secrets_of(url: str) -> list[str]:
    """The secret substrings of a URL (userinfo and its parts, path segments, query values)."""
    parts = _split(url)
    if parts is None:
        return []
    found: list[str] = []
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        found += [userinfo, *userinfo.split(":", 1)]
    found += [s for s in parts.path.split("/") if _secret_segment(s)]
    for pair in parts.query.split("&"):
        value = pair.partition("=")[2]
        if value:
            found.append(value)
    if parts.fragment:
        found.append(parts.fragment)
    return found


def redact_text(text: str, url: str | None = None) -> str:
    """`text` with every URL in it redacted, and every secret of `url` masked wherever it occurs
    (a transport error may quote only the path: "Max retries exceeded with url: /v3/<key>")."""
    text = _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)
    if url is not None:
        # Longest first, so a password is not masked inside its "user:password" before that is.
        for secret in sorted(set(_secrets_of(url)), key=len, reverse=True):
            if len(secret) >= 3:  # too short to be a secret worth a false match in the text
                text = text.replace(secret, MASK)
    return text
