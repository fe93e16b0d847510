"""Run one benchmark step as a child process and measure it.

What is measured, and why this way:

* **wall**: from spawn to reap, interpreter start included (every step,
  ours and the peers', pays it alike).
* **CPU**: user + system time of the whole process tree, from ``wait4``'s
  rusage: on Linux it covers the child, all its threads, and every
  descendant it waited for (worker processes included).
* **peak anonymous memory**: the largest sum, over the child and all its
  live descendants, of ``RssAnon`` in ``/proc/<pid>/status``, sampled from
  this (parent) process every ``interval_s``. Not RSS: RSS counts the page
  cache pages of a memory-mapped input, which are not the step's own memory
  and which the kernel can drop at will. Pages shared copy-on-write between
  forked processes count once per process (RssAnon cannot tell), which
  overstates a forking step a little. A peak shorter than the sampling
  interval can be missed.

* **other CPU**: CPU seconds the whole machine spent during the step
  (``/proc/stat``) minus the step's own and this sampler's: what other work
  on the machine took from the step. Near 0 on an idle machine.

A step can report inner timings (the codec floor reports its encode-only
wall time) by printing one line ``BENCH_RESULT {json}`` on stdout.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ['Measurement', 'run_measured', 'RESULT_PREFIX']

RESULT_PREFIX = 'BENCH_RESULT '
_PAGE_KB = 1024


@dataclasses.dataclass
class Measurement:
    """What one child process cost. Sizes in bytes, times in seconds."""

    argv: list[str]
    returncode: int
    wall_s: float
    user_s: float
    sys_s: float
    peak_anon_bytes: int
    peak_processes: int
    samples: int
    other_cpu_s: float | None
    stdout: str
    stderr: str
    reported: dict[str, Any]

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            'argv': self.argv,
            'returncode': self.returncode,
            'wall_s': round(self.wall_s, 4),
            'cpu_s': round(self.cpu_s, 4),
            'user_s': round(self.user_s, 4),
            'sys_s': round(self.sys_s, 4),
            'peak_anon_bytes': self.peak_anon_bytes,
            'peak_processes': self.peak_processes,
            'samples': self.samples,
            'other_cpu_s': None if self.other_cpu_s is None else round(self.other_cpu_s, 3),
            'reported': self.reported,
            'stderr_tail': self.stderr[-2000:] if self.returncode else '',
        }


def _children_map() -> dict[int, list[int]]:
    """ppid -> [pid] for every process visible in /proc.

    /proc/<pid>/task/<tid>/children would be cheaper but needs
    CONFIG_PROC_CHILDREN, which many kernels (this one) lack.
    """
    children: dict[int, list[int]] = {}
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open(f'/proc/{name}/stat', 'rb') as fh:
                stat = fh.read()
        except OSError:
            continue  # exited between listdir and open
        # The command name may contain spaces and parentheses: split after
        # the LAST ')'. Fields after it: state, ppid, ...
        fields = stat[stat.rfind(b')') + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(name))
    return children


def _tree(root: int) -> list[int]:
    children = _children_map()
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def _rss_anon_bytes(pid: int) -> int:
    try:
        with open(f'/proc/{pid}/status', 'rb') as fh:
            for line in fh:
                if line.startswith(b'RssAnon:'):
                    return int(line.split()[1]) * _PAGE_KB
    except OSError:
        pass
    return 0  # exited, or a zombie (no memory left)


def sample_tree_anon(root: int) -> tuple[int, int]:
    """(sum of RssAnon over root and its descendants, number of processes)."""
    pids = _tree(root)
    return sum(_rss_anon_bytes(pid) for pid in pids), len(pids)


def machine_busy_s() -> float | None:
    """CPU seconds all cores have spent busy since boot (/proc/stat)."""
    try:
        with open('/proc/stat', 'rb') as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal ...
    values = [int(v) for v in fields[1:]]
    busy = sum(values[:3]) + sum(values[5:8])
    return busy / os.sysconf('SC_CLK_TCK')


def run_measured(
    argv: Sequence[str | os.PathLike],
    *,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
    interval_s: float = 0.02,
    timeout_s: float | None = None,
) -> Measurement:
    """Run ``argv`` to completion and measure it (see the module docstring)."""
    argv = [str(a) for a in argv]
    # Output to files, not pipes: a chatty child must never block on a full
    # pipe while we are busy sampling.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        busy0, own0 = machine_busy_s(), time.process_time()
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=cwd)
        peak, peak_procs, samples = 0, 0, 0
        status, rusage = 0, None
        # A pidfd becomes readable the moment the child exits, so the wall
        # time is not rounded up to the sampling interval (it matters for
        # the 0.25 s startup checks).
        try:
            pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            pidfd = None
        try:
            while True:
                pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
                if pid == proc.pid:
                    break
                anon, nprocs = sample_tree_anon(proc.pid)
                samples += 1
                if anon > peak:
                    peak, peak_procs = anon, nprocs
                if timeout_s is not None and time.perf_counter() - start > timeout_s:
                    proc.kill()
                if pidfd is None:
                    time.sleep(interval_s)
                else:
                    select.select([pidfd], [], [], interval_s)
        except BaseException:
            proc.kill()
            os.wait4(proc.pid, 0)
            raise
        finally:
            if pidfd is not None:
                os.close(pidfd)
        wall = time.perf_counter() - start
        busy1, own1 = machine_busy_s(), time.process_time()
        # We reaped the child ourselves (wait4 gives the tree's rusage,
        # Popen.wait would not): tell Popen so it does not wait again.
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors='replace')
        stderr = err.read().decode(errors='replace')
    other = None
    if busy0 is not None and busy1 is not None:
        tree = rusage.ru_utime + rusage.ru_stime
        other = max(0.0, (busy1 - busy0) - tree - (own1 - own0))
    reported: dict[str, Any] = {}
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            reported.update(json.loads(line[len(RESULT_PREFIX) :]))
    return Measurement(
        argv=argv,
        returncode=proc.returncode,
        wall_s=wall,
        user_s=rusage.ru_utime,
        sys_s=rusage.ru_stime,
        peak_anon_bytes=peak,
        peak_processes=peak_procs,
        samples=samples,
        other_cpu_s=other,
        stdout=stdout,
        stderr=stderr,
        reported=reported,
    )


def report_result(**values: Any) -> None:
    """Called inside a child step: hand inner values to :func:`run_measured`."""
    print(RESULT_PREFIX + json.dumps(values), flush=True)


def path_size(path: str | os.PathLike) -> int:
    """Bytes of a file, or of every file under a directory."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob('*') if p.is_file())


def remove_paths(*paths: str | os.PathLike) -> None:
    """Delete the files and directories an earlier run left (missing ones are fine)."""
    import shutil

    for path in map(Path, paths):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
