"""tierup's orchestration: configuration, AWS sessions, plan and run, results, the CLI."""

from __future__ import annotations

__version__ = "0.1.0"
