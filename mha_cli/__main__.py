"""`python -m mha_cli`: the same as the `mha` command."""

from mha_cli.cli import main

main()
