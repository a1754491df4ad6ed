"""`python -m pipeline`: the tierup command line."""

from __future__ import annotations

from pipeline.cli import main

main()
