"""`datafrost upload PATH...`: files and folders into the pipeline, with a progress bar."""

from __future__ import annotations

import argparse
import json
import mimetypes
import sys
from collections.abc import Iterator
from pathlib import Path

import urllib3

from cli.common import CliError, add_url, auth_headers

BAR_WIDTH = 30


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("upload", help="upload image files and folders; prints each image id")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    add_url(parser)
    parser.set_defaults(run=run)


def collect(paths: list[Path]) -> Iterator[Path]:
    """Every file named, and every file below every folder named (hidden files skipped), sorted."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
        elif path.is_file():
            yield path
        else:
            raise CliError(f"{path}: no such file or folder")


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _bar(done: int, total: int, sent: int) -> str:
    filled = BAR_WIDTH * done // max(total, 1)
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} files, {sent / 1e6:.1f} MB"


def upload_one(
    http: urllib3.PoolManager, url: str, path: Path, auth: dict[str, str]
) -> tuple[int, dict[str, str]]:
    data = path.read_bytes()
    headers = {
        "Content-Type": mimetypes.guess_type(path.name)[0] or "application/octet-stream",
        "X-Filename": path.name,
    }
    headers.update(auth)
    try:
        response = http.request("POST", url, body=data, headers=headers, timeout=120)
    except urllib3.exceptions.HTTPError as exc:
        raise CliError(
            f"cannot reach {url}: {exc.__class__.__name__} (is `datafrost dev` running?)"
        ) from None
    try:
        body = json.loads(response.data) if response.data else {}
    except ValueError:
        body = {"error": response.data.decode(errors="replace")[:200]}
    return response.status, body


def run(args: argparse.Namespace) -> int:
    files = list(collect(args.paths))
    if not files:
        raise CliError("no files to upload")
    http = urllib3.PoolManager(retries=False)
    url = args.url.rstrip("/") + "/upload"
    auth = auth_headers(args, "demo")
    interactive = sys.stderr.isatty()
    ok = failed = sent = 0
    for n, path in enumerate(files, 1):
        status, body = upload_one(http, url, path, auth)
        if status == 201:
            ok += 1
            sent += path.stat().st_size
            line = f"{body['id']}  {path}"
        else:
            failed += 1
            line = f"FAILED ({status})  {path}: {body.get('error', 'no reason given')}"
        if interactive:
            print("\r\033[K", end="", file=sys.stderr)
        print(line, flush=True)
        if interactive:
            print(_bar(n, len(files), sent), end="", file=sys.stderr, flush=True)
    if interactive:
        print(file=sys.stderr)
    print(f"uploaded {ok} of {len(files)} files ({sent / 1e6:.1f} MB); {failed} failed", file=sys.stderr)
    return 0 if failed == 0 else 1
