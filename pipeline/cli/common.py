"""What every command of the command line shares: the app, the options declared once, loading
envs.yaml and the clients, and running a command body into output and an exit code.

Errors are one line with a hint; ``--verbose`` adds the traceback (never credentials).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

try:  # typer carries its own copy of click from 0.2x on; before, it runs on click itself
    from typer._click import exceptions as click_errors
    from typer._click.globals import get_current_context
    from typer._click.utils import echo
except ImportError:  # pragma: no cover
    from click import echo
    from click import exceptions as click_errors  # type: ignore[no-redef]
    from click.globals import get_current_context  # type: ignore[no-redef]

from tierup.pipeline import __version__
from tierup.pipeline.exit_codes import ExitCode, exit_code_of
from tierup.pipeline.output import (
    one_line,
    print_json,
    redact,
    redact_all,
    render_text,
    setup_logging,
)
from tierup.pipeline.results import CommandResult
from tierup.stages.errors import InputError, TierupError

if TYPE_CHECKING:
    from tierup.pipeline.clients import Clients
    from tierup.pipeline.config import Config


class UsageErrorLine(click_errors.UsageError):
    """click's usage error as one ``error:`` line with a hint (exit 2), not click's block."""

    def show(self, file: IO[Any] | None = None) -> None:
        where = self.ctx.command_path if self.ctx is not None else "tierup"
        message = one_line(self.format_message())
        hint = f"see `{where} --help`"
        if STATE.json_requested:
            doc = {"status": "failed", "error": message, "hint": hint, "exit_code": 2}
            print_json(doc)
        echo(f"error: {message} (hint: {hint})", file=file or sys.stderr)


def _usage_line(e: click_errors.UsageError) -> click_errors.UsageError:
    if isinstance(e, UsageErrorLine | click_errors.NoArgsIsHelpError):
        return e
    return UsageErrorLine(e.format_message(), e.ctx)


class Commands(TyperGroup):
    """tierup's command group: usage errors (bad flags, unknown commands) are one line."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: Any = None,
        **extra: Any,
    ) -> Any:
        if parent is None:
            STATE.json_requested = "--json" in args
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click_errors.UsageError as e:
            raise _usage_line(e) from e

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except click_errors.UsageError as e:
            raise _usage_line(e) from e


