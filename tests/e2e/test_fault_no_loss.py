"""Nothing accepted is lost or stuck when `datafrost dev` is stopped and killed mid-pipeline
(issue 12): on the default broker and on RabbitMQ.

100 distinct JPEGs are uploaded through `POST /upload`; the platform gets Ctrl-C once 20 are ready,
is started again on the same data dir, SIGKILLed part-way, and started once more. Then every accepted
upload must end `ready` (or `rejected`) with exactly one catalog record: each is classified as done,
duplicated (more than one record for its key or its bytes) or lost (no final record), and lost is 0.
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from PIL import ImageDraw

from cli.status import sums
from shared import metrics
from tests.support import images
from tests.support.brokers import delete_platform_broker
from tests.support.platform import DevProcess, dev_token_headers

UPLOADS = 100
FINAL = ("ready", "rejected")


@pytest.fixture(params=["local", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def broker_args(request: pytest.FixtureRequest) -> Iterator[tuple[list[str], dict[str, str]]]:
    """`datafrost dev` arguments and environment for each broker, under a name of its own (on
    RabbitMQ its exchanges and queues are deleted afterwards, also when the test fails)."""
    name = f"fault-{uuid.uuid4().hex[:8]}"
    env = {"DATAFROST_BROKER_NAME": name}
    if request.param == "local":
        yield [], env
        return
    amqp_url = request.getfixturevalue("amqp_url")
    try:
        yield ["--broker", amqp_url], env
    finally:
        delete_platform_broker(amqp_url, name)


def distinct_jpeg(n: int) -> bytes:
    """A 2 MP (1600x1200) photo-like JPEG whose bytes differ from every other n's."""
    picture = images.scene((1600, 1200), seed=1)
    draw = ImageDraw.Draw(picture)
    draw.rectangle((10 + n * 5, 10, 30 + n * 5, 30), fill=(n * 2 % 256, 255 - n, (n * 37) % 256))
    return images.encode(picture, "JPEG", quality=85)


def records(dev: DevProcess) -> list[dict[str, Any]]:
    """Every catalog record, as admin sees them (all pages)."""
    found: list[dict[str, Any]] = []
    cursor = ""
    while True:
        status, body = dev.json("GET", f"/catalog/images?limit=200{cursor}")
        assert status == 200, body
        found.extend(body["images"])
        if not body.get("next_cursor"):
            return found
        cursor = f"&cursor={body['next_cursor']}"


def count_final(dev: DevProcess) -> int:
    return sum(1 for r in records(dev) if r["status"] in FINAL)


def wait_for_final(dev: DevProcess, at_least: int, timeout: float, poll: float = 0.2) -> int:
    deadline = time.monotonic() + timeout
    while (done := count_final(dev)) < at_least:
        if time.monotonic() > deadline:
            stuck = [(r["key"], r["status"]) for r in records(dev) if r["status"] not in FINAL]
            raise AssertionError(
                f"only {done} images final after {timeout:.0f}s, expected {at_least}; not final: {stuck}"
            )
        time.sleep(poll)
    return done


def wait_mid_pipeline(dev: DevProcess, timeout: float) -> int:
    """Wait until the restarted platform is delivering its backlog: some events delivered since it
    started and some still queued (read from the gateway's /metrics, which wakes no function). Returns
    the events still queued."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = dev.http.request("GET", dev.url + "/metrics", headers=dev_token_headers(dev.data_dir))
        assert answer.status == 200, answer.data
        text = answer.data.decode()
        delivered = sum(sums(text, "datafrost_broker_events_delivered", "trigger").values())
        queued = int(sum(sums(text, metrics.BROKER_QUEUE_DEPTH, "trigger").values()))
        if delivered >= 3 and queued > 0:
            return queued
        time.sleep(0.02)
    raise AssertionError("the restarted platform never delivered part of its backlog")


def restarted(previous: DevProcess, args: list[str], env: dict[str, str]) -> DevProcess:
    return DevProcess(previous.data_dir, "--keep-warm", *args, env=env).start()


def test_stop_and_kill_mid_pipeline_lose_nothing(
    tmp_path: Path, broker_args: tuple[list[str], dict[str, str]]
) -> None:
    args, env = broker_args
    running: list[DevProcess] = []
    try:
        first = DevProcess(tmp_path / "data", "--keep-warm", *args, env=env).start()
        running.append(first)
        bodies = [distinct_jpeg(n) for n in range(UPLOADS)]

        def upload(body: bytes) -> tuple[str, str, str]:
            response = first.request("POST", "/upload", body=body, headers={"X-Filename": "photo.jpg"})
            assert response.status == 201, response.data
            stored = json.loads(response.data)
            return stored["id"], stored["key"], hashlib.sha256(body).hexdigest()

        with ThreadPoolExecutor(4) as pool:
            accepted = list(pool.map(upload, bodies))
        assert len({sha for _, _, sha in accepted}) == UPLOADS

        done = wait_for_final(first, 20, timeout=60)
        assert done < UPLOADS, "the stop must land mid-pipeline"
        first.stop(signal.SIGINT)
        assert first.proc is not None and first.proc.returncode == 0

        second = restarted(first, args, env)
        running.append(second)
        waiting = wait_mid_pipeline(second, timeout=60)
        second.stop(signal.SIGKILL)
        assert waiting > 0  # the kill landed mid-pipeline: events were still queued

        third = restarted(second, args, env)
        running.append(third)
        wait_for_final(third, UPLOADS, timeout=90)

        found = records(third)
        by_key = Counter(r["key"] for r in found)
        by_sha = Counter(r["sha256"] for r in found)
        final = {r["id"] for r in found if r["status"] in FINAL}
        outcome = Counter(
            "lost"
            if image_id not in final
            else "duplicated"
            if by_key[key] > 1 or by_sha[sha] > 1
            else "done"
            for image_id, key, sha in accepted
        )
        assert outcome == {"done": UPLOADS}, outcome
        assert [r for r in found if r["status"] not in FINAL] == []  # none stuck in processing
    finally:
        for dev in running:
            if dev.proc is not None and dev.proc.poll() is None:
                dev.stop()
