"""The `decide` command line (see decide_cli.main)."""
