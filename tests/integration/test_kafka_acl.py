"""The control plane is locked: only the operator can halt a market, and this file proves it.

Anyone who can produce to the control topic can halt every market. A broker of our own runs in
secure mode (``KAFKA_SECURITY=scram bash infra/kafka/kafka.sh up``: SASL/SCRAM-SHA-256 on the client
port, KRaft's StandardAuthorizer, nothing allowed without an ACL) with the ACLs of the deployment
in docs/kafka-security.md. Then the product's own kill switch, ``mmflow control``, runs as an
intruder and as the operator, and plain clients try every protected topic as every principal.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from mmflow.config import KafkaConfig, load_settings
from mmflow.connectors.recorder import read_topic
from mmflow.models import Control
from mmflow.wire import decode_input, encode
from tests.integration.test_metrics_http import free_port

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
BTC = "binance-futures:BTCUSDT"

CONTROL = "mmflow.control"
FILLS = "mmflow.fills"
INTENTS = "mmflow.intents"
POSITIONS = "mmflow.positions"
MARKETDATA = "mmflow.marketdata"
JOURNAL = "mmflow.fills.journal"
DEADLETTER = "mmflow.deadletter"
STATE = "mmflow.state"
ORDERS = "mmflow.orders"
TOPICS = (CONTROL, FILLS, INTENTS, POSITIONS, MARKETDATA, JOURNAL, DEADLETTER, STATE, ORDERS)
#: The topics whose writer must be one principal: a forged message there moves the books or halts.
PROTECTED = (CONTROL, FILLS, INTENTS, POSITIONS)

# The deployment of docs/kafka-security.md (keep the two the same).
WRITES = {
    "operator": (CONTROL,),
    "venue": (FILLS, POSITIONS, ORDERS),
    "flow": (INTENTS, JOURNAL, DEADLETTER, STATE),
    "feed": (MARKETDATA,),
}
READS = {
    "flow": (MARKETDATA, FILLS, CONTROL, POSITIONS),
    "venue": (MARKETDATA, INTENTS),
    "operator": (MARKETDATA, JOURNAL, INTENTS, DEADLETTER, STATE),
}
#: Consumer groups, by a prefixed pattern: mmflow-source, mmflow-venue, ...
GROUPS = {"flow": "mmflow", "venue": "mmflow"}
#: ... and the recorder's one group for the operator (`mmflow record`), a literal name.
LITERAL_GROUPS = {"operator": "mmflow-recorder"}

USERS = ("admin", "operator", "flow", "venue", "feed", "intruder")
# Fresh per run, so finding one in an output can only mean it leaked.
PASSWORDS = {user: f"{user}-{secrets.token_hex(12)}" for user in USERS}
DENIED = "TOPIC_AUTHORIZATION_FAILED"


def sasl(user: str) -> dict[str, str]:
    return {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": user,
        "sasl.password": PASSWORDS[user],
    }


def client(bootstrap: str, user: str, **more: str) -> dict[str, str]:
    return {"bootstrap.servers": bootstrap, **sasl(user), **more}


def kafka_sh(*args: str, env: dict[str, str]) -> None:
    done = subprocess.run(
        ["bash", str(REPO / "infra" / "kafka" / "kafka.sh"), *args],
        env={**os.environ, **env},
        timeout=300,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"kafka.sh {' '.join(args)}: {done.stdout[-1000:]} {done.stderr[-2000:]}"


def secure_broker(data_dir: Path) -> dict[str, str]:
    """A secure broker of our own on free ports (a port may be taken between probe and bind, so
    try fresh ones a few times)."""
    last: AssertionError | None = None
    for attempt in range(3):
        env = {
            "KAFKA_PORT": str(free_port()),
            "KAFKA_CONTROLLER_PORT": str(free_port()),
            "KAFKA_DATA_DIR": str(data_dir / f"kafka{attempt}"),
            "KAFKA_HEAP": "512m",
            "KAFKA_SECURITY": "scram",
            "KAFKA_SCRAM_USERS": ";".join(f"{u}:{p}" for u, p in PASSWORDS.items()),
        }
        try:
            kafka_sh("up", env=env)
            return env
        except AssertionError as err:
            last = err
            kafka_sh("down", "--purge", env=env)
    raise AssertionError(f"could not start a secure broker: {last}")


def deployment_acls() -> list[AclBinding]:
    def allow(kind: ResourceType, name: str, pattern: ResourcePatternType, user: str, op: AclOperation):
        return AclBinding(kind, name, pattern, f"User:{user}", "*", op, AclPermissionType.ALLOW)

    topic, group = ResourceType.TOPIC, ResourceType.GROUP
    literal, prefixed = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
    acls = [allow(topic, t, literal, u, AclOperation.WRITE) for u, ts in WRITES.items() for t in ts]
    acls += [allow(topic, t, literal, u, AclOperation.READ) for u, ts in READS.items() for t in ts]
    acls += [allow(group, g, prefixed, u, AclOperation.READ) for u, g in GROUPS.items()]
    acls += [allow(group, g, literal, u, AclOperation.READ) for u, g in LITERAL_GROUPS.items()]
    return acls


def set_up(bootstrap: str) -> None:
    """As admin: the topics and the ACLs, then wait until the broker enforces all of them."""
    admin = AdminClient(client(bootstrap, "admin"))
    for future in admin.create_topics([NewTopic(t, 1, 1) for t in TOPICS]).values():
        future.result(30)
    acls = deployment_acls()
    for future in admin.create_acls(acls).values():
        future.result(30)
    everything = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    deadline = time.monotonic() + 20
    while True:
        seen = admin.describe_acls(everything).result(10)
        topics = admin.list_topics(timeout=10).topics
        if len(seen) == len(acls) and all(t in topics and not topics[t].error for t in TOPICS):
            return
        assert time.monotonic() < deadline, f"{len(seen)}/{len(acls)} ACLs, topics {sorted(topics)}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def secure(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """(bootstrap, data dir) of a secure broker with the deployment's topics and ACLs."""
    env = secure_broker(tmp_path_factory.mktemp("kafka-acl"))
    try:
        bootstrap = f"127.0.0.1:{env['KAFKA_PORT']}"
        set_up(bootstrap)
        yield bootstrap, Path(env["KAFKA_DATA_DIR"])
    finally:
        kafka_sh("down", "--purge", env=env)


