"""An upload's original file name, on every hop: the HTTP header, the object's metadata, the catalog.

Any name a filesystem allows travels: spaces, quotes, any script, even bytes that are not UTF-8.
- HTTP: `Content-Disposition: attachment; filename="<ASCII fallback>"; filename*=UTF-8''<percent-
  encoded UTF-8>` (RFC 6266 with RFC 8187), which a latin-1 header carries whatever the name.
  `content_disposition` makes it from a name as the OS gives it (undecodable bytes arrive
  surrogate-escaped in a `str`); `from_content_disposition` reads it back.
- Object metadata (S3 values are printable ASCII): `filename` = the name percent-encoded as UTF-8
  (`to_metadata` / `from_metadata`); `original-name`, which older uploads carry, is read too.
The name kept is text: bytes that are not UTF-8 become U+FFFD, any directory part is dropped, and
a name too long for the metadata is cut (with "..." before its extension).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote, unquote_to_bytes

METADATA_NAME = "filename"
LEGACY_METADATA_NAME = "original-name"  # older uploads: the name with unsafe characters as '_'
MAX_ENCODED_CHARS = 1024  # of the metadata value: within S3's 2 KiB of user metadata, beside the trace
MAX_NAME_CHARS = 1024  # of a name read back (metadata another client wrote may hold more: it is cut)
_EXTENDED = re.compile(r"""filename\*\s*=\s*([A-Za-z0-9_-]+)'[^']*'([^;\s]*)""", re.IGNORECASE)
_QUOTED = re.compile(r'filename\s*=\s*"((?:[^"\\]|\\.)*)"', re.IGNORECASE)
_TOKEN = re.compile(r"filename\s*=\s*([^;\s\"]+)", re.IGNORECASE)
_UNQUOTE = re.compile(r"\\(.)")
_UNSAFE_FALLBACK = re.compile(r'[^\x20-\x7e]|["\\%]')


def os_name_text(name: str) -> str:
    """A name as the OS gave it (undecodable bytes surrogate-escaped), as text: those bytes are U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def shown(name: str) -> str:
    """A name fit for one line of a terminal: OS bytes decoded, control characters escaped."""
    text = os_name_text(name)
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def content_disposition(name: str) -> str:
    """The header value naming the file `name` (an OS name: surrogate-escaped bytes allowed)."""
    raw = os_name_text(name).encode()
    fallback = _UNSAFE_FALLBACK.sub("_", raw.decode()) or "upload"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(raw, safe='')}"


def from_content_disposition(value: str) -> str | None:
    """The file name a Content-Disposition header gives: `filename*` (RFC 8187: UTF-8 or ISO-8859-1)
    over `filename` (a quoted string or a token), else None."""
    extended = _EXTENDED.search(value)
    if extended is not None:
        charset = extended.group(1).lower()
        encoding = "latin-1" if charset in ("iso-8859-1", "latin-1") else "utf-8"
        return clean(unquote_to_bytes(extended.group(2)).decode(encoding, "replace"))
    quoted = _QUOTED.search(value)
    if quoted is not None:
        return clean(_UNQUOTE.sub(r"\1", quoted.group(1)))
    token = _TOKEN.search(value)
    return clean(token.group(1)) if token is not None else None


def clean(name: str) -> str | None:
    """The file's own name: no directory part (a browser may send a path), no NUL, surrogates replaced;
    None when nothing is left."""
    name = name.replace("\x00", "").rsplit("/", 1)[-1]
    name = name.encode("utf-8", "replace").decode("utf-8")  # an unpaired surrogate becomes '?'
    return name or None


def to_metadata(name: str) -> dict[str, str]:
    """The object metadata that keeps `name`: percent-encoded UTF-8, cut to fit."""
    return {METADATA_NAME: quote(_fitting(name).encode(), safe="")}


def _fitting(name: str) -> str:
    """`name`, or a shortened form of it, whose encoding is at most MAX_ENCODED_CHARS."""
    if len(quote(name.encode(), safe="")) <= MAX_ENCODED_CHARS:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or len(extension) > 16:
        stem, extension = name, ""
    tail = "..." + (f".{extension}" if extension else "")
    budget = MAX_ENCODED_CHARS - len(quote(tail.encode(), safe=""))
    cut = []
    for char in stem:
        budget -= len(quote(char.encode(), safe=""))
        if budget < 0:
            break
        cut.append(char)
    return "".join(cut) + tail


def from_metadata(metadata: Mapping[str, str]) -> str | None:
    """The original file name an object's metadata keeps, or None."""
    encoded = metadata.get(METADATA_NAME)
    if encoded:
        name = clean(unquote_to_bytes(encoded).decode("utf-8", "replace"))
    else:
        legacy = metadata.get(LEGACY_METADATA_NAME)
        name = clean(legacy) if legacy else None
    return name[:MAX_NAME_CHARS] if name else None
