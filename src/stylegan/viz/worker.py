"""The render worker: one thread that runs jobs one at a time from a queue, dropping stale ones.

Every job that touches a network goes through here, so networks, their caches and the StyleGAN3 input transform
(which a render sets and restores) are only ever used by one thread. The HTTP server's event loop only waits on
futures, so the page stays responsive while a render runs.

Stale requests: a job may carry a client id and that client's request number `seq` (increasing). When a job from a
client arrives, that client's job still waiting in the queue (at most one) is answered at once with Superseded, and
so is any later-arriving job whose seq is not above the newest seen. A job already running is left to finish.
So dragging a slider sends many requests, but only the one running and the newest are ever rendered. Jobs without
a client id are never dropped.
"""
from __future__ import annotations

import collections
import concurrent.futures
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

DEFAULT_MAX_PENDING = 64            # jobs waiting at once; more answers Busy (HTTP 429)
MAX_CLIENTS = 4096                  # clients whose newest seq is remembered (least recently seen forgotten)


class Superseded(Exception):
    """The job was dropped because a newer request from the same client arrived."""

    def __init__(self, seq: int, newest: int):
        super().__init__(f"request {seq} was superseded by request {newest} from the same client")
        self.seq = seq
        self.newest = newest


class Busy(Exception):
    """The queue is full."""


@dataclass
class _Job:
    fn: Callable[[], Any]
    client: str | None
    seq: int | None
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    dropped: bool = False


class RenderWorker:
    """A thread that runs submitted callables in arrival order, with per-client stale dropping (see module doc)."""

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING, name: str = "stylegan-render"):
        self.max_pending = max_pending
        self._queue: collections.deque[_Job] = collections.deque()
        self._waiting: dict[str, _Job] = {}                        # client -> its job in the queue
        self._newest: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._cond = threading.Condition()
        self._closed = False
        self.stats = {"run": 0, "superseded": 0, "errors": 0, "busy": 0}
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], Any], client: str | None = None, seq: int | None = None
               ) -> concurrent.futures.Future:
        """Queue fn(); the future gets its result or exception, Superseded if dropped. Raises Busy when full."""
        job = _Job(fn, client, seq)
        with self._cond:
            if self._closed:
                raise RuntimeError("the render worker has stopped")
            if client is not None:
                newest = self._newest.get(client)
                if newest is not None and seq <= newest:
                    self.stats["superseded"] += 1
                    job.future.set_exception(Superseded(seq, newest))
                    return job.future
            old = self._waiting.get(client) if client is not None else None
            if self._pending_locked() - (old is not None) >= self.max_pending:
                self.stats["busy"] += 1
                raise Busy(f"{self.max_pending} requests are already waiting; try again shortly")
            if client is not None:
                self._newest[client] = seq
                self._newest.move_to_end(client)
                while len(self._newest) > MAX_CLIENTS:
                    self._newest.popitem(last=False)
                if old is not None:
                    old.dropped = True
                    self.stats["superseded"] += 1
                    old.future.set_exception(Superseded(old.seq, seq))
            self._queue.append(job)
            if client is not None:
                self._waiting[client] = job
            self._cond.notify()
        return job.future

    def pending(self) -> int:
        """Jobs waiting (not running, not dropped)."""
        with self._cond:
            return self._pending_locked()

    def _pending_locked(self) -> int:
        return sum(not j.dropped for j in self._queue)

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop taking jobs, cancel those waiting, and let the running one finish."""
        with self._cond:
            self._closed = True
            for job in self._queue:
                if not job.dropped:
                    job.future.cancel()
            self._queue.clear()
            self._waiting.clear()
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._queue.popleft()
                if job.dropped:
                    continue
                if job.client is not None and self._waiting.get(job.client) is job:
                    del self._waiting[job.client]
            if not job.future.set_running_or_notify_cancel():
                continue
            try:
                result = job.fn()
            except BaseException as exc:            # the future carries it to the request that asked
                self.stats["errors"] += 1
                job.future.set_exception(exc)
            else:
                self.stats["run"] += 1
                job.future.set_result(result)