def control(bootstrap: str, user: str, *args: str, tag: str) -> subprocess.CompletedProcess:
    """``mmflow control ARGS`` as ``user``, its credentials given the documented way (kafka.extra)."""
    creds = [f"kafka.extra.{k}={v}" for k, v in sasl(user).items()]
    cmd = [sys.executable, "-m", "mmflow.cli", "control", *args, "--reason", tag, "--bootstrap", bootstrap]
    cmd += [a for s in creds for a in ("--set", s)]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)


def admin_kafka(bootstrap: str) -> KafkaConfig:
    sets = [
        f"kafka.bootstrap_servers={bootstrap}",
        *(f"kafka.extra.{k}={v}" for k, v in sasl("admin").items()),
    ]
    return load_settings(None, None, sets).kafka


def on_control_topic(bootstrap: str) -> list[Control]:
    """Every command on the control topic, read back as admin."""
    commands = [decode_input(raw) for raw in read_topic(admin_kafka(bootstrap), CONTROL, idle_s=2.0)]
    assert all(isinstance(c, Control) for c in commands)
    return commands


def command(reason: str) -> bytes:
    """A halt for BTC, its reason saying who sent it and why."""
    cmd = Control(
        market=BTC, ts=time.time_ns() // 1000, command_id=uuid.uuid4().hex, action="halt", reason=reason
    )
    return encode(cmd)


