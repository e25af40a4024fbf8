"""A private, throwaway PostgreSQL cluster for fault tests: the machine's shared server is never restarted.

initdb into a temporary folder, trust authentication on 127.0.0.1 and a free port; restart or stop it at will;
removed afterwards. The server runs as the `postgres` OS user (initdb refuses root).
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    def __init__(self, root: Path, port: int):
        self.root, self.port = root, port
        self.data, self.log = root / "data", root / "server.log"

    def _as_postgres(self, *args, check=True, **kwargs):
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*prefix, *map(str, args)], check=check, capture_output=True, text=True, **kwargs)

    def pg_ctl(self, action: str, *options: str):
        return self._as_postgres(BIN / "pg_ctl", action, "-D", self.data, "-l", self.log, "-w", "-t", "60", *options)

    def start(self):
        server = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self.pg_ctl("start", "-o", server)

    def restart(self):
        """A fast restart: open sessions are terminated (57P01), the server comes straight back."""
        self.pg_ctl("restart", "-m", "fast")

    def stop(self, mode: str = "fast"):
        """`immediate` is a crash: no clean shutdown, the server replays its WAL when started again."""
        self.pg_ctl("stop", "-m", mode)

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        return subprocess.run(
            [BIN / "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database, "-XAtc", sql],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip

    def copy_database(self, source: dict, name: str):
        """Copy a Django database (its settings dict: the test database, migrated and filled) into `name`."""
        self.psql(f'CREATE DATABASE "{name}"')
        dump = subprocess.Popen(
            [BIN / "pg_dump", "-Fc", "-h", source["HOST"], "-p", str(source["PORT"]),
             "-U", source["USER"] or "postgres", source["NAME"]],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        subprocess.run(
            [BIN / "pg_restore", "--no-owner", "--no-acl", "--exit-on-error", "-h", "127.0.0.1", "-p", str(self.port),
             "-U", "postgres", "-d", name],
            stdin=dump.stdout, check=True, capture_output=True,
        )  # fmt: skip
        dump.stdout.close()
        assert dump.wait() == 0, "pg_dump of the test database failed"


@contextmanager
def private_cluster():
    root = Path(tempfile.mkdtemp(prefix="ct-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        cluster = Cluster(root, free_port())
        cluster._as_postgres(BIN / "initdb", "-D", cluster.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                             "--locale=C", "--no-sync")  # fmt: skip
        cluster.start()
        try:
            yield cluster
        finally:
            if is_running(cluster):
                cluster.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def is_running(cluster: Cluster) -> bool:
    return cluster._as_postgres(BIN / "pg_ctl", "status", "-D", cluster.data, check=False).returncode == 0


def wait_until_accepting(cluster: Cluster, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = subprocess.run(
            [BIN / "pg_isready", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres"], capture_output=True
        )
        if ready.returncode == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"the private PostgreSQL did not come back within {timeout:.0f}s")
