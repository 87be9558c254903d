"""FakeKubeServer: the fake apiserver on 127.0.0.1, running on its own thread and event loop.

Its own loop keeps it independent of whoever uses it: sync tests, async tests on pytest's loop, and a
kopf operator on the KopfRunner's thread all talk to it over HTTP.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import copy
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from .app import ApiServer, RequestCounter
from .faults import Faults
from .garbage import GarbageCollector
from .kubeconfig import write_kubeconfig
from .resources import ResourceRegistry
from .store import Store

T = TypeVar("T")


class FakeKubeServer:
    def __init__(self, history_limit: int = 10_000, bookmark_interval: float = 5.0) -> None:
        self._history_limit = history_limit
        self._bookmark_interval = bookmark_interval
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fakekube", daemon=True)
        self._runner: web.AppRunner | None = None
        self._port = 0
        self.registry = ResourceRegistry()
        self.counter = RequestCounter()
        self.store: Store | None = None
        self.faults = Faults(self.call, self._cut_watches, self._expire_history)

    # ---- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> FakeKubeServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=30)
        return self

    async def _serve(self) -> None:
        self.store = Store(self.registry, self._history_limit)
        GarbageCollector(self.store, asyncio.get_running_loop())
        api = ApiServer(self.store, self.registry, self.faults, self.counter, self._bookmark_interval)
        self._runner = web.AppRunner(api.application(), handle_signals=False, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self.call(self._cut_watches)
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    def __enter__(self) -> FakeKubeServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- what tests use ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def write_kubeconfig(self, path: str | Path, namespace: str = "default") -> Path:
        return write_kubeconfig(path, self.url, namespace)

    def clear_faults(self) -> None:
        self.faults.clear()

    def request_counts(self) -> collections.Counter[tuple[str, str]]:
        """Requests served so far, keyed by (verb, resource), e.g. ("patch", "deeptrainingjobs/status")."""
        return self.counter.snapshot()

    def reset_request_counts(self) -> None:
        self.counter.reset()

    def call(self, function: Callable[[], T]) -> T:
        """Run `function` on the server's loop (where the store lives) and return its result."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(function())
            except BaseException as exc:  # handed to the caller's thread
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return future.result(timeout=30)

    def _cut_watches(self) -> int:
        return self.store.cut_watches() if self.store else 0

    def _expire_history(self) -> None:
        if self.store:
            self.store.expire_history()

    def objects(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        """A snapshot of every stored object of a kind, for assertions on the fake's own state."""
        resource = self.registry.by_kind(api_version, kind)
        if resource is None or self.store is None:
            return []
        store = self.store
        return self.call(lambda: copy.deepcopy(store.objects((resource.group, resource.plural))))
