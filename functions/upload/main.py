"""upload: `POST /upload` takes one image (raw body or multipart field `file`) into the uploads bucket;
`POST /upload/presign` hands out a URL for one direct PUT under the caller's prefix.

Consumes: HTTP only. Emits: nothing itself; the store's notification of the new object starts the
pipeline, exactly as for a file dropped straight into the bucket.
The client's file name (multipart filename, Content-Disposition with RFC 8187 `filename*`, or the
older X-Filename) is kept on the object as metadata `filename` (`pipeline.filenames`), which its
notification carries to the catalog.
Idempotent: every upload gets a fresh key `<owner>/<uuid><ext>`, so a retried request stores a second
copy rather than overwriting anything (the catalog's sha256 shows duplicates).
"""

from __future__ import annotations

import logging
import uuid

import flask

from functions.context import Call
from functions.runtime import json_response, target
from functions.spec import PUBLIC, UPLOAD_BODY, FunctionSpec, route
from functions.upload import presign
from functions.upload.used_urls import UsedUrls
from pipeline import filenames
from pipeline.events import image_id
from pipeline.ownership import owner_segment
from shared import tracing
from shared.auth.identity import EDITOR
from shared.errors import HttpError
from shared.logging import log_fields
from shared.objectstore.factory import open_store
from shared.settings import Settings

log = logging.getLogger("datafrost.upload")
STORED_AS = {  # sniffed format -> (key extension, Content-Type)
    "JPEG": (".jpg", "image/jpeg"),
    "PNG": (".png", "image/png"),
    "WEBP": (".webp", "image/webp"),
    "GIF": (".gif", "image/gif"),
    "TIFF": (".tiff", "image/tiff"),
    "BMP": (".bmp", "image/bmp"),
    "AVIF": (".avif", "image/avif"),
    "HEIF": (".heic", "image/heic"),
}
USED_URLS_DIR = "presigned-uploads-used"  # in the data dir: one marker per used presigned URL


def _read_limited(request: flask.Request, limit: int) -> tuple[bytes, str]:
    """The uploaded bytes and the client's file name; 413 as soon as the limit is passed."""
    if request.content_length is not None and request.content_length > limit + UPLOAD_BODY.slack:
        raise HttpError(f"upload of {request.content_length} bytes is over the limit of {limit} bytes", 413)
    if request.mimetype == "multipart/form-data":
        request.max_content_length = limit + UPLOAD_BODY.slack
        upload = request.files.get("file")
        if upload is None:
            raise HttpError("multipart upload needs a field named 'file'")
        data = upload.stream.read(limit + 1)
        name = upload.filename or ""
    else:
        data = request.stream.read(limit + 1)
        name = _header_name(request)
    if len(data) > limit:
        raise HttpError(f"upload is over the limit of {limit} bytes", 413)
    if not data:
        raise HttpError("the upload is empty: send the image as the body or as multipart field 'file'")
    return data, name


def _header_name(request: flask.Request) -> str:
    """The file name of a raw upload: Content-Disposition (RFC 8187 `filename*` for any name), else
    X-Filename as older clients send it (latin-1 text, the only kind a header carries as it is)."""
    disposition = request.headers.get("Content-Disposition")
    if disposition:
        return filenames.from_content_disposition(disposition) or ""
    legacy = request.headers.get("X-Filename", "")
    try:  # curl and friends send the UTF-8 bytes as they are: werkzeug read them as latin-1
        return legacy.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return legacy


def _accepted_image(data: bytes) -> tuple[str, str]:
    """(key extension, Content-Type) of an accepted image; 415 for anything else."""
    from pipeline.images import readable_formats, sniff_format  # Pillow: only when bytes arrive

    accepted = readable_formats()
    found = sniff_format(data)
    if found is None or found not in accepted:
        names = ", ".join(accepted)
        raise HttpError(f"unsupported media type: the content is not an accepted image ({names})", 415)
    return STORED_AS[found]


