"""A TCP proxy that adds a fixed delay to every request, as a far-away AWS endpoint would.

Bytes from the client reach the upstream `delay` seconds after they arrived (in order, each
chunk delayed by the same amount, not one after the other), so every HTTP request, on a new
connection or a kept-alive one, takes `delay` longer. Answers come back at once.

    proxy = DelayProxy("127.0.0.1", 4566, delay=0.05).start()
    ... AWS_ENDPOINT_URL=proxy.url ...
    proxy.stop()

Or standalone: python bench/delay_proxy.py --upstream 127.0.0.1:4566 --port 4567 --delay 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading

CHUNK = 65536


class DelayProxy:
    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        delay: float = 0.05,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.delay = delay
        self.host = host
        self.port = port
        self.requests = 0  # chunks that arrived after the client had been waiting for an answer
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> DelayProxy:
        self._thread = threading.Thread(target=self._run, name="delay-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the delay proxy did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- inside the proxy's thread -------------------------------------------------------------

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._server = loop.run_until_complete(
            asyncio.start_server(self._client, self.host, self.port, backlog=512)
        )
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # a connection cut by stop() ends quietly (asyncio logs cancelled connection callbacks)
        with contextlib.suppress(asyncio.CancelledError):
            await self._relay(reader, writer)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        answered = asyncio.Event()
        answered.set()
        await asyncio.gather(
            self._delayed(reader, up_writer, answered),
            self._pipe(up_reader, writer, answered),
            return_exceptions=True,
        )
        for w in (writer, up_writer):
            with contextlib.suppress(Exception):
                w.close()

    async def _delayed(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answered: asyncio.Event
    ) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def forward() -> None:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    with contextlib.suppress(Exception):
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(forward())
        try:
            while True:
                data = await reader.read(CHUNK)
                if data and answered.is_set():
                    self.requests += 1
                    answered.clear()
                queue.put_nowait((loop.time() + self.delay, data))
                if not data:
                    break
            await sender
        finally:
            sender.cancel()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answered: asyncio.Event
    ) -> None:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                with contextlib.suppress(Exception):
                    writer.write_eof()
                return
            answered.set()
            writer.write(data)
            await writer.drain()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.05, help="seconds added per request")
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    proxy = DelayProxy(host or "127.0.0.1", int(port), delay=args.delay, port=args.port).start()
    print(f"{proxy.url} -> {args.upstream}, +{args.delay * 1000:.0f} ms per request", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        proxy.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
