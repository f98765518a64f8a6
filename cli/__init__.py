"""The ``custody`` command line (click). Errors are caught once, in :func:`cli.main.main`."""
