"""What machine a benchmark ran on: printed at the top of every bench script."""

import os
import platform
import sqlite3
import sys


def describe() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"machine: {platform.system()} {platform.release()} {platform.machine()}, {cpu}, "
            f"{os.cpu_count()} cores; python {sys.version.split()[0]}; "
            f"sqlite {sqlite3.sqlite_version}")