app = typer.Typer(
    cls=Commands,
    name="tierup",
    help="Promote container images through tiers of ECS environments by moving registry tags.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


rollback_app = typer.Typer(
    help="Go back: a service, a cluster, or a tier, to what ran before.", no_args_is_help=True
)


class State:
    verbose: bool = False
    json_requested: bool = False
    # envs.yaml as the argument checks read it, for the command body (one run, one read)
    loaded: dict[Path | None, Config] = {}  # noqa: RUF012 (one process, one run at a time)


STATE = State()

FileOpt = Annotated[
    Path | None,
    typer.Option(
        "-f",
        "--file",
        metavar="FILE",
        help="envs.yaml to read (default ./envs.yaml or $TIERUP_CONFIG)",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="print the plan; write nothing")]
OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        metavar="FILE",
        help="save the plan (as --dry-run prints it) to FILE and write nothing else; "
        "`tierup apply FILE` runs exactly it",
    ),
]
WaitOpt = Annotated[
    bool, typer.Option("--wait/--no-wait", help="wait until every rollout is stable or failed")
]
RollbackOnFailureOpt = Annotated[
    bool | None,
    typer.Option(
        "--rollback-on-failure/--no-rollback-on-failure",
        help="put failed services back on what they ran before (default: the tier's setting)",
        show_default=False,
    ),
]
AtomicOpt = Annotated[
    bool | None,
    typer.Option(
        "--atomic/--no-atomic",
        help="one failed environment rolls every environment of the tier back (exit 1)",
        show_default=False,
    ),
]
TimeoutOpt = Annotated[
    str | None,
    typer.Option(
        "--timeout", metavar="DURATION", help="how long to wait for rollouts: seconds or <n>s|m|h"
    ),
]
ImagesOpt = Annotated[
    list[str] | None, typer.Option("--image", metavar="IMAGE", help="only this image (repeatable)")
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tierup {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="tracebacks and debug logs on stderr")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """tierup: build by commit, promote by re-tag, deploy every environment of a tier at once."""
    STATE.verbose = verbose
    setup_logging(verbose)


def load_config(file: Path | None) -> Config:
    from tierup.pipeline import config_load

    loaded = STATE.loaded.get(file)
    if loaded is None:
        loaded = config_load.load(file)
        STATE.loaded[file] = loaded
    return loaded


def check_arguments() -> None:
    """Every argument of the running command, checked before any client is made (exit 2)."""
    ctx = get_current_context(silent=True)
    if ctx is None:
        return
    from tierup.pipeline import arguments

    names: list[str] = []
    at = ctx
    while at.parent is not None:  # the root is the program, however it was started
        names.append(str(at.info_name))
        at = at.parent
    command = " ".join(reversed(names))
    params = ctx.params
    arguments.check(command, params, lambda: load_config(params.get("file")))


def make_clients(cfg: Config) -> Clients:
    from tierup.pipeline.clients import Clients

    return Clients.from_environment(cfg, os.environ)


def parse_duration_flag(value: str | None, flag: str = "--timeout") -> int | None:
    if value is None:
        return None
    from tierup.stages.step import parse_duration

    try:
        return parse_duration(value)
    except ValueError as e:
        raise InputError(f"{flag}: {e}", hint="e.g. 90, 30s, 15m, 2h") from e


def lock_wait(value: str | None) -> int:
    """--lock-timeout in seconds (unset: 0, fail at once if another run holds the lock)."""
    return parse_duration_flag(value, "--lock-timeout") or 0


def emit(result: CommandResult, as_json: bool) -> None:
    _to_ci(result)
    if as_json:
        print_json(result.to_json())
    else:
        render_text(result)


def shown(
    as_json: bool, result: CommandResult, render: Callable[[CommandResult], None]
) -> CommandResult:
    """A command's own text rendering (and exit), or the result for ``run`` to print as JSON."""
    if not as_json:
        _to_ci(result)
        render(redact_all(result))
        raise typer.Exit(int(result.exit_code))
    return result


def _to_ci(result: CommandResult) -> None:
    """The job's summary, outputs and annotations in CI (see pipeline.ci); then the result."""
    from tierup.pipeline import ci

    ci.SECTION.end()
    if ci.on_github(os.environ) or ci.on_gitlab(os.environ):
        ci.publish(redact_all(result))  # a job's summary and outputs are output like any other


def run(as_json: bool, body: Callable[[], CommandResult | int | None]) -> None:
    """Run a command body; turn results and errors into output and an exit code."""
    STATE.loaded = {}  # envs.yaml is read once per command, never kept across commands
    from tierup.pipeline import ci

    ci.SECTION.begin(command_words())
    try:
        _run(as_json, body)
    finally:
        STATE.loaded = {}


def _run(as_json: bool, body: Callable[[], CommandResult | int | None]) -> None:
    from tierup.pipeline import ci

    try:
        check_arguments()
        out = body()
    except TierupError as e:
        _fail(e.message, e.hint, exit_code_of(e), as_json, e)
    except KeyboardInterrupt:
        _fail(
            "interrupted",
            "re-run the command: writes are safe to repeat",
            ExitCode.FAILED,
            as_json,
            None,
        )
    except typer.Exit:
        raise
    except Exception as e:
        _fail(
            f"unexpected error: {type(e).__name__}: {e}",
            "re-run with --verbose for the traceback and report it",
            ExitCode.FAILED,
            as_json,
            e,
        )
    else:
        if isinstance(out, CommandResult):
            emit(out, as_json)
            raise typer.Exit(int(out.exit_code))
        ci.SECTION.end()
        raise typer.Exit(int(out or 0))


def command_words() -> list[str]:
    """The running command's words (`rollback`, `tier`), as the parser resolved them."""
    import importlib

    try:  # typer vendors click in its recent versions; before, it ran on click itself
        globals_module = importlib.import_module("typer._click.globals")
    except ImportError:
        globals_module = importlib.import_module("click.globals")
    ctx: Any = globals_module.get_current_context(silent=True)
    words: list[str] = []
    while ctx is not None and ctx.parent is not None:
        words.insert(0, ctx.info_name or "")
        ctx = ctx.parent
    return words if ctx is not None else sys.argv[1:]


def _fail(
    message: str, hint: str, code: ExitCode, as_json: bool, exc: BaseException | None
) -> None:
    from tierup.pipeline import ci

    ci.SECTION.end()
    if STATE.verbose and exc is not None:
        sys.stderr.write(redact("".join(traceback.format_exception(exc))))
    # one line, whatever the message quotes (an AWS error may quote a whole request)
    message, hint = one_line(redact(message)), one_line(redact(hint))
    ci.publish_error(ci.command_title(command_words()), message, hint, int(code))
    status = "failed"
    if as_json:
        doc: dict[str, Any] = {
            "status": status,
            "error": message,
            "hint": hint,
            "exit_code": int(code),
        }
        print_json(doc)
    line = f"error: {message}" + (f" (hint: {hint})" if hint else "")
    sys.stderr.write(redact(line) + "\n")
    raise typer.Exit(int(code))
