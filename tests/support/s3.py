"""A real S3-compatible server on loopback for the tests: moto's server, in a thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

ACCESS_KEY = "datafrost-test"
SECRET_KEY = "se/cret+key"  # reserved characters: the store URL percent-encodes them
SECRET_IN_URL = "se%2Fcret%2Bkey"


@pytest.fixture(scope="session")
def s3_url() -> Iterator[str]:
    """`http://KEY:SECRET@127.0.0.1:PORT` of a moto S3 server that lives for the test session."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{ACCESS_KEY}:{SECRET_IN_URL}@{host}:{port}"
    server.stop()
