"""`python -m sheetstream` runs the command line."""

from sheetstream.cli import main

main()
