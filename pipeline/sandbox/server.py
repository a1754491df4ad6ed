"""moto's server with the ECS emulation installed, in one process.

    python -m tierup.pipeline.sandbox.server --port 5000 [--host 127.0.0.1] [--polls N]

runs until SIGTERM or SIGINT. `start_background(port, state_dir)` spawns it detached, waits
until it answers and records it in `state_dir` (`sandbox.pid`, `sandbox.json`, `sandbox.log`);
`stop_background(state_dir)` stops the process recorded there.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from tierup.stages.errors import TierupError

__all__ = [
    "LOG_FILE",
    "PID_FILE",
    "STATE_FILE",
    "SandboxError",
    "SandboxState",
    "main",
    "moto_server",
    "read_state",
    "serve",
    "start_background",
    "stop_background",
]

PID_FILE = "sandbox.pid"
STATE_FILE = "sandbox.json"
LOG_FILE = "sandbox.log"
MODULE = "tierup.pipeline.sandbox.server"
READY_PATH = "/moto-api/config"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class SandboxError(TierupError):
    default_hint = "see the sandbox log, or run `python -m tierup.pipeline.sandbox.server --port N`"


@dataclass(frozen=True)
class SandboxState:
    pid: int
    host: str
    port: int

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def to_json(self) -> str:
        return json.dumps(
            {
                "pid": self.pid,
                "host": self.host,
                "port": self.port,
                "endpoint_url": self.endpoint_url,
            }
        )


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


# what stands for the environments' own applications: a smoke check of the example envs.yaml
# (its `http` step) asks `${TIERUP_APP_URL}/version`, which `sandbox up` points here
APP_PATH = "/_sandbox/app/"


def app_answer(path: str, start_response: Any) -> list[bytes]:
    """``GET /_sandbox/app/<environment>/...``: the application of that environment, healthy."""
    environment = path[len(APP_PATH) :].split("/", 1)[0]
    body = json.dumps({"status": "ok", "environment": environment}).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def moto_server(host: str = "127.0.0.1", port: int = 0) -> Any:
    """moto's threaded server, routing each request without rescanning moto's package.

    moto's dispatcher finds the backend for a request's host by listing moto's package
    folder and trying every backend's URL pattern, twice per request: about a third of the
    server's time per ECS call. The answer depends on the host alone, so it is kept.
    """
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    class Dispatcher(DomainDispatcherApplication):
        def __init__(self, create_app: Any) -> None:
            super().__init__(create_app)
            self._backends: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            # called under the dispatcher's lock
            if host not in self._backends:
                self._backends[host] = super().get_backend_for_host(host)
            return self._backends[host]

        def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
            path = str(environ.get("PATH_INFO") or "")
            if path.startswith(APP_PATH):
                return app_answer(path, start_response)
            return super().__call__(environ, start_response)

    class Server(ThreadedMotoServer):
        def _server_entry(self) -> None:
            self._server = make_server(
                self._ip_address,
                self._port,
                Dispatcher(create_backend_app),
                True,
                request_handler=MotoRequestHandler,
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    return Server(ip_address=host, port=port, verbose=False)


def serve(
    port: int,
    host: str = "127.0.0.1",
    *,
    polls_to_complete: int | None = None,
    state_file: Path | None = None,
    verbose: bool = False,
) -> None:
    """Serve moto with the emulation on host:port until SIGTERM/SIGINT.

    Port 0 picks a free port; the one bound is printed and written to `state_file`.
    """
    from tierup.pipeline.sandbox.emulation import install, uninstall

    if not verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    emulation = install()
    if polls_to_complete is not None:
        emulation.polls_to_complete = max(1, polls_to_complete)
    done = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():

        def _on_signal(signum: int, frame: FrameType | None) -> None:
            done.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, _on_signal)
    server = moto_server(host, port)
    server.start()
    try:
        bound_host, bound_port = server.get_host_and_port()
        state = SandboxState(pid=os.getpid(), host=bound_host, port=bound_port)
        if state_file is not None:
            _write_atomically(state_file, state.to_json())
        print(f"tierup sandbox: serving {state.endpoint_url} (pid {state.pid})", flush=True)
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
        uninstall()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# -- in the background ----------------------------------------------------------------------


def read_state(state_dir: Path) -> SandboxState | None:
    """The sandbox recorded in `state_dir`, if its process is still ours and alive."""
    try:
        data = json.loads((Path(state_dir) / STATE_FILE).read_text(encoding="utf-8"))
        pid = int((Path(state_dir) / PID_FILE).read_text(encoding="utf-8").strip())
        state = SandboxState(pid=int(data["pid"]), host=str(data["host"]), port=int(data["port"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if state.pid != pid or not _is_sandbox_process(pid):
        return None
    return state


def _is_sandbox_process(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return True  # no procfs: trust the pid file
    try:
        status = (proc / "status").read_text()
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    if "\nState:\tZ" in status:
        return False
    return MODULE in cmdline


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + READY_PATH, timeout=2) as response:
            response.read()
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError):
        return False


_children: dict[int, subprocess.Popen[bytes]] = {}


def _project_root() -> Path:
    return Path(__file__).resolve().parents[2]


def start_background(
    port: int,
    state_dir: Path,
    *,
    polls_to_complete: int | None = None,
) -> int:
    """Spawn the sandbox server detached, wait until it answers, record it; return its pid.

    Raises SandboxError when one is already recorded and running, or when it does not come up.
    """
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    running = read_state(state_dir)
    if running is not None:
        raise SandboxError(
            f"a sandbox is already running at {running.endpoint_url} (pid {running.pid})",
            hint="stop it first (tierup sandbox down), or use another state directory",
        )
    state_file = state_dir / STATE_FILE
    state_file.unlink(missing_ok=True)
    (state_dir / PID_FILE).unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        MODULE,
        "--port",
        str(port),
        "--state-file",
        str(state_file),
    ]
    if polls_to_complete is not None:
        command += ["--polls", str(polls_to_complete)]
    env = dict(os.environ)
    root = str(_project_root())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    log_path = state_dir / LOG_FILE
    with open(log_path, "ab") as log:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    _children[child.pid] = child
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            _children.pop(child.pid, None)
            raise SandboxError(
                f"the sandbox server exited with code {child.returncode} before answering: "
                f"{_tail(log_path)}"
            )
        try:
            data = json.loads(state_file.read_text(encoding="utf-8"))
            url = f"http://{data['host']}:{data['port']}"
        except (OSError, ValueError, KeyError):
            url = None
        if url is not None and _answers(url):
            _write_atomically(state_dir / PID_FILE, f"{child.pid}\n")
            return child.pid
        time.sleep(0.05)
    _terminate(child.pid, 5.0)
    raise SandboxError(
        f"the sandbox server did not answer within {START_TIMEOUT_S:g}s: {_tail(log_path)}"
    )


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


def _gone(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        if child.poll() is None:
            return False
        _children.pop(pid, None)
        return True
    return not _is_sandbox_process(pid)


def _terminate(pid: int, timeout: float) -> None:
    for signum, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if _gone(pid):
                return
            time.sleep(0.05)


def stop_background(state_dir: Path) -> bool:
    """Stop the sandbox recorded in `state_dir`; False when none was running."""
    state_dir = Path(state_dir)
    state = read_state(state_dir)
    stopped = False
    if state is not None:
        _terminate(state.pid, STOP_TIMEOUT_S)
        stopped = True
    for name in (PID_FILE, STATE_FILE):
        (state_dir / name).unlink(missing_ok=True)
    return stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tierup.pipeline.sandbox.server",
        description="moto's server with tierup's ECS emulation, until SIGTERM/SIGINT",
    )
    parser.add_argument("--port", type=int, required=True, help="port to listen on (0: any)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument(
        "--polls", type=int, default=None, help="describe_services polls until a rollout ends"
    )
    parser.add_argument("--state-file", type=Path, default=None, help="write pid/host/port here")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    serve(
        args.port,
        args.host,
        polls_to_complete=args.polls,
        state_file=args.state_file,
        verbose=args.verbose,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
