"""Processes that end with the one that started them, and the tree of processes under a pid.

`deeptrain run` starts torchrun, which starts one process per rank in a session of its own. When
the CLI is killed outright (SIGKILL, a closed terminal's process group gone) nothing would stop
them; Linux's parent-death signal does: each process asks to get SIGTERM when its parent ends,
which the trainer answers like any SIGTERM (checkpoint, then exit).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(signum: int = signal.SIGTERM, expected_parent: int | None = None) -> bool:
    """Ask for `signum` when the parent process ends; False where the platform has no such request."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
        return False
    # The parent may have ended before the request was made: then no signal would ever come.
    if expected_parent is not None and os.getppid() != expected_parent:
        os.kill(os.getpid(), signum)
    return True


def process_tree(pid: int) -> list[int]:
    """`pid` and every process below it (children first found, then theirs), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) is in parentheses and may hold spaces; the parent pid follows it.
        parent = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, queue = [], [pid]
    while queue:
        current = queue.pop(0)
        tree.append(current)
        queue.extend(children.get(current, []))
    return tree


def kill_tree(pids: list[int], signum: int = signal.SIGKILL) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
