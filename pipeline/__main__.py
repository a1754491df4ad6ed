"""`python -m pipeline`: the tierup command line."""

from pipeline.cli import main

main()