def test_an_intruder_can_neither_halt_nor_resume(secure) -> None:
    bootstrap, _ = secure
    runs = {
        "halt": control(bootstrap, "intruder", "halt", "--market", BTC, tag="cli intruder halt"),
        "resume": control(bootstrap, "intruder", "resume", "--market", BTC, tag="cli intruder resume"),
        "halt --all": control(bootstrap, "intruder", "halt", "--all", tag="cli intruder halt-all"),
    }
    for done in runs.values():
        assert PASSWORDS["intruder"] not in done.stdout + done.stderr
    # The broker refused every one of them: nothing of the intruder's reached the flow.
    assert [c for c in on_control_topic(bootstrap) if c.reason.startswith("cli intruder")] == []
    # And the command says so: an operator must not believe a refused halt went through.
    said = {
        what: (done.returncode, done.stdout.strip(), done.stderr.strip()[-300:])
        for what, done in runs.items()
    }
    assert all(code != 0 for code, _, _ in said.values()), f"a refused command exited 0: {said}"


def test_the_operator_halts_and_resumes(secure) -> None:
    bootstrap, _ = secure
    halt = control(bootstrap, "operator", "halt", "--market", BTC, tag="cli operator halt")
    resume = control(bootstrap, "operator", "resume", "--all", tag="cli operator resume-all")
    sent = {}
    for done in (halt, resume):
        assert done.returncode == 0, done.stderr[-2000:]
        assert PASSWORDS["operator"] not in done.stdout + done.stderr
        found = re.search(r"sent to mmflow\.control \(([0-9a-f]{32})\)", done.stdout)
        assert found, done.stdout
        sent[found.group(1)] = done
    commands = {c.command_id: c for c in on_control_topic(bootstrap)}
    got = [(commands[i].action, commands[i].market, commands[i].reason) for i in sent]
    assert got == [("halt", BTC, "cli operator halt"), ("resume", "*", "cli operator resume-all")]


def produce_as(bootstrap: str, user: str, topics: tuple[str, ...]) -> dict[str, str | None]:
    """One message to each topic as ``user``; topic -> the delivery error's name (None: written)."""
    outcome: dict[str, str | None] = {}

    def report(err: KafkaError | None, msg) -> None:
        outcome[msg.topic()] = err.name() if err is not None else None

    prod = Producer(client(bootstrap, user, **{"message.timeout.ms": "10000"}))
    for topic in topics:
        prod.produce(topic, key=BTC.encode(), value=command(f"matrix {user}"), on_delivery=report)
    assert prod.flush(20) == 0
    return outcome


def test_only_its_writer_may_write_a_protected_topic(secure) -> None:
    bootstrap, _ = secure
    for user in ("operator", "flow", "venue", "feed", "intruder"):
        expected = {t: (None if t in WRITES.get(user, ()) else DENIED) for t in PROTECTED}
        assert produce_as(bootstrap, user, PROTECTED) == expected, user
    # What the broker holds agrees: on each protected topic, messages of its one writer only.
    for topic in PROTECTED:
        values = read_topic(admin_kafka(bootstrap), topic, idle_s=2.0)
        writers = {c.reason.split()[1] for c in map(decode_input, values) if c.reason.startswith("matrix")}
        assert writers == {u for u, ts in WRITES.items() if topic in ts}, topic
    # The two named in the issue, spelled out.
    assert produce_as(bootstrap, "intruder", (FILLS,)) == {FILLS: DENIED}
    assert produce_as(bootstrap, "flow", (CONTROL,)) == {CONTROL: DENIED}


def subscribe_as(bootstrap: str, user: str, topic: str) -> tuple[list[bytes], str | None]:
    """Read ``topic`` as ``user`` the way the services do (a subscription in an ``mmflow-`` group),
    from the beginning to its end, and commit: (values, the first error's name or None)."""
    conf = {"group.id": "mmflow-acl-check", "auto.offset.reset": "earliest", "enable.partition.eof": "true"}
    consumer = Consumer(client(bootstrap, user, **conf))
    consumer.subscribe([topic])
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is None:
                values.append(msg.value())
            elif msg.error().code() == KafkaError._PARTITION_EOF:
                consumer.commit(asynchronous=False)  # the group's offsets: needs READ on the group
                return values, None
            else:
                return values, msg.error().name()
        raise AssertionError(f"{user} reached neither the end of {topic} nor an error")
    finally:
        consumer.close()


