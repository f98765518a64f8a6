"""The alarm of a failed nightly verification: the operator's alert command and webhook."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def notify_failure(report_path: Path, report: dict[str, Any], *, command: str | None = None,
                   webhook: str | None = None, timeout: float = 20.0) -> list[str]:
    """Run the alert command (argv split with shlex, the report path appended; never a shell) and/or
    POST the report JSON to the webhook. Returns one line per hook saying how it went; never raises."""
    import shlex
    import subprocess

    done = []
    if command:
        try:
            argv = shlex.split(command) + [str(report_path)]
            result = subprocess.run(argv, shell=False, timeout=timeout, capture_output=True, check=False)
            done.append(f"alert command {argv[0]} exited {result.returncode}")
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            done.append(f"alert command failed: {exc}")
    if webhook:
        try:
            import requests

            response = requests.post(webhook, json=report, timeout=timeout)
            done.append(f"alert webhook answered {response.status_code}")
        except Exception as exc:  # noqa: BLE001 - a failing webhook must not hide the verdict
            done.append(f"alert webhook failed: {type(exc).__name__}: {exc}")
    return done
