"""The bodies of ppir's command-line tools, one module per command, each with `main(argv=None)`."""
