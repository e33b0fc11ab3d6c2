#!/usr/bin/env python3
"""Turn criterion's results into the README's table.

Run `cargo bench --bench throughput` (and `--bench store`) first, then
`python3 scripts/bench_table.py`. Reads target/criterion/<group>/<engine>/<shape>/new/estimates.json
and prints Markdown tables: ns per session for each engine and shape, and
the ratios vm/closure, closure_strings/vm and cel/vm.
"""
import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "criterion")
POPULATION = 10_000
SHAPES = ["eq", "and3", "in10", "roles2", "mixed", "has"]
ENGINES = ["vm", "vm_single", "closure", "closure_strings", "reference", "cel"]


def estimate(*path):
    """Mean time in ns of one benchmark, or None when it has not run."""
    f = os.path.join(ROOT, *path, "new", "estimates.json")
    try:
        with open(f) as fh:
            return json.load(fh)["mean"]["point_estimate"]
    except OSError:
        return None


def fmt(x, digits=2):
    return "—" if x is None else f"{x:.{digits}f}"


def main():
    rows = []
    for shape in SHAPES:
        t = {e: estimate("eval", e, shape) for e in ENGINES}
        per = {e: (None if v is None else v / POPULATION) for e, v in t.items()}
        ratio = lambda a, b: None if per[a] is None or per[b] is None else per[a] / per[b]
        rows.append((shape, per, ratio("vm", "closure"), ratio("closure_strings", "vm"), ratio("cel", "vm")))
    print("ns per session (10 000 sessions per iteration)\n")
    print("| shape | " + " | ".join(ENGINES) + " | vm/closure | closure_strings/vm | cel/vm |")
    print("|---" * (len(ENGINES) + 4) + "|")
    for shape, per, a, b, c in rows:
        cells = [fmt(per[e]) for e in ENGINES]
        print(f"| {shape} | " + " | ".join(cells) + f" | {fmt(a)} | {fmt(b, 1)} | {fmt(c, 0)} |")

    parse, comp, cel = (estimate("compile", e, "mixed") for e in ("parse", "compile", "cel"))
    if comp is not None:
        print("\ncompile (the `mixed` filter)\n")
        print("| parse | compile (text → program) | cel compile | cel/compile |")
        print("|---|---|---|---|")
        r = None if cel is None else cel / comp
        print(f"| {fmt(parse and parse / 1000)} µs | {fmt(comp / 1000)} µs | {fmt(cel and cel / 1000)} µs | {fmt(r, 1)} |")

    store = [(e, s, estimate("store", e, s)) for e in ("scan_serial", "scan_parallel", "indexed")
             for s in ("eq", "in", "roles", "mixed")]
    if any(v is not None for _, _, v in store):
        print("\nstore: `count` over 1 000 000 sessions (ms)\n")
        print("| engine | eq | in | roles | mixed |")
        print("|---|---|---|---|---|")
        for e in ("scan_serial", "scan_parallel", "indexed"):
            vals = [v for ee, _, v in store if ee == e]
            if any(v is not None for v in vals):
                print(f"| {e} | " + " | ".join(fmt(v and v / 1e6, 3) for v in vals) + " |")


if __name__ == "__main__":
    sys.exit(main())
