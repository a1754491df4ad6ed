"""`python -m tierup.pipeline.cli`: the tierup command line."""

from tierup.pipeline.cli import main

main()
