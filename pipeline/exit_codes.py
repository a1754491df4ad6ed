"""The command line's exit codes, and the one an error gets.

0 ok, 1 failed, 2 refused before any write (a wrong input or configuration: nothing written),
3 partial, 4 timed out (a rollout may still finish).
"""

from __future__ import annotations

from enum import IntEnum

from tierup.stages.errors import TierupError


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    BAD_INPUT = 2
    PARTIAL = 3
    TIMED_OUT = 4


def exit_code_of(error: TierupError) -> ExitCode:
    """A refusal (found before any write) is 2; any other error is 1."""
    return ExitCode.BAD_INPUT if error.refusal else ExitCode.FAILED
