"""``python -m custody``: the command line. The entry point is the only file of
the core that reaches outside it; the CLI itself lives in the ``cli`` package."""

from cli.main import main

if __name__ == "__main__":
    main()
