"""CPU time used so far by each of some process trees, for bench/techempower.sh.

  python3 bench/techempower/cpu.py PID...

Prints one figure per PID, in seconds: user + system time of the process, of every live process
under it, and of its children that have ended and been waited for (the kernel adds theirs to the
parent's cutime/cstime). Read before and after a wrk run, the difference is what the server (or
PostgreSQL, with the postmaster's pid) spent on that run, whichever core it ran on.
"""
import os
import sys

TICK = os.sysconf("SC_CLK_TCK")


def stat(pid):
    """The fields of /proc/PID/stat after the command name; None once the process is gone."""
    try:
        text = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def children(pid):
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(c) for c in open(f"/proc/{pid}/task/{task}/children").read().split()]
        except OSError:
            pass
    return found


def tree_ticks(pid, root=True):
    fields = stat(pid)
    if fields is None:
        return 0
    # Fields from the state (index 0): utime 11, stime 12, cutime 13, cstime 14.
    ticks = int(fields[11]) + int(fields[12])
    if root:
        ticks += int(fields[13]) + int(fields[14])
    return ticks + sum(tree_ticks(child, root=False) for child in children(pid))


if __name__ == "__main__":
    print(" ".join(f"{tree_ticks(int(pid)) / TICK:.2f}" for pid in sys.argv[1:]))
