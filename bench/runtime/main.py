"""`make bench-runtime`: Puff's native round trip against the peers, side by side (README.md).

Each contender runs in its own process (contenders.py). A short calibration run sizes every
contender to about BENCH_SECONDS of timed work; then the runner interleaves all contenders over
BENCH_ROUNDS rounds (the order rotates each round), takes medians, prints a table with ratios and
the goals, and writes bench/results/runtime.json.

Settings (environment): BENCH_QUICK=1 (a ~20 s smoke run), BENCH_ROUNDS, BENCH_SECONDS,
BENCH_ONLY=id,id..., BENCH_OUT, BENCH_STRICT=1 (exit 1 when a goal is missed),
BENCH_PUFF_IO_THREADS, BENCH_PUFF_SPIN_US, BENCH_PEER_LOOP=uvloop|asyncio.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench", "common"))

from stamp import loadavg, stamp  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3" if QUICK else "5"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "0.15" if QUICK else "1.2"))
CALIBRATION_SECONDS = 0.05 if QUICK else 0.1
CHILD_TIMEOUT = 180.0
PEER_LOOP = os.environ.get("BENCH_PEER_LOOP", "uvloop")


@dataclasses.dataclass
class Contender:
    id: str
    worker: str  # function name in contenders.py
    concurrency: int
    label: str
    guess: float  # calls/s, only to size the calibration run
    kind: str  # "puff", "peer" or "floor"
    runs: List[dict] = dataclasses.field(default_factory=list)
    calls: int = 0
    error: Optional[str] = None

    def median(self, key: str) -> float:
        return statistics.median(r[key] for r in self.runs)

    def values(self, key: str) -> List[float]:
        return [r[key] for r in self.runs]


def contenders() -> List[Contender]:
    loop = "uvloop" if PEER_LOOP == "uvloop" else "asyncio"
    c = [
        Contender("puff_greenlet_1", "puff_greenlet", 1, "Puff, greenlet: noop_async()", 90e3, "puff"),
        Contender("puff_greenlet_1000", "puff_greenlet", 1000, "Puff, greenlet: noop_async()", 1.2e6, "puff"),
        Contender("puff_asyncio_1", "puff_asyncio", 1, "Puff, asyncio: await noop_async()", 90e3, "puff"),
        Contender("puff_asyncio_1000", "puff_asyncio", 1000, "Puff, asyncio: await noop_async()", 700e3, "puff"),
        Contender("gevent_threadpool_1", "gevent_threadpool", 1, "gevent: hub.threadpool.apply(f)", 30e3, "peer"),
        Contender("gevent_threadpool_1000", "gevent_threadpool", 1000, "gevent: hub.threadpool.apply(f)", 40e3,
                  "peer"),
        Contender("asyncio_executor_1", "asyncio_executor", 1, f"{loop}: await run_in_executor(None, f)", 25e3,
                  "peer"),
        Contender("asyncio_executor_1000", "asyncio_executor", 1000, f"{loop}: await run_in_executor(None, f)",
                  45e3, "peer"),
        Contender("greenlet_switch_1", "greenlet_switch", 1, "floor: greenlet switch pair", 2e6, "floor"),
        Contender("asyncio_threadsafe_1", "asyncio_threadsafe", 1, f"floor: {loop} call_soon_threadsafe trip",
                  35e3, "floor"),
        Contender("asyncio_threadsafe_1000", "asyncio_threadsafe", 1000,
                  f"floor: {loop} call_soon_threadsafe trip", 500e3, "floor"),
    ]
    only = [x for x in os.environ.get("BENCH_ONLY", "").split(",") if x]
    if only:
        unknown = set(only) - {x.id for x in c}
        if unknown:
            sys.exit(f"BENCH_ONLY: unknown contender(s) {sorted(unknown)}; known: {[x.id for x in c]}")
        c = [x for x in c if x.id in only]
    return c


def run_child(c: Contender, calls: int) -> dict:
    argv = [sys.executable, os.path.join(HERE, "contenders.py"), c.worker, str(calls), str(c.concurrency)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=CHILD_TIMEOUT, cwd=HERE)
    if p.returncode != 0:
        tail = "\n".join((p.stderr or p.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"{c.id} exited with {p.returncode}:\n{tail}")
    line = p.stdout.strip().splitlines()[-1]
    r = json.loads(line)
    r["calls_per_s"] = r["calls"] / r["wall_s"]
    r["us_per_call"] = 1e6 * r["wall_s"] / r["calls"]
    r["cpu_us_per_call"] = 1e6 * (r["cpu_user_s"] + r["cpu_sys_s"]) / r["calls"]
    return r


def calibrate(c: Contender) -> None:
    probe = max(c.concurrency * 5, int(c.guess * CALIBRATION_SECONDS))
    r = run_child(c, probe)
    c.calls = max(c.concurrency * 10, int(r["calls_per_s"] * SECONDS))


def fmt_rate(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    if x >= 1e3:
        return f"{x / 1e3:.1f} k"
    return f"{x:.0f}"


def fmt_us(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def fmt_ratio(x: Optional[float]) -> str:
    if x is None:
        return "-"
    return f"{x:.1f}x" if x >= 10 else f"{x:.2f}x"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main() -> int:
    all_c = contenders()
    by_id: Dict[str, Contender] = {c.id: c for c in all_c}
    started = time.monotonic()
    st = stamp(ROOT, packages=["puff", "greenlet", "gevent", "uvloop"],
               reproduce="make bench-runtime")
    log(f"bench-runtime: {len(all_c)} contenders x {ROUNDS} rounds, ~{SECONDS:g} s each"
        f"{' (quick)' if QUICK else ''}; load average {st['loadavg_at_start']}")

    for c in all_c:
        try:
            calibrate(c)
        except Exception as e:  # noqa: BLE001 - report and go on with the others
            c.error = str(e)
            log(f"  calibration of {c.id} failed: {e}")
    live = [c for c in all_c if not c.error]
    for rnd in range(ROUNDS):
        order = live[rnd % len(live):] + live[:rnd % len(live)] if live else []
        for c in order:
            if c.error:
                continue
            try:
                r = run_child(c, c.calls)
            except Exception as e:  # noqa: BLE001
                c.error = str(e)
                log(f"  {c.id} failed: {e}")
                continue
            c.runs.append(r)
        log(f"  round {rnd + 1}/{ROUNDS} done ({time.monotonic() - started:.0f} s)")

    ok = [c for c in all_c if c.runs]
    load_end = loadavg()

    # ---- the table -----------------------------------------------------------------------------------
    def rate(cid: str) -> Optional[float]:
        c = by_id.get(cid)
        return c.median("calls_per_s") if c and c.runs else None

    def us(cid: str) -> Optional[float]:
        c = by_id.get(cid)
        return c.median("us_per_call") if c and c.runs else None

    def div(a: Optional[float], b: Optional[float]) -> Optional[float]:
        return a / b if a is not None and b else None

    out = []
    out.append("")
    out.append('Puff runtime round trip: "run something off the Python thread and resume the caller"')
    out.append(f"{st['date']}  {st['cpu_model']}, {st['cores']} cores  Python {st['python']}  "
               f"puff {st['puff_commit'][:12]}{' (dirty tree)' if st['puff_tree_dirty'] else ''}")
    out.append(f"{len(ok) and ROUNDS} interleaved rounds, one process per run, medians; load average "
               f"{st['loadavg_at_start']} at start, {load_end} at end")
    out.append("")
    hdr = f"{'contender':<44} {'callers':>7} {'calls/s':>10} {'(min - max)':>20} {'us/call':>8} {'CPU us/call':>11}"
    out.append(hdr)
    out.append("-" * len(hdr))
    for c in all_c:
        if not c.runs:
            out.append(f"{c.label:<44} {c.concurrency:>7} {'FAILED':>10}")
            continue
        rates = c.values("calls_per_s")
        spread = f"({fmt_rate(min(rates))} - {fmt_rate(max(rates))})"
        out.append(f"{c.label:<44} {c.concurrency:>7} {fmt_rate(c.median('calls_per_s')):>10} {spread:>20} "
                   f"{fmt_us(c.median('us_per_call')):>8} {fmt_us(c.median('cpu_us_per_call')):>11}")
    out.append("")
    out.append("Speed-up, Puff / peer (calls/s; same number of callers):")
    peers = [("gevent_threadpool", "gevent threadpool"), ("asyncio_executor", "run_in_executor"),
             ("asyncio_threadsafe", "threadsafe floor")]
    hdr2 = f"{'':<36}" + "".join(f"{p[1]:>20}" for p in peers)
    out.append(hdr2)
    ratios: Dict[str, Optional[float]] = {}
    for puff_id, name in [("puff_greenlet", "Puff greenlet"), ("puff_asyncio", "Puff asyncio")]:
        for n in (1, 1000):
            row = f"{name + f', {n} caller' + ('s' if n > 1 else ''):<36}"
            for pid, _ in peers:
                x = div(rate(f"{puff_id}_{n}"), rate(f"{pid}_{n}"))
                ratios[f"{puff_id}_{n}/{pid}_{n}"] = x
                row += f"{fmt_ratio(x):>20}"
            out.append(row)
    out.append("")
    out.append("Cost per call / bare greenlet switch pair (wall us; CPU us in brackets):")
    sw_us = us("greenlet_switch_1")
    sw_cpu = by_id["greenlet_switch_1"].median("cpu_us_per_call") if by_id.get("greenlet_switch_1") and \
        by_id["greenlet_switch_1"].runs else None
    for cid in ("puff_greenlet_1000", "puff_asyncio_1000", "puff_greenlet_1", "puff_asyncio_1"):
        c = by_id.get(cid)
        if not c or not c.runs:
            continue
        x = div(us(cid), sw_us)
        y = div(c.median("cpu_us_per_call"), sw_cpu)
        ratios[f"{cid}/greenlet_switch_1"] = x
        ratios[f"{cid}/greenlet_switch_1 (cpu)"] = y
        out.append(f"  {c.label + f', {c.concurrency} caller' + ('s' if c.concurrency > 1 else ''):<52}"
                   f"{fmt_ratio(x):>8}  ({fmt_ratio(y)})")

    # ---- goals ------------------------------------------------------------------------------------------
    goals = []

    def goal(name: str, values: Dict[str, Optional[float]], target: float, higher_is_better: bool) -> None:
        known = {k: v for k, v in values.items() if v is not None}
        if not known or len(known) < len(values):
            passed = None
        elif higher_is_better:
            passed = all(v >= target for v in known.values())
        else:
            passed = all(v <= target for v in known.values())
        goals.append({"goal": name, "values": values, "target": target,
                      "higher_is_better": higher_is_better, "pass": passed})

    goal("throughput, 1,000 callers: Puff >= 10x gevent's threadpool",
         {"greenlet": ratios.get("puff_greenlet_1000/gevent_threadpool_1000"),
          "asyncio": ratios.get("puff_asyncio_1000/gevent_threadpool_1000")}, 10.0, True)
    goal("throughput, 1,000 callers: Puff >= 10x run_in_executor",
         {"greenlet": ratios.get("puff_greenlet_1000/asyncio_executor_1000"),
          "asyncio": ratios.get("puff_asyncio_1000/asyncio_executor_1000")}, 10.0, True)
    goal("amortised cost per call (greenlet, 1,000 callers) <= 3x a bare greenlet switch pair",
         {"greenlet": ratios.get("puff_greenlet_1000/greenlet_switch_1")}, 3.0, False)
    out.append("")
    out.append("Goals:")
    for g in goals:
        mark = {True: "PASS", False: "MISS", None: "n/a "}[g["pass"]]
        vals = ", ".join(f"{k} {fmt_ratio(v)}" for k, v in g["values"].items())
        out.append(f"  [{mark}] {g['goal']}: {vals}")
    out.append("")
    out.append(f"Machine shared with other work? load average {st['loadavg_at_start']} -> {load_end}; "
               "compare rows of one run, not across runs.")
    print("\n".join(out), flush=True)

    # ---- results file -------------------------------------------------------------------------------
    default_out = "runtime-quick.json.tmp" if QUICK else "runtime.json"
    path = os.environ.get("BENCH_OUT") or os.path.join(ROOT, "bench", "results", default_out)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    doc = {
        "benchmark": "runtime round trip (bench/runtime)",
        "stamp": {**st, "loadavg_at_end": load_end, "duration_s": round(time.monotonic() - started, 1)},
        "config": {
            "quick": QUICK, "rounds": ROUNDS, "target_seconds_per_run": SECONDS,
            "peer_loop": PEER_LOOP,
            "warmup_fraction": 0.1,
            "note": "each result's `info` says what it ran on (I/O threads, spin, loop, pool sizes)",
        },
        "results": {
            c.id: {
                "label": c.label, "kind": c.kind, "concurrency": c.concurrency, "calls_per_run": c.calls,
                "error": c.error,
                "info": c.runs[-1].get("info") if c.runs else None,
                "median": {k: c.median(k) for k in ("calls_per_s", "us_per_call", "cpu_us_per_call")}
                if c.runs else None,
                "runs": c.runs,
            }
            for c in all_c
        },
        "ratios": ratios,
        "goals": goals,
        "table": "\n".join(out).strip("\n"),
    }
    tmp = path + ".tmp"  # bench/results/*.tmp is gitignored
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    log(f"bench-runtime: wrote {os.path.relpath(path, ROOT)} in {time.monotonic() - started:.0f} s")

    if any(c.error for c in all_c):
        return 1
    if os.environ.get("BENCH_STRICT") and any(g["pass"] is False for g in goals):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