def create_presigned(call: Call) -> flask.Response:
    """`POST /upload/presign` {"filename"?, "expires_in"?}: a URL for one PUT under the caller's prefix."""
    request = call.request
    if (request.content_length or 0) > presign.MAX_BODY_BYTES:
        raise HttpError(f"the body is over the limit of {presign.MAX_BODY_BYTES} bytes", 413)
    asked = presign.PresignRequest.from_body(request.get_data())
    key = presign.presigned_key(owner_segment(call.identity), asked.filename)
    config = call.settings
    url = presign.presign(
        call.client(open_store),
        config,
        config.public_url or request.host_url.rstrip("/"),
        key,
        asked.expires_in,
    )
    bucket = config.uploads_bucket
    answer = {"method": "PUT", "url": url, "bucket": bucket, "key": key, "expires_in": asked.expires_in}
    return json_response({**answer, "id": image_id(bucket, key)})


def _trace_metadata() -> dict[str, str]:
    """The upload's trace, kept on the object: its notification continues the same trace."""
    traceparent = tracing.current()
    return {tracing.TRACEPARENT: traceparent} if traceparent else {}


def used_urls(config: Settings) -> UsedUrls:
    return UsedUrls(config.data_dir / USED_URLS_DIR)


def put_presigned(call: Call) -> flask.Response:
    """The local store's presigned PUT: the URL's signature is the credential, good for one image."""
    request, config = call.request, call.settings
    if config.store != "local":
        raise HttpError("presigned uploads go straight to the object store here, not through this URL", 404)
    key = call.params["key"]  # the path was decoded once (shared.paths): never again
    expires = presign.check_local_signature(
        config, key, request.args.get("expires", ""), request.args.get("signature", "")
    )
    data, _ = _read_limited(request, config.max_upload_bytes)
    _, content_type = _accepted_image(data)
    used, store = call.client(used_urls), call.client(open_store)
    if not used.claim(key, expires):
        raise HttpError("this upload URL has already been used: ask for a new one", 403)
    if store.stat(config.uploads_bucket, key) is not None:
        raise HttpError(f"an object {key} exists already: an upload never replaces one", 409)
    try:
        store.put(config.uploads_bucket, key, data, content_type, _trace_metadata())
    except BaseException:
        used.release(key, expires)  # nothing was stored: the URL may be tried again
        raise
    return json_response(
        {"id": image_id(config.uploads_bucket, key), "bucket": config.uploads_bucket, "key": key}
    )


def upload(call: Call) -> flask.Response:
    request, config = call.request, call.settings
    owner = owner_segment(call.identity)
    data, original_name = _read_limited(request, config.max_upload_bytes)
    extension, content_type = _accepted_image(data)
    key = f"{owner}/{uuid.uuid4().hex}{extension}"
    name = filenames.clean(original_name) if original_name else None
    metadata = filenames.to_metadata(name) if name else {}
    metadata.update(_trace_metadata())
    call.client(open_store).put(config.uploads_bucket, key, data, content_type, metadata)
    the_id = image_id(config.uploads_bucket, key)
    log.info("stored upload", extra=log_fields(image_id=the_id, key=key, bytes=len(data)))
    kept = filenames.from_metadata(metadata)  # the name as the catalog will show it (cut if very long)
    return json_response({"id": the_id, "bucket": config.uploads_bucket, "key": key, "filename": kept}, 201)


SPEC = FunctionSpec(
    name="upload",
    description="Accepts image uploads (raw or multipart) into the uploads bucket",
    routes=(
        route("POST", "/", EDITOR, upload, max_body=UPLOAD_BODY),
        route("POST", "/presign", EDITOR, create_presigned),
        # a presigned upload: the URL's signature is the credential, which the handler checks
        route("PUT", "/put/<path:key>", PUBLIC, put_presigned, max_body=UPLOAD_BODY),
    ),
)
handle = target(SPEC)
