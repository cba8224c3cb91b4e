"""Who this process is, for crash recovery (gateway.usecases.recovery).

Every process has a random 16-hex-digit *instance id*, drawn at import and again in a forked
child. It begins every write intent id the process makes (gateway.usecases.writes) and every
temp file name of the ``local`` backend, so recovery knows which process owns a leftover and can
ask the metadata store whether that process is still alive (its heartbeat,
:class:`InstanceRecord`).

This module imports nothing from ``policy``: the object store backends use it too.
"""

from __future__ import annotations

import os
import re
import socket
from functools import cache

#: length of an instance id (hex digits)
ID_LENGTH = 16
_ID = re.compile(r"[0-9a-f]{16}")

_instance_id = os.urandom(ID_LENGTH // 2).hex()


def instance_id() -> str:
    """This process's instance id."""
    return _instance_id


def _redraw_after_fork() -> None:
    # a forked child must neither repeat its parent's intent ids nor pass for its parent
    global _instance_id
    _instance_id = os.urandom(ID_LENGTH // 2).hex()
    process_token.cache_clear()


os.register_at_fork(after_in_child=_redraw_after_fork)


def owner_of(name: str) -> str | None:
    """The instance id a gateway intent id (or a temp name's middle part) starts with; None
    when ``name`` does not start with one (``adopt-...``, ``reconcile-...``)."""
    head = name[:ID_LENGTH]
    return head if _ID.fullmatch(head) else None


@cache
def host_key() -> str:
    """This host and PID namespace: two processes with equal host keys see the same PIDs, so
    one can tell whether the other still runs (:func:`process_alive`)."""
    parts = [socket.gethostname()]
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            parts.append(f.read().strip())
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        # no /proc (not Linux): never claim to know another process's fate
        parts.append(f"unknown-{_instance_id}")
    return "|".join(parts)


def _start_ticks(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ")"
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20 or fields[0] in ("Z", "X", "x"):
        return None  # a zombie (killed, not yet reaped by its parent) is gone as well
    return fields[19]  # field 22: starttime


@cache
def process_token() -> str:
    """``PID:START`` of this process (START: its start time in ticks since boot)."""
    pid = os.getpid()
    return f"{pid}:{_start_ticks(pid) or '?'}"


def process_alive(token: str) -> bool:
    """Whether the process of ``token`` (a :func:`process_token` of this host key) still runs.
    A PID that now belongs to another process (other start time) does not count."""
    pid_text, _, start = token.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return True  # cannot tell: assume alive
    now = _start_ticks(pid)
    if now is None:
        return False
    return start in ("?", now)
