"""Progress on stderr while a command runs: a live table on a terminal, plain lines in CI logs.

Core functions take a ``progress`` callable of one message. A ``LineProgress`` (or its live
variant) is such a callable that also understands rollout states: `rollout_changed` gives it
the state of a deployment, and plain callables get a line instead.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

from tierup.pipeline.output import redact
from tierup.stages import wait as wait_stage

EVENTS_ON_FAILURE = 3

_STYLE = {
    wait_stage.COMPLETED: "green",
    wait_stage.IN_PROGRESS: "cyan",
    wait_stage.TIMED_OUT: "yellow",
    wait_stage.FAILED: "red",
    wait_stage.ROLLED_BACK: "red",
}


def detail(state: wait_stage.RolloutState) -> str:
    """What follows the state's name on its line."""
    counts = f"{state.running}/{state.desired} running"
    if state.detail and state.state in (wait_stage.IN_PROGRESS, wait_stage.COMPLETED):
        return f"({state.detail})"  # a strategy's own words: a stack's status, traffic shifted
    if state.state == wait_stage.IN_PROGRESS:
        return f"({counts}, deployment {state.deployment_id})"
    if state.state == wait_stage.COMPLETED:
        return f"({counts})"
    if state.state == wait_stage.ROLLED_BACK:
        out = f"{state.reason}"
        if state.rollback_deployment:
            out += (
                f" (ECS's rollback deployment {state.rollback_deployment}: "
                f"{state.rollback_state or 'unknown'})"
            )
        return out
    return f"{state.reason} ({counts})" if state.reason else f"({counts})"


def describe(state: wait_stage.RolloutState) -> str:
    """One line for a rollout state (without the environment/service prefix)."""
    sep = ": " if state.state in (wait_stage.ROLLED_BACK, wait_stage.FAILED) else " "
    if state.state == wait_stage.TIMED_OUT and state.reason:
        sep = ": "
    return f"{state.state}{sep}{detail(state)}"


class LineProgress:
    """One line per message and per rollout state change: what CI logs should show."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._out = stream or sys.stderr
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str, str], tuple[str, str | None, str | None]] = {}

    def __call__(self, message: str) -> None:
        with self._lock:
            self._out.write(redact(message) + "\n")
            self._out.flush()

    def rollout(
        self, environment: str, state: wait_stage.RolloutState, *, phase: str = "deploy"
    ) -> None:
        key = (environment, state.service, phase)
        label = (state.state, state.rollback_state, state.detail)
        with self._lock:
            if self._seen.get(key) == label:
                return
            self._seen[key] = label
        prefix = "rollback " if phase == "rollback" else ""
        lines = [f"{environment}/{state.service}: {prefix}{describe(state)}"]
        if state.state in (wait_stage.FAILED, wait_stage.ROLLED_BACK, wait_stage.TIMED_OUT):
            lines += [f"    event: {e}" for e in state.events[:EVENTS_ON_FAILURE]]
        self("\n".join(lines))

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class LiveProgress(LineProgress):
    """A rich live table of every service's rollout, one row each, grouped by environment."""

    def __init__(self, stream: TextIO | None = None, *, console: Any = None) -> None:
        from rich.console import Console
        from rich.live import Live

        super().__init__(stream)
        self.console = console or Console(file=self._out, highlight=False)
        self._rows: dict[tuple[str, str], tuple[str, str, str]] = {}
        self._live = Live(
            self._table(), console=self.console, refresh_per_second=8, transient=False
        )

    def __call__(self, message: str) -> None:
        from rich.markup import escape

        with self._lock:
            self._live.console.print(escape(redact(message)))

    def rollout(
        self, environment: str, state: wait_stage.RolloutState, *, phase: str = "deploy"
    ) -> None:
        style = _STYLE.get(state.state, "")
        what = state.state if phase == "deploy" else f"rollback {state.state}"
        text = detail(state)
        if state.state in (wait_stage.FAILED, wait_stage.ROLLED_BACK) and state.events:
            text += f" | {state.events[0]}"
        with self._lock:
            self._rows[(environment, state.service)] = (
                f"[{style}]{what}[/{style}]" if style else what,
                f"{state.running}/{state.desired}",
                redact(text),
            )
            self._live.update(self._table())

    def _table(self) -> Any:
        from rich.markup import escape
        from rich.table import Table

        table = Table(title="rollouts", title_justify="left", expand=False)
        for col in ("environment", "service", "state", "running", "detail"):
            table.add_column(col)
        last_env = None
        for (env, svc), (state, running, text) in sorted(self._rows.items()):
            table.add_row(env if env != last_env else "", svc, state, running, escape(text))
            last_env = env
        return table

    def __enter__(self) -> LiveProgress:
        self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.stop()


def progress_display(stream: TextIO | None = None, *, live: bool | None = None) -> LineProgress:
    """A live display on a terminal, lines otherwise (CI, pipes, TERM=dumb)."""
    out = stream or sys.stderr
    if live is None:
        live = out.isatty() and os.environ.get("TERM", "") != "dumb" and not os.environ.get("CI")
    return LiveProgress(out) if live else LineProgress(out)


def rollout_changed(
    progress: Callable[[str], None],
    environment: str,
    state: wait_stage.RolloutState,
    *,
    phase: str = "deploy",
) -> None:
    """Report a rollout state to ``progress``: structured if it understands it, else a line."""
    if isinstance(progress, LineProgress):
        progress.rollout(environment, state, phase=phase)
        return
    prefix = "rollback " if phase == "rollback" else ""
    progress(f"{environment}/{state.service}: {prefix}{describe(state)}")
