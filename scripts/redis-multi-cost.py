#!/usr/bin/env python3
"""What MULTI/EXEC costs Redis per results write (docs/benchmarks.md).

Pipes 100 pipelines of 2,000 SETEX + PUBLISH (600-byte values, as the results writer sends
them) into Redis with `redis-cli --pipe`: inside MULTI/EXEC, without, and as one EVALSHA per
pipeline of a Lua script doing the same SETEX + PUBLISH loop (atomic too, one reply instead
of 4,000). Prints Redis's CPU time per write for each, read from `INFO cpu` before and
after. The keys live under a per-run prefix and are deleted afterwards.

Usage: python3 scripts/redis-multi-cost.py [redis-cli options, e.g. -p 6379]
"""

import os
import subprocess
import sys
import tempfile

CLI = ["redis-cli", *sys.argv[1:]]
PIPELINES, WRITES, VALUE = 100, 2000, "x" * 600
PREFIX = f"multi-cost-{os.getpid()}:"


def command(*words):
    out = [f"*{len(words)}\r\n"]
    for w in words:
        out.append(f"${len(w.encode())}\r\n{w}\r\n")
    return "".join(out)


def redis_cpu():
    info = subprocess.run(CLI + ["info", "cpu"], capture_output=True, text=True, check=True)
    fields = dict(
        line.split(":", 1) for line in info.stdout.splitlines() if line.startswith("used_cpu_")
    )
    return float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])


LUA = """for i = 1, #KEYS do
  redis.call('SETEX', KEYS[i], ARGV[1], ARGV[i + 1])
  redis.call('PUBLISH', KEYS[i], ARGV[i + 1])
end
return #KEYS"""


def pipeline(mode, sha):
    keys = [f"{PREFIX}quote:SYM{i}" for i in range(WRITES)]
    if mode == "script":
        return command("EVALSHA", sha, str(WRITES), *keys, "600", *([VALUE] * WRITES))
    parts = [command("MULTI")] if mode == "multi" else []
    for key in keys:
        parts.append(command("SETEX", key, "600", VALUE))
        parts.append(command("PUBLISH", key, VALUE))
    if mode == "multi":
        parts.append(command("EXEC"))
    return "".join(parts)


def run(mode, sha):
    parts = [pipeline(mode, sha) for _ in range(PIPELINES)]
    # From a file, so that Redis reads at the pace of redis-cli, not of this script.
    with tempfile.TemporaryFile() as f:
        f.write("".join(parts).encode())
        f.seek(0)
        before = redis_cpu()
        subprocess.run(CLI + ["--pipe"], stdin=f, check=True, stdout=subprocess.DEVNULL)
        return (redis_cpu() - before) * 1e6 / (PIPELINES * WRITES)


def main():
    load = subprocess.run(CLI + ["script", "load", LUA], capture_output=True, text=True, check=True)
    sha = load.stdout.strip()
    try:
        for mode, label in (("multi", "MULTI/EXEC"), ("plain", "plain"), ("script", "Lua script")):
            print(f"{label}: {run(mode, sha):.2f} us of Redis CPU per write")
    finally:
        keys = [f"{PREFIX}quote:SYM{i}" for i in range(WRITES)]
        for i in range(0, len(keys), 500):
            subprocess.run(CLI + ["del", *keys[i:i + 500]], stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
