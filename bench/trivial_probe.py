"""The trivial stdlib probe the reference runner and Ansible run: one /proc read, one line.

Python 3.6+, standard library only, nothing imported beyond what the interpreter
loads at start: the cost on the host is the interpreter's start, nothing else.
"""

import sys

with open("/proc/loadavg") as f:
    load = f.read().split()[:3]
sys.stdout.write("load " + " ".join(load) + "\n")
