"""`python -m pipeline.cli`: the tierup command line."""

from pipeline.cli import main

main()