def test_the_flow_reads_the_control_topic_and_nobody_else(secure) -> None:
    bootstrap, _ = secure
    prod = Producer(client(bootstrap, "admin"))
    prod.produce(CONTROL, key=BTC.encode(), value=command("reader check"))
    assert prod.flush(20) == 0
    values, error = subscribe_as(bootstrap, "flow", CONTROL)
    assert error is None
    assert "reader check" in [decode_input(v).reason for v in values]
    # venue may use mmflow-* groups but not this topic; feed and intruder may use neither.
    assert subscribe_as(bootstrap, "venue", CONTROL) == ([], DENIED)
    for user in ("feed", "intruder"):
        values, error = subscribe_as(bootstrap, user, CONTROL)
        assert values == [] and error in (DENIED, "GROUP_AUTHORIZATION_FAILED"), (user, error)


# An Admin client straight to the controller port (KIP-919 bootstrap.controllers; librdkafka has no
# such client). Arguments: the port's address, then user/password pairs, "-" "-" for none. Each pair
# tries to create a harmless ACL there and prints "PROBE <user> OK" or "PROBE <user> <error class>".
CONTROLLER_PROBE = """
import java.util.*;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.acl.*;
import org.apache.kafka.common.resource.*;

public class Probe {
  public static void main(String[] a) throws Exception {
    AclBinding harmless = new AclBinding(
        new ResourcePattern(ResourceType.TOPIC, "acl-probe", PatternType.LITERAL),
        new AccessControlEntry("User:nobody", "*", AclOperation.READ, AclPermissionType.ALLOW));
    for (int i = 1; i + 1 < a.length; i += 2) {
      Properties p = new Properties();
      p.put("bootstrap.controllers", a[0]);
      p.put("default.api.timeout.ms", "5000");
      p.put("request.timeout.ms", "3000");
      if (!a[i].equals("-")) {
        p.put("security.protocol", "SASL_PLAINTEXT");
        p.put("sasl.mechanism", "PLAIN");
        p.put("sasl.jaas.config", "org.apache.kafka.common.security.plain.PlainLoginModule required"
            + " username=\\"" + a[i] + "\\" password=\\"" + a[i + 1] + "\\";");
      }
      try (Admin admin = Admin.create(p)) {
        admin.createAcls(List.of(harmless)).all().get();
        System.out.println("PROBE " + a[i] + " OK");
      } catch (ExecutionException e) {
        System.out.println("PROBE " + a[i] + " " + e.getCause().getClass().getSimpleName());
      }
    }
  }
}
"""


def test_the_controller_port_takes_the_admin_only(secure, tmp_path) -> None:
    """No anonymous super user behind the controller port: a PLAINTEXT one would have to let the
    broker register as User:ANONYMOUS, and anyone on the host could then create ACLs through it."""
    bootstrap, data = secure
    props = dict(
        line.split("=", 1) for line in (data / "server.properties").read_text().splitlines() if "=" in line
    )
    controller = props["controller.quorum.voters"].split("@", 1)[1]
    source = tmp_path / "Probe.java"
    source.write_text(CONTROLLER_PROBE)
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else "java"
    pairs = ["-", "-", "intruder", PASSWORDS["intruder"], "admin", PASSWORDS["admin"]]
    classpath = str(REPO / "infra" / "kafka" / "lib" / "*")
    done = subprocess.run(
        [java, "-cp", classpath, str(source), controller, *pairs], capture_output=True, text=True, timeout=90
    )
    said = dict(line.split()[1:3] for line in done.stdout.splitlines() if line.startswith("PROBE "))
    assert said == {
        "-": "TimeoutException",  # it never gets past the SASL handshake
        "intruder": "SaslAuthenticationException",
        "admin": "OK",  # the probe itself works
    }, done.stdout[-2000:] + done.stderr[-2000:]


def test_no_password_in_the_broker_files(secure) -> None:
    """The broker's log and the storage format log name no password (the generated
    server.properties holds the admin's, for the inter-broker login, and only its owner reads it)."""
    _, data = secure
    for name in ("broker.log", "format.log"):
        text = (data / name).read_text()
        assert not [u for u, p in PASSWORDS.items() if p in text], name
    assert (data / "server.properties").stat().st_mode & 0o077 == 0
