"""`python manage.py kafka …` as a user runs it: a child process with the project's settings."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import psutil
from django.conf import settings

from kafkalab.kafka.admin import broker_ids
from kafkalab.kafka.local_cluster import LocalCluster, class_archive, java_executable
from tests.integration.conftest import cluster_processes, manage, manage_env, pid_files, stopped_afterwards

# Above the ephemeral port range, apart from the other integration tests' ports.
COMMAND_PORTS = 61592
EXTERNAL_PORTS = 61692
NO_JAVA_PORTS = 61792


def status_json(env: dict[str, str]) -> dict:
    result = manage("kafka", "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def own_libs(tmp_path: Path) -> Path:
    """Jars of the test's own (links to the suite's), so a class archive is made there from scratch."""
    libs = tmp_path / "libs"
    libs.mkdir()
    for jar in Path(settings.KAFKA_LIBS_DIR).glob("*.jar"):
        (libs / jar.name).symlink_to(jar)
    return libs


def test_kafka_up_status_and_down_and_later_starts_use_the_class_archive(tmp_path):
    libs = own_libs(tmp_path)
    archive = class_archive(java_executable(), libs.resolve())
    with stopped_afterwards(LocalCluster(tmp_path / "kafka", port_base=COMMAND_PORTS, libs_dir=libs)) as cluster:
        up_status_and_down(cluster, archive)
        # The second start uses the archive the first one made.
        env = manage_env(cluster)
        assert manage("kafka", "up", "--brokers", "1", env=env).returncode == 0
        command_line = broker_command_line(env)
        assert f"-XX:SharedArchiveFile={archive}" in command_line
        assert not any(arg.startswith("-XX:DumpLoadedClassList=") for arg in command_line)
    assert sorted(path.name for path in libs.iterdir() if not path.name.endswith(".jar")) == [
        archive.name,
        archive.with_suffix(".lock").name,
    ]


def up_status_and_down(cluster: LocalCluster, archive: Path) -> None:
    env = manage_env(cluster)

    before = status_json(env)
    assert before == {
        "mode": "local",
        "bootstrap_servers": "",
        "kafka_version": before["kafka_version"],
        "brokers": [],
    }
    assert before["kafka_version"].startswith("4.")

    up = manage("kafka", "up", "--brokers", "1", env=env)
    assert up.returncode == 0, up.stderr
    assert "Started node(s) 1." in up.stdout
    assert "Kafka is ready at 127.0.0.1:61592" in up.stdout

    status = status_json(env)
    assert status["mode"] == "local"
    assert status["bootstrap_servers"] == "127.0.0.1:61592"
    [broker] = status["brokers"]
    assert set(broker) == {"node_id", "pid", "port", "controller_port", "alive"}
    assert (broker["node_id"], broker["port"], broker["controller_port"], broker["alive"]) == (1, 61592, 61593, True)
    assert "kafka.Kafka" in psutil.Process(broker["pid"]).cmdline()
    assert [p.pid for p in cluster_processes(cluster)] == [broker["pid"]]
    assert any(arg.startswith("-XX:DumpLoadedClassList=") for arg in broker_command_line(env))
    assert broker_ids(status["bootstrap_servers"]) == {1}

    text = manage("kafka", "status", env=env)
    assert text.returncode == 0, text.stderr
    assert "mode: local   bootstrap servers: 127.0.0.1:61592" in text.stdout
    assert f"node 1  port 61592  controller 61593  pid {broker['pid']}  alive" in text.stdout

    again = manage("kafka", "up", "--brokers", "1", env=env)
    assert again.returncode == 0, again.stderr
    assert "Cluster already up; nothing started." in again.stdout
    assert status_json(env)["brokers"][0]["pid"] == broker["pid"]

    # A detached process at the lowest priority makes the class archive once the cluster is up.
    deadline = time.monotonic() + 180
    while not archive.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert archive.exists()

    down = manage("kafka", "down", env=env)
    assert down.returncode == 0, down.stderr
    assert "Stopped node(s) 1." in down.stdout
    assert cluster_processes(cluster) == []
    assert pid_files(cluster) == []
    assert status_json(env)["brokers"] == [
        {"node_id": 1, "pid": None, "port": 61592, "controller_port": 61593, "alive": False}
    ]

    down_again = manage("kafka", "down", env=env)
    assert down_again.returncode == 0, down_again.stderr
    assert "No local broker was running." in down_again.stdout


def test_kafka_up_with_too_many_brokers_is_refused(make_cluster):
    cluster = make_cluster(COMMAND_PORTS + 50)
    result = manage("kafka", "up", "--brokers", "10", env=manage_env(cluster))
    assert result.returncode != 0
    assert "at most 9 brokers" in result.stderr
    assert not cluster.cluster_dir.exists()


def test_external_bootstrap_servers_start_nothing(make_cluster):
    cluster = make_cluster(EXTERNAL_PORTS)
    env = manage_env(cluster, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{EXTERNAL_PORTS + 99}")

    up = manage("kafka", "up", "--brokers", "1", env=env)
    assert up.returncode == 0, up.stderr
    assert f"KAFKA_BOOTSTRAP_SERVERS is set: using 127.0.0.1:{EXTERNAL_PORTS + 99}" in up.stdout
    assert "no local broker started" in up.stdout
    assert cluster_processes(cluster) == []
    assert not cluster.root.exists()

    assert status_json(env) == {
        "mode": "external",
        "bootstrap_servers": f"127.0.0.1:{EXTERNAL_PORTS + 99}",
        "brokers": [],
    }

    down = manage("kafka", "down", env=env)
    assert down.returncode == 0, down.stderr
    assert "no local broker to stop" in down.stdout
    assert not cluster.root.exists()


def test_kafka_up_without_java_says_what_to_install(make_cluster, tmp_path):
    cluster = make_cluster(NO_JAVA_PORTS)
    # A PATH with Python on it and nothing else: no java, no mvn.
    bin_dir = tmp_path / "bin-without-java"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = manage_env(cluster, PATH=str(bin_dir))
    env.pop("JAVA_HOME", None)

    result = manage("kafka", "up", "--brokers", "1", env=env)

    assert result.returncode != 0
    assert "Java 17 or newer is needed" in result.stderr
    assert "sudo apt-get install openjdk-17-jdk-headless" in result.stderr
    assert "docker compose up" in result.stderr
    assert "Traceback" not in result.stderr
    assert not cluster.cluster_dir.exists()
    assert cluster_processes(cluster) == []


def test_cluster_commands_need_no_secret_key(make_cluster):
    # As the README runs them: in an activated virtualenv, without DJANGO_DEBUG or DJANGO_SECRET_KEY.
    cluster = make_cluster(COMMAND_PORTS + 70)
    env = manage_env(cluster)
    del env["DJANGO_DEBUG"]
    assert not any(name.startswith("DJANGO_") and name != "DJANGO_SETTINGS_MODULE" for name in env)

    for args, expected in [
        (("kafka", "status"), "No local cluster yet"),
        (("kafka", "fetch"), "Kafka jars already in"),
        (("kafka", "down"), "No local broker was running."),
    ]:
        result = manage(*args, env=env)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        assert expected in result.stdout


def broker_command_line(env: dict[str, str]) -> list[str]:
    [broker] = status_json(env)["brokers"]
    return psutil.Process(broker["pid"]).cmdline()
