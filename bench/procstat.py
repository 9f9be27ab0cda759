"""What bench scripts read of a process in /proc (imported by the Python parts of aot.sh and memory.sh)."""


def children(pid):
    """The pids of its live children (none once it is gone)."""
    try:
        return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        return []


def kib(pid, path, key):
    """A 'Key:   N kB' line of /proc/PID/PATH (status, smaps_rollup), in KiB; 0 when absent."""
    for line in open(f"/proc/{pid}/{path}"):
        if line.startswith(key):
            return int(line.split()[1])
    return 0
