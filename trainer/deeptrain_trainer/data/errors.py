"""The one error the data pipeline raises for bad or missing data."""

from __future__ import annotations


class DatasetError(Exception):
    """Bad or missing data. The engine exits with ExitCode.INVALID_DATASET and reports str(error).

    `location` names where the problem is: "path:line" for line-based files (jsonl, csv), else the
    file or folder. The message always starts with the location and ends with how to fix it,
    because it is all a user sees in the job's status.
    """

    def __init__(self, location: str, problem: str, fix: str = "") -> None:
        self.location = location
        self.problem = problem
        self.fix = fix
        message = f"{location}: {problem}"
        if fix:
            message += f"; {fix}"
        super().__init__(message)


def line_location(path: str, line: int) -> str:
    return f"{path}:{line}"
