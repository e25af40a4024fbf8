"""A forked helper process that prepares and writes a share of an import's images on a second core.

Why: de-identifying, encoding, hashing and writing 150 slices is a few hundred milliseconds of Python on
one core, and the machine has more. Threads do not help (the GIL), and a process pool would have to
pickle every dataset. A child forked once the datasets are parsed already holds them (copy-on-write):
it prepares its share (side-effect free) while this process checks the series, and writes nothing until
told to go, after every check passed. Before creating a file it records the name, so that whatever
happens (an error, a crash, a kill) the parent can remove everything the import wrote.

Only where forking is safe: POSIX, a single thread (a fork copies only the calling thread, and a lock
held by another one would never be released in the child), and not inside a helper already. The child
never touches the database or Django's request state, and leaves with os._exit: no atexit handlers, no
buffers flushed twice, no connection closed under the parent.
"""

import gc
import os
import pickle
import select
import signal
import struct
import tempfile
import threading
from collections.abc import Callable

TIMEOUT_S = 600.0  # a helper that has not finished by then is stopped, and the import fails
_LENGTH = struct.Struct("<Q")
_in_helper = False


class HelperError(RuntimeError):
    """The helper process failed without saying why (killed, crashed, timed out)."""


def can_fork() -> bool:
    """Forking is safe here (POSIX, one thread, not a helper) and worth it (a processor is idle)."""
    return hasattr(os, "fork") and not _in_helper and threading.active_count() == 1 and _idle_processor()


def _idle_processor() -> bool:
    """Whether the last minute's load leaves a processor free: on a busy machine the helper only competes
    with this process for the same time (measured: 15-20% slower than no helper at a load of 2.5 on 2 cores)."""
    try:
        processors = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return os.getloadavg()[0] < processors - 0.5
    except OSError:
        return False


class Helper:
    """A child process running `prepare(item)` for each item at once, then, after `go()`,
    `finish(prepared, record_name)` for each; `results()` gives what `finish` returned, in item order."""

    def __init__(self, pid: int, go_fd: int, done_fd: int, records, count: int, froze: bool):
        self.pid, self._go_fd, self._done_fd, self._records, self._count = pid, go_fd, done_fd, records, count
        self._froze = froze  # whether start() froze the collector's objects (undone once the child is gone)
        self._status: int | None = None
        self._went = False

    @classmethod
    def start(cls, items: list, prepare: Callable, finish: Callable) -> "Helper | None":
        """Fork the helper; None where that is not possible (the caller then does all the work itself)."""
        if not items or not can_fork():
            return None
        records = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the helper)
        go_read, go_write = os.pipe()
        done_read, done_write = os.pipe()
        froze = gc.get_freeze_count() == 0  # an application that froze objects itself keeps them frozen
        if froze:
            gc.freeze()  # the collector would touch (and so copy) every page both processes share
        try:
            pid = os.fork()
        except OSError:
            if froze:
                gc.unfreeze()
            for fd in (go_read, go_write, done_read, done_write):
                os.close(fd)
            records.close()
            return None
        if pid == 0:  # the child: never returns
            code = 1
            try:
                gc.disable()
                os.close(go_write)
                os.close(done_read)
                code = _run_child(items, prepare, finish, go_read, records.fileno())
            finally:
                os._exit(code)
        os.close(go_read)
        os.close(done_write)
        return cls(pid, go_write, done_read, records, len(items), froze)

    def go(self) -> None:
        """Let the helper write its files (every check has passed)."""
        self._went = True
        try:
            os.write(self._go_fd, b"1")
        except BrokenPipeError:
            pass  # it has already ended (with an error results() reports)
        finally:
            self._close_go()

    def results(self) -> list:
        """Wait for the helper; what finish returned for each item, or the helper's error raised here."""
        self._wait(TIMEOUT_S)
        results, error = {}, None
        for record in self._read_records():
            if record[0] == "result":
                results[record[1]] = record[2]
            elif record[0] == "error":
                error = record[1]
        if error is not None:
            raise error
        if self._status != 0 or len(results) != self._count:
            raise HelperError(f"The import's helper process ended abnormally (status {self._status}).")
        return [results[position] for position in range(len(results))]

    def stop(self) -> list[str]:
        """End the helper (at once if it may not write yet) and return every name it may have written."""
        if not self._went and self._status is None:
            os.kill(self.pid, signal.SIGKILL)  # nothing written yet: no need to let it finish
        self._close_go()
        self._wait(TIMEOUT_S)
        names = [record[1] for record in self._read_records() if record[0] == "name"]
        self.close()
        return names

    def close(self) -> None:
        self._records.close()

    def _close_go(self) -> None:
        if self._go_fd >= 0:
            os.close(self._go_fd)
            self._go_fd = -1

    def _wait(self, timeout: float) -> None:
        if self._status is not None:
            return
        poll = select.poll()  # not select(): descriptors above 1023 are common in a long-running server
        poll.register(self._done_fd, select.POLLIN | select.POLLHUP)
        if not poll.poll(timeout * 1000):  # the pipe reads EOF once the child has exited
            os.kill(self.pid, signal.SIGKILL)
        _, status = os.waitpid(self.pid, 0)
        os.close(self._done_fd)
        self._status = os.waitstatus_to_exitcode(status)
        if self._froze:
            gc.unfreeze()  # nothing shared any more: what was frozen at the fork is collectable again

    def _read_records(self) -> list[tuple]:
        self._records.seek(0)
        data, records, offset = self._records.read(), [], 0
        while offset + _LENGTH.size <= len(data):
            (length,) = _LENGTH.unpack_from(data, offset)
            chunk = data[offset + _LENGTH.size : offset + _LENGTH.size + length]
            if len(chunk) < length:
                break  # cut short by a kill
            records.append(pickle.loads(chunk))  # noqa: S301 (written by our own child, to an unlinked file)
            offset += _LENGTH.size + length
        return records


def _run_child(items: list, prepare: Callable, finish: Callable, go_fd: int, records_fd: int) -> int:
    global _in_helper
    _in_helper = True

    def record(*fields) -> None:
        data = pickle.dumps(fields)
        data = _LENGTH.pack(len(data)) + data
        while data:
            data = data[os.write(records_fd, data) :]

    try:
        prepared = [prepare(item) for item in items]
        if os.read(go_fd, 1) != b"1":
            return 0  # cancelled: nothing was written
        for position, item in enumerate(prepared):
            record("result", position, finish(item, lambda name: record("name", name)))
        return 0
    except BaseException as exc:  # reported to the parent, which raises it
        record("error", _picklable(exc))
        return 1


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 (our own object)
        return exc
    except Exception:
        return HelperError(f"{type(exc).__name__}: {exc}")
