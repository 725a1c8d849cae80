"""`datafrost upload PATH...`: files and folders into the pipeline, with a progress bar.

Any name a filesystem allows is uploaded under its own name (`pipeline.filenames`: RFC 8187 in
Content-Disposition). Each file succeeds or fails on its own: one line per file (`<id>  <path>`,
`SKIPPED ...` or `FAILED ...`), a summary at the end, exit 1 when any failed.
`--skip-duplicates` hashes each file and asks the catalog first: bytes the owner has already uploaded
are skipped (and say which image has them).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mimetypes
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3

from cli.common import CliError, add_url, auth_headers
from pipeline import filenames

BAR_WIDTH = 30


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("upload", help="upload image files and folders; prints each image id")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    parser.add_argument(
        "--skip-duplicates",
        action="store_true",
        help="skip files whose bytes (sha256) you have uploaded already, as the catalog knows them",
    )
    add_url(parser)
    parser.set_defaults(run=run)


@dataclass(frozen=True)
class Missing:
    """A path named on the command line that is neither a file nor a folder."""

    path: Path


def collect(paths: list[Path]) -> Iterator[Path | Missing]:
    """Every file named, and every file below every folder named (hidden files skipped), sorted."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
        elif path.is_file():
            yield path
        else:
            yield Missing(path)


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _bar(done: int, total: int, sent: int) -> str:
    filled = BAR_WIDTH * done // max(total, 1)
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} files, {sent / 1e6:.1f} MB"


class Uploader:
    """One platform, one caller: uploads files and asks the catalog about their bytes."""

    def __init__(self, base: str, auth: dict[str, str]) -> None:
        self.base, self.auth = base.rstrip("/"), auth
        self.http = urllib3.PoolManager(retries=False)

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        """(status, JSON body); a connection failure is status 0 with the error."""
        headers = {**kwargs.pop("headers", {}), **self.auth}
        try:
            response = self.http.request(method, self.base + path, headers=headers, timeout=120, **kwargs)
        except urllib3.exceptions.HTTPError as exc:
            return 0, {"error": f"cannot reach {self.base}: {exc.__class__.__name__}"}
        try:
            body = json.loads(response.data) if response.data else {}
        except ValueError:
            body = {"error": response.data.decode(errors="replace")[:200]}
        return response.status, body if isinstance(body, dict) else {"error": str(body)[:200]}

    def check_reachable(self) -> None:
        status, _ = self.request("GET", "/healthz")
        if status != 200:
            raise CliError(f"cannot reach {self.base} (is `datafrost dev` running?)")

    def upload(self, name: str, data: bytes) -> tuple[int, dict[str, Any]]:
        headers = {
            "Content-Type": mimetypes.guess_type(filenames.os_name_text(name))[0]
            or "application/octet-stream",
            "Content-Disposition": filenames.content_disposition(name),
        }
        return self.request("POST", "/upload", body=data, headers=headers)

    def uploaded_already(self, data: bytes) -> tuple[str, str | None] | None:
        """(id, filename) of the caller's first image with these bytes, or None. The catalog knows an
        image's sha256 once it is analyzed; an error asking it fails this file only."""
        query = urlencode({"sha256": hashlib.sha256(data).hexdigest(), "limit": 1})
        status, body = self.request("GET", f"/catalog/images?{query}")
        if status != 200:
            raise UploadFailed(f"--skip-duplicates: the catalog answered {status}: {body.get('error')}")
        found = body.get("images") or []
        if not found:
            return None
        first = found[0]["duplicate_of"] or found[0]["id"]
        if first == found[0]["id"]:
            return first, found[0].get("filename")
        _, original = self.request("GET", f"/catalog/images/{first}")
        return first, original.get("filename")


class UploadFailed(Exception):
    """One file could not be uploaded (the message says why); the others go on."""


UPLOADED, SKIPPED, FAILED = "uploaded", "skipped", "failed"


def upload_one(uploader: Uploader, path: Path, skip_duplicates: bool) -> tuple[str, str, int]:
    """(outcome, the line to print, bytes sent) for one file; its own failure is an outcome."""
    shown = filenames.shown(str(path))
    try:
        data = path.read_bytes()
        earlier = uploader.uploaded_already(data) if skip_duplicates else None
    except OSError as exc:
        return FAILED, f"FAILED  {shown}: cannot read it: {exc.strerror or exc}", 0
    except UploadFailed as exc:
        return FAILED, f"FAILED  {shown}: {exc}", 0
    if earlier is not None:
        the_id, name = earlier
        named = f" ({filenames.shown(name)})" if name else ""
        return SKIPPED, f"SKIPPED  {shown}: already uploaded as {the_id}{named}", 0
    status, body = uploader.upload(path.name, data)
    if status == 201:
        kept = str(body.get("filename") or "")  # differs when the upload function cut it to fit
        note = (
            f"  (named {filenames.shown(kept)})" if kept and kept != filenames.os_name_text(path.name) else ""
        )
        return UPLOADED, f"{body['id']}  {shown}{note}", len(data)
    reason = body.get("error", "no reason given")
    return FAILED, f"FAILED ({status or 'no answer'})  {shown}: {reason}", 0


def run(args: argparse.Namespace) -> int:
    files = list(collect(args.paths))
    if not files:
        raise CliError("no files to upload")
    uploader = Uploader(args.url, {})
    uploader.check_reachable()
    uploader.auth = auth_headers(args, "demo")
    interactive = sys.stderr.isatty()
    ok = skipped = failed = sent = 0
    for n, path in enumerate(files, 1):
        if isinstance(path, Missing):
            outcome, line, size = (
                FAILED,
                f"FAILED  {filenames.shown(str(path.path))}: no such file or folder",
                0,
            )
        else:
            outcome, line, size = upload_one(uploader, path, args.skip_duplicates)
        failed += outcome == FAILED
        skipped += outcome == SKIPPED
        ok += outcome == UPLOADED
        sent += size
        if interactive:
            print("\r\033[K", end="", file=sys.stderr)
        print(line, flush=True)
        if interactive:
            print(_bar(n, len(files), sent), end="", file=sys.stderr, flush=True)
    if interactive:
        print(file=sys.stderr)
    summary = f"uploaded {ok} of {len(files)} files ({sent / 1e6:.1f} MB)"
    summary += f"; {skipped} skipped (already uploaded)" if args.skip_duplicates else ""
    print(f"{summary}; {failed} failed", file=sys.stderr)
    return 0 if failed == 0 else 1
