#!/usr/bin/env python3
"""Progress of `go test -json`, for scripts/test.sh.

Reads go test's JSON events on stdin and prints one line per package as it
finishes (go test's own text output waits for the packages listed before, so
a slow early package hides every later one): "ok", "FAIL" or "?" with the
package's time and the time since the run began. A failing package's output
(and build errors) are printed in full, as `go test` prints them. Lines that
are not JSON (go: downloading ...) pass through. Exits 1 if a package failed.
"""
import json
import sys
import time

start = time.monotonic()
output = {}  # package -> its output lines, kept until it finishes
failed = False
NOISE = ("=== RUN", "=== PAUSE", "=== CONT", "=== NAME", "--- PASS")


def since():
    s = int(time.monotonic() - start)
    return f"[{s // 60}m{s % 60:02d}s]"


for line in sys.stdin:
    try:
        ev = json.loads(line)
    except ValueError:
        sys.stdout.write(line)
        sys.stdout.flush()
        continue
    action, pkg = ev.get("Action"), ev.get("Package") or ev.get("ImportPath", "")
    if action in ("output", "build-output"):
        output.setdefault(pkg, []).append(ev.get("Output", ""))
        continue
    if ev.get("Test") or action not in ("pass", "fail", "skip", "build-fail"):
        continue
    lines = output.pop(pkg, [])
    elapsed = ev.get("Elapsed")
    took = f"{elapsed:.1f}s" if elapsed is not None else ""
    if action == "build-fail":  # the compiler's errors; the package's fail follows
        failed = True
        sys.stdout.write("".join(lines))
    elif action == "fail":
        failed = True
        own = ("FAIL\n", f"FAIL\t{pkg}")  # the package's own summary: said below
        sys.stdout.write("".join(l for l in lines if not l.lstrip().startswith(NOISE) and not l.startswith(own)))
        print(f"FAIL\t{pkg}\t{took}\t{since()}")
    elif action == "skip":
        print(f"?   \t{pkg}\t[no test files]")
    else:
        print(f"ok  \t{pkg}\t{took}\t{since()}")
    sys.stdout.flush()

for pkg, lines in output.items():  # a build failure reported without a package event
    if any(l.strip() for l in lines):
        sys.stdout.write("".join(lines))
sys.exit(1 if failed else 0)
