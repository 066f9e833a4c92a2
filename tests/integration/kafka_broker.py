"""Pytest plugin: a real Kafka broker for the tests that need one.

Register from tests/conftest.py with ``pytest_plugins = ["tests.integration.kafka_broker"]``.

The session fixture ``kafka_bootstrap`` returns a bootstrap-servers string, taken
from the first of these that works:

1. ``KAFKA_BOOTSTRAP_SERVERS`` from the environment (an already running broker);
2. a testcontainers ``KafkaContainer``, if testcontainers is importable and a
   Docker engine answers a ping;
3. ``bash infra/kafka/kafka.sh up``: a local single-node KRaft broker from the
   Maven Central jars, on 127.0.0.1:$KAFKA_PORT (default 9092). It is stopped at
   session end only if this fixture started it.

It never skips: if no broker can be had, the test fails with the reason.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_SH = REPO_ROOT / "infra" / "kafka" / "kafka.sh"
UP_TIMEOUT_S = 300

_Cleanup = Callable[[], None] | None


def _check_reachable(bootstrap: str, timeout: float = 15.0) -> None:
    """Raise if no broker answers a metadata request at ``bootstrap``."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000})
    md = admin.list_topics(timeout=timeout)
    if not md.brokers:
        raise RuntimeError(f"no brokers in metadata from {bootstrap}")


def _docker_kafka() -> tuple[str | None, _Cleanup, str]:
    """Start a KafkaContainer if Docker is usable; (bootstrap, cleanup, why-not)."""
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=5)
        client.ping()
    except Exception as exc:  # no SDK, no socket, no daemon, ...
        return None, None, f"no Docker engine ({type(exc).__name__}: {exc})"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                from testcontainers.community.kafka import KafkaContainer  # type: ignore
            except Exception:
                from testcontainers.kafka import KafkaContainer  # type: ignore
    except Exception as exc:
        return None, None, f"testcontainers not importable ({type(exc).__name__}: {exc})"
    container = None
    try:
        container = KafkaContainer()
        container.start()
        bootstrap = container.get_bootstrap_server()
    except Exception as exc:
        if container is not None:
            try:
                container.stop()
            except Exception:
                pass
        return None, None, f"KafkaContainer failed to start ({type(exc).__name__}: {exc})"

    def _stop() -> None:
        try:
            container.stop()
        except Exception:
            pass

    return bootstrap, _stop, ""


def _run_kafka_sh(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(KAFKA_SH), *args],
        cwd=str(REPO_ROOT),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def _local_kafka() -> tuple[str | None, _Cleanup, str]:
    """Start (or reuse) the broker of infra/kafka/kafka.sh."""
    if not KAFKA_SH.is_file():
        return None, None, f"{KAFKA_SH} not found"
    bootstrap = f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}"
    try:
        already_running = _run_kafka_sh("status", timeout=30).returncode == 0
        up = _run_kafka_sh("up", timeout=UP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None, None, f"'bash {KAFKA_SH} up' did not finish within {UP_TIMEOUT_S}s"
    except OSError as exc:
        return None, None, f"cannot run bash ({exc})"
    if up.returncode != 0:
        return None, None, f"'bash {KAFKA_SH} up' exited {up.returncode}:\n{up.stdout}"

    def _stop() -> None:
        try:
            _run_kafka_sh("down", timeout=60)
        except Exception:
            pass

    return bootstrap, (None if already_running else _stop), ""


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a running Kafka broker (see module docstring)."""
    reasons = []
    bootstrap: str | None = None
    cleanup: _Cleanup = None

    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if env:
        try:
            _check_reachable(env)
        except Exception as exc:
            pytest.fail(
                f"KAFKA_BOOTSTRAP_SERVERS={env!r} is set but no broker answers: {exc}",
                pytrace=False,
            )
        yield env
        return

    for start in (_docker_kafka, _local_kafka):
        bootstrap, cleanup, why = start()
        if bootstrap:
            break
        reasons.append(f"{start.__name__}: {why}")

    if not bootstrap:
        pytest.fail(
            "could not obtain a Kafka broker:\n  "
            + "\n  ".join(reasons)
            + "\nset KAFKA_BOOTSTRAP_SERVERS, start Docker, or fix 'bash infra/kafka/kafka.sh up'",
            pytrace=False,
        )
    try:
        try:
            _check_reachable(bootstrap)
        except Exception as exc:
            pytest.fail(f"Kafka broker at {bootstrap} does not answer: {exc}", pytrace=False)
        yield bootstrap
    finally:
        if cleanup is not None:
            cleanup()


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int = 1,
    replication_factor: int = 1,
    timeout: float = 30.0,
    config: dict | None = None,
) -> None:
    """Create ``name`` and wait until every partition has a leader."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(
        name,
        num_partitions=partitions,
        replication_factor=replication_factor,
        config=dict(config or {}),
    )
    futures = admin.create_topics([new], operation_timeout=timeout, request_timeout=timeout)
    futures[name].result(timeout=timeout)

    deadline = time.monotonic() + timeout
    while True:
        md = admin.list_topics(topic=name, timeout=max(1.0, deadline - time.monotonic()))
        topic = md.topics.get(name)
        if (
            topic is not None
            and topic.error is None
            and len(topic.partitions) == partitions
            and all(p.leader >= 0 for p in topic.partitions.values())
        ):
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"topic {name!r} not ready after {timeout}s (metadata: {topic})")
        time.sleep(0.1)


@pytest.fixture
def unique_topic_prefix(request: pytest.FixtureRequest) -> str:
    """A per-test prefix for topic and group names, e.g. ``t-test_roundtrip-1a2b3c4d``."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", request.node.name)[:80]
    return f"t-{base}-{uuid.uuid4().hex[:8]}"
