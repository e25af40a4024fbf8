"""A private Redis for broker-outage tests, on a free port, stopped and started again at will; the machine's
shared Redis is never touched. No persistence: a restart comes back empty, as a Redis without AOF does."""

import socket
import subprocess
import time
from contextlib import contextmanager

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self):
        """A clean shutdown (SIGTERM): clients see their connections closed, new ones refused."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


@contextmanager
def private_redis():
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def broker_of_this_process(url: str):
    """Have this process's Celery app publish to `url`, then as before. (broker_write_url: CELERY_BROKER_URL in
    the environment outranks broker_url.) The app takes its pools again from kombu's registry, which keeps one
    per URL; none is closed here, as a closed one would stay closed for its next user."""
    from config.celery import app

    def use(write_url):
        app.conf.broker_write_url = write_url
        app._pool = None
        app.amqp._producer_pool = None

    previous = app.conf.get("broker_write_url")
    use(url)
    try:
        yield app
    finally:
        use(previous)
