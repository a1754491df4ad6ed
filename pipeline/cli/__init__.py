"""The command line: a thin shell over ``pipeline``.

Each command parses its options, loads the configuration, calls one core function,
renders the result and returns its exit code. Each area of commands registers its own
(``pipeline.cli.common`` holds what they share); this module only gathers them.
"""

from __future__ import annotations

import os

from tierup.pipeline.cli import build, commands, init, plans, release, undo
from tierup.pipeline.cli.common import app, rollback_app

__all__ = ["app", "main"]

for _area in (init, commands, build, release, undo, plans):
    _area.register(app)
app.add_typer(rollback_app, name="rollback")


def main() -> None:
    # tierup's models use no pydantic plugin: without this, the first model looks for plugins
    # in every installed distribution's metadata, on every run (a user's setting still wins)
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from tierup.pipeline import interrupt

    interrupt.install()
    app()
