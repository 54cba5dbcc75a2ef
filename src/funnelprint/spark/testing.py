"""A throwaway standalone Spark cluster on the loopback — one master and one worker, started
with the ``sbin/spark-daemon.sh`` that the PySpark package ships — for tests and
benchmarks that drive the engine through ``--spark-master spark://127.0.0.1:PORT``."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

_MASTER = "org.apache.spark.deploy.master.Master"
_WORKER = "org.apache.spark.deploy.worker.Worker"


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class StandaloneCluster:
    """A running master and worker; :attr:`url` is the master's ``spark://`` URL."""

    directory: Path
    port: int
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-1500:]
                         for p in sorted((self.directory / "logs").glob("*.out")))

    def stop(self) -> None:
        daemon = str(spark_home() / "sbin" / "spark-daemon.sh")
        for cls in (_WORKER, _MASTER):
            subprocess.run(["bash", daemon, "stop", cls, "1"], env=self.env, check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        shutil.rmtree(self.directory, ignore_errors=True)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_standalone(cores: int = 1, memory: str = "1g", timeout_s: float = 120.0
                     ) -> StandaloneCluster:
    """Start a master and one worker (``cores``, ``memory``) on 127.0.0.1 and wait until the
    worker has registered. ``RuntimeError`` with the daemons' log tails otherwise."""
    home = spark_home()
    directory = Path(tempfile.mkdtemp(prefix="funnelprint-spark-cluster-"))
    port = _free_port()
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_LOG_DIR": str(directory / "logs"), "SPARK_PID_DIR": str(directory),
           "SPARK_WORKER_DIR": str(directory / "work")}
    cluster = StandaloneCluster(directory, port, env)
    daemon = str(home / "sbin" / "spark-daemon.sh")
    try:
        subprocess.run(["bash", daemon, "start", _MASTER, "1", "--host", "127.0.0.1",
                        "--port", str(port), "--webui-port", str(_free_port())],
                       env=env, check=True, capture_output=True, timeout=60)
        subprocess.run(["bash", daemon, "start", _WORKER, "1", cluster.url, "--host",
                        "127.0.0.1", "--cores", str(cores), "--memory", memory,
                        "--webui-port", str(_free_port())],
                       env=env, check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if _listening(port) and "Successfully registered with master" in cluster.logs():
                return cluster
            time.sleep(0.5)
        raise RuntimeError(f"the standalone cluster was not up in {timeout_s:.0f} s:\n"
                           f"{cluster.logs()}")
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        tail = cluster.logs()
        cluster.stop()
        raise RuntimeError(f"standalone Spark did not start: {exc}\n{tail}") from exc


__all__ = ["StandaloneCluster", "spark_home", "start_standalone"]
