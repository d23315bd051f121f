"""`python -m trigger_ml.cli ...` runs the command line."""

from trigger_ml.cli import main

main()
