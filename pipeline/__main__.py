"""`python -m tierup.pipeline`: the tierup command line."""

from tierup.pipeline.cli import main

main()
