"""`make bench-postgres`: puff.postgres against asyncpg, psycopg 3 and psycopg2, one interleaved run.

Every (driver, scenario) measurement runs in its own process (contenders.py) against the same
private Postgres (scripts/services.sh), in a database of its own (puff_bench). For each round and
scenario the drivers run in turn, the order rotated each round; the table shows medians, Puff ÷
each peer, CPU per op of the client process and of the Postgres server, and the other load on
the machine. Writes bench/results/postgres.json with every raw sample.

Environment:
  BENCH_QUICK=1            a smoke run (1,000 ops per measurement, 1 round; ~30 s)
  BENCH_ROUNDS             rounds (default 5)
  BENCH_OPS                ops per measurement (default 10,000: the issue's sizes)
  BENCH_SCENARIOS=a,b      only these of seq, concurrent, rows, executemany, django
  BENCH_DJANGO_WORKERS     worker processes per server in the django scenario (default 1,2)
  BENCH_DJANGO_SERVERS     only these of puff, gunicorn-gevent, granian, uvicorn
  BENCH_DURATION           seconds of wrk per django measurement (default 3, quick 1)
  BENCH_DRIVERS=puff,...   only these of puff, asyncpg, psycopg, psycopg2
  BENCH_OUT                the JSON path (default bench/results/postgres.json; a quick run
                           writes the gitignored bench/results/postgres-quick.json.tmp)
  BENCH_STRICT=1           exit 1 when a goal is missed
  BENCH_PUFF_IO_THREADS, BENCH_PUFF_SPIN_US   Puff's runtime options (default: its own)
  PUFF_TEST_POSTGRES_URL   the server (run.sh takes it from scripts/services.sh)

`python main.py --render FILE.json` prints the tables of an earlier run again.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from typing import Dict, List, Optional

import data
import django_bench

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench", "common"))
from stamp import loadavg, stamp  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
CHILD_TIMEOUT = 300.0
DATABASE = "puff_bench"
ROWS_FETCHES = 5  # the rows scenario fetches its 10k rows this many times per measurement

SCENARIOS = {
    "seq": ("10k sequential SELECT $1::int round trips, 1 caller", "round trips/s"),
    "concurrent": ("SELECT $1::int from 100 concurrent callers on a pool of 10", "round trips/s"),
    "rows": ("fetch 10k rows of mixed types (int, text, float8, numeric, timestamptz, bool, uuid, "
             "jsonb, date, bigint with NULLs), 5 fetches per measurement", "rows/s"),
    "executemany": ("executemany of 10k INSERTs (int, text, float8, timestamptz) in one "
                    "transaction", "rows/s"),
    "django": ("a Django view doing 10 ORM queries (Item.objects.get by primary key), wrk -c64",
               "req/s"),
}
DRIVERS = {
    "puff": "puff.postgres (greenlets)",
    "asyncpg": "asyncpg + uvloop",
    "psycopg": "psycopg 3 (binary)",
    "psycopg2": "psycopg2-binary",
}
# (scenario, peer, minimum Puff ÷ peer)
GOALS = [("seq", "asyncpg", 1.2), ("concurrent", "asyncpg", 3.0), ("rows", "asyncpg", 1.2),
         ("executemany", "asyncpg", 2.0)]
DJANGO_GOAL = 1.5  # Puff ÷ the best peer setup, per worker count
PACKAGES = ["puff", "asyncpg", "uvloop", "psycopg", "psycopg-binary", "psycopg-pool",
            "psycopg2-binary", "greenlet", "django", "gunicorn", "gevent", "granian", "uvicorn",
            "httptools"]


def _env_list(name: str) -> List[str]:
    return [x.strip() for x in os.environ.get(name, "").split(",") if x.strip()]


def config() -> Dict:
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    cfg = {
        "quick": quick,
        "rounds": int(os.environ.get("BENCH_ROUNDS", 1 if quick else 5)),
        "ops": int(os.environ.get("BENCH_OPS", 1000 if quick else 10_000)),
        "scenarios": _env_list("BENCH_SCENARIOS") or list(SCENARIOS),
        "drivers": _env_list("BENCH_DRIVERS") or list(DRIVERS),
        "callers": 100, "pool_size": 10,
        "django_workers": [int(w) for w in _env_list("BENCH_DJANGO_WORKERS")] or [1, 2],
        "django_servers": _env_list("BENCH_DJANGO_SERVERS") or
        ["puff", "gunicorn-gevent", "granian", "uvicorn"],
        "duration_s": float(os.environ.get("BENCH_DURATION", 1 if quick else 3)),
        "out": os.environ.get("BENCH_OUT") or os.path.join(
            ROOT, "bench", "results", "postgres-quick.json.tmp" if quick else "postgres.json"),
    }
    for key, known in (("scenarios", SCENARIOS), ("drivers", DRIVERS)):
        bad = [x for x in cfg[key] if x not in known]
        if bad:
            sys.exit(f"bench/postgres: unknown {key} {bad}; known: {list(known)}")
    return cfg


# ---- the server --------------------------------------------------------------------------------


def bench_url(base: str) -> str:
    """base with the database replaced by puff_bench (created if missing)."""
    import psycopg2

    conn = psycopg2.connect(base)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
        if cur.fetchone() is None:
            cur.execute(f"CREATE DATABASE {DATABASE}")
        cur.execute("SHOW server_version")
        version = cur.fetchone()[0]
    conn.close()
    u = urllib.parse.urlsplit(base)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + DATABASE, u.query, u.fragment)), version


def postmaster_pid() -> Optional[int]:
    try:
        with open(os.path.join(ROOT, ".puff", "services", "pg.datadir")) as f:
            datadir = f.read().strip()
        with open(os.path.join(datadir, "postmaster.pid")) as f:
            return int(f.readline())
    except (OSError, ValueError):
        return None


def _proc_stat(pid: int):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2:].split()
    return int(fields[1]), sum(int(x) for x in fields[11:15]) / CLK_TCK


def tree_cpu(root: Optional[int]) -> Dict[int, float]:
    """CPU seconds per process of root's tree (Postgres: the postmaster and its backends)."""
    if root is None:
        return {}
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _proc_stat(int(name))
            if st is not None:
                stats[int(name)] = st
    kids: Dict[int, List[int]] = {}
    for pid, (ppid, _) in stats.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            out[pid] = stats[pid][1]
            todo.extend(kids.get(pid, ()))
    return out


def machine_busy() -> float:
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = parts
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


# ---- measuring ---------------------------------------------------------------------------------


def run_child(driver: str, scenario: str, ops: int, url: str, pm: Optional[int]) -> Dict:
    if scenario == "executemany":
        data.truncate_inserts(url)
    env = dict(os.environ, BENCH_PG_URL=url)
    argv = [sys.executable, os.path.join(HERE, "contenders.py"), driver, scenario, str(ops)]
    pg0, busy0, t0 = tree_cpu(pm), machine_busy(), time.monotonic()
    p = subprocess.Popen(argv, cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        out, err = p.communicate(timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return {"error": f"timed out after {CHILD_TIMEOUT:g} s"}
    wall = time.monotonic() - t0
    pg1, busy1 = tree_cpu(pm), machine_busy()
    if p.returncode != 0:
        tail = " | ".join((err or out).strip().splitlines()[-6:])
        return {"error": f"exited with {p.returncode}: {tail}"}
    r = json.loads(out.strip().splitlines()[-1])
    # Whole-process figures of the child (start-up included) for the load accounting; the
    # timed part's own CPU is in cpu_user_s / cpu_sys_s.
    pg_cpu = sum(v - pg0.get(k, 0.0) for k, v in pg1.items())
    child_cpu = _child_cpu_total()
    ops = r["ops"]
    r.update({
        "ops_per_s": ops / r["wall_s"],
        "us_per_op": 1e6 * r["wall_s"] / ops,
        "cpu_us_per_op": 1e6 * (r["cpu_user_s"] + r["cpu_sys_s"]) / ops,
        # Postgres (postmaster and backends) over the child's whole life, per timed op: an
        # upper bound, the warm-up and connecting are in it.
        "pg_cpu_us_per_op": 1e6 * pg_cpu / ops,
        "other_cpu_cores": round(max(0.0, (busy1 - busy0) - pg_cpu - child_cpu) / wall, 3),
        "loadavg_1m": (loadavg() or [None])[0],
    })
    return r


def _child_cpu_total() -> float:
    """CPU seconds of the children reaped since the last call (os.times() accumulates them)."""
    ru = os.times()
    total = ru.children_user + ru.children_system
    prev = getattr(_child_cpu_total, "prev", 0.0)
    _child_cpu_total.prev = total  # type: ignore[attr-defined]
    return total - prev


def _rotated(items: List, r: int) -> List:
    return items[r % len(items):] + items[:r % len(items)] if items else []


def summarize(samples: List[Dict]) -> Dict:
    ok = [s for s in samples if "error" not in s]
    if not ok:
        return {}

    def med(k):
        return statistics.median(s[k] for s in ok)

    vals = [s["ops_per_s"] for s in ok]
    out = {"ops_per_s": med("ops_per_s"), "min": min(vals), "max": max(vals),
           "cpu_us_per_op": med("cpu_us_per_op"), "pg_cpu_us_per_op": med("pg_cpu_us_per_op"),
           "samples_ok": len(ok), "samples_failed": len(samples) - len(ok)}
    if "us_per_op" in ok[0]:
        out["us_per_op"] = med("us_per_op")
    if "p99_ms" in ok[0]:  # the django scenario (wrk)
        out["p99_ms"] = med("p99_ms")
        errors: Dict[str, int] = {}
        for s in ok:
            for k, v in s.get("errors", {}).items():
                errors[k] = errors.get(k, 0) + v
        out["errors"] = errors
    return out


def run(cfg: Dict) -> Dict:
    base = os.environ.get("PUFF_TEST_POSTGRES_URL")
    if not base:
        sys.exit("bench/postgres: PUFF_TEST_POSTGRES_URL is not set (run.sh sets it from "
                 "scripts/services.sh)")
    url, server_version = bench_url(base)
    data.setup(url)
    pm = postmaster_pid()
    st = stamp(ROOT, packages=PACKAGES, reproduce="make bench-postgres")
    st["versions"]["postgres"] = server_version
    _child_cpu_total()  # the baseline for the children's CPU deltas
    results: Dict = {"benchmark": "Postgres drivers (bench/postgres)", "stamp": st,
                     "config": cfg, "scenarios": {}}
    started, done = time.monotonic(), 0
    print(f"bench/postgres: {cfg['rounds']} rounds of {cfg['scenarios']}; load average "
          f"{st['loadavg_at_start']}", file=sys.stderr)
    plan = []  # (key in results, scenario, what to rotate: drivers or servers, workers)
    for s in cfg["scenarios"]:
        title, unit = SCENARIOS[s]
        if s == "django":
            for w in cfg["django_workers"]:
                key = f"django_w{w}"
                plan.append((key, s, cfg["django_servers"], w))
                results["scenarios"][key] = {
                    "title": f"{title}, {w} worker process{'es' if w > 1 else ''} per server",
                    "unit": unit, "workers": w, "drivers": {
                        d: {"label": django_bench.SERVERS[d][0], "samples": []}
                        for d in cfg["django_servers"]}}
            continue
        plan.append((s, s, cfg["drivers"], 0))
        results["scenarios"][s] = {"title": title, "unit": unit, "drivers": {
            d: {"label": DRIVERS[d], "samples": []} for d in cfg["drivers"]}}
    total = sum(len(p[2]) for p in plan) * cfg["rounds"]
    logdir = tempfile.mkdtemp(prefix="bench-postgres-")
    results["server_logs"] = logdir

    def pg_cpu() -> float:
        return sum(tree_cpu(pm).values())

    for r in range(cfg["rounds"]):
        for key, s, names, workers in plan:
            slots = results["scenarios"][key]["drivers"]
            for d in _rotated(names, r):
                done += 1
                if s == "django":
                    sample = django_bench.measure(d, workers, cfg["duration_s"], url, pg_cpu, logdir)
                else:
                    ops = cfg["ops"] * (ROWS_FETCHES if s == "rows" else 1)
                    sample = run_child(d, s, ops, url, pm)
                sample["round"] = r
                slots[d]["samples"].append(sample)
                if "error" in sample:
                    line = f"FAILED: {sample['error']}"
                else:
                    line = (f"{sample['ops_per_s']:,.0f} ops/s, CPU {sample['cpu_us_per_op']:.1f} "
                            f"us/op (+ Postgres {sample['pg_cpu_us_per_op']:.1f}), other load "
                            f"{sample['other_cpu_cores']:.2f} cores")
                print(f"[{done}/{total}] r{r} {key} {d}: {line}", file=sys.stderr, flush=True)
    for sc in results["scenarios"].values():
        for slot in sc["drivers"].values():
            slot["median"] = summarize(slot["samples"])
            infos = [x.get("info") for x in slot["samples"] if x.get("info")]
            slot["info"] = infos[-1] if infos else None
    st.update(loadavg_at_end=loadavg(), duration_s=round(time.monotonic() - started, 1))
    results["ratios"] = ratios(results)
    results["goals"] = goals(results)
    results["table"] = render(results)
    return results


# ---- report ------------------------------------------------------------------------------------


def _rate(results: Dict, s: str, d: str) -> Optional[float]:
    slot = results["scenarios"].get(s, {}).get("drivers", {}).get(d) or {}
    return (slot.get("median") or {}).get("ops_per_s")


def ratios(results: Dict) -> Dict[str, Optional[float]]:
    out = {}
    for s, sc in results["scenarios"].items():
        puff = _rate(results, s, "puff")
        for d in sc["drivers"]:
            if d != "puff":
                peer = _rate(results, s, d)
                out[f"{s}: puff/{d}"] = round(puff / peer, 3) if puff and peer else None
    return out


def goals(results: Dict) -> List[Dict]:
    out = []
    for s, peer, target in GOALS:
        r = results["ratios"].get(f"{s}: puff/{peer}")
        verdict = "N.A." if r is None else ("PASS" if r >= target else "MISS")
        out.append({"scenario": s, "peer": peer, "target": target, "ratio": r, "verdict": verdict,
                    "goal": f"{s}: Puff ≥ {target:g}× {peer}"})
    for key, sc in results["scenarios"].items():
        if not key.startswith("django_"):
            continue
        peers = {d: _rate(results, key, d) for d in sc["drivers"] if d != "puff"}
        peers = {d: v for d, v in peers.items() if v}
        best = max(peers, key=peers.get) if peers else None
        puff = _rate(results, key, "puff")
        r = round(puff / peers[best], 3) if puff and best else None
        errors = ((sc["drivers"].get("puff") or {}).get("median") or {}).get("errors")
        verdict = "N.A." if r is None else ("PASS" if r >= DJANGO_GOAL and not errors else "MISS")
        out.append({"scenario": key, "peer": best, "target": DJANGO_GOAL, "ratio": r,
                    "verdict": verdict, "goal": f"{key}: Puff ≥ {DJANGO_GOAL:g}× the best peer ({best})"})
    return out


def _fmt(x: Optional[float], digits: int = 0) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def _other_load(results: Dict) -> float:
    vals = sorted(x["other_cpu_cores"] for sc in results["scenarios"].values()
                  for slot in sc["drivers"].values() for x in slot["samples"]
                  if "other_cpu_cores" in x)
    return vals[len(vals) // 2] if vals else 0.0


def render(results: Dict) -> str:
    st, cfg = results["stamp"], results["config"]
    out = [f"# bench/postgres: {st['date']}, {st['cpu_model']} × {st['cores']} cores, Python "
           f"{st['python']}, Postgres {st['versions'].get('postgres')}, puff "
           f"{st['puff_commit'][:10]}" + (" (+ uncommitted changes)" if st.get("puff_tree_dirty") else ""),
           "",
           ("QUICK smoke run (BENCH_QUICK=1): small and noisy. " if cfg.get("quick") else "")
           + f"{cfg['ops']:,} ops per measurement, one process each, {cfg['rounds']} interleaved "
           f"round(s) (driver order rotated), medians (min–max). CPU = user+system time of the "
           f"client process over the timed part ÷ ops; Postgres CPU = the server's processes over "
           f"the client's whole life ÷ ops (connect and warm-up included). Puff ÷ driver > 1 means "
           f"Puff is faster.",
           "",
           f"Load average {st.get('loadavg_at_start')} at start, {st.get('loadavg_at_end')} at the "
           f"end; CPU used by other processes during the measurements: median "
           f"{_other_load(results):.2f} cores of {st['cores']}. Compare rows of one run only.",
           ""]
    for s, sc in results["scenarios"].items():
        puff = _rate(results, s, "puff")
        if s.startswith("django_"):
            out += _render_django(s, sc, puff)
            continue
        out += [f"### {s}: {sc['title']} ({sc['unit']})", "",
                f"| driver | {sc['unit']} | (min – max) | Puff ÷ driver | µs/op | CPU µs/op | "
                f"Postgres CPU µs/op |", "|---|---:|---:|---:|---:|---:|---:|"]
        for d, slot in sc["drivers"].items():
            m = slot.get("median") or {}
            if not m:
                why = next((x["error"] for x in slot["samples"] if "error" in x), "not measured")
                out.append(f"| {slot['label']} | failed: {why[:200].replace('|', '/')} | | | | | |")
                continue
            ratio = f"{puff / m['ops_per_s']:.2f}×" if puff else "–"
            failed = f" ({m['samples_failed']} failed)" if m["samples_failed"] else ""
            out.append(f"| {slot['label']} | {_fmt(m['ops_per_s'])}{failed} | "
                       f"{_fmt(m['min'])} – {_fmt(m['max'])} | {ratio} | {m['us_per_op']:.2f} | "
                       f"{m['cpu_us_per_op']:.2f} | {m['pg_cpu_us_per_op']:.2f} |")
        out.append("")
    out += ["### Goals", "", "| goal | Puff ÷ peer | verdict |", "|---|---:|---|"]
    for g in results["goals"]:
        r = "–" if g["ratio"] is None else f"{g['ratio']:.2f}×"
        out.append(f"| {g['goal']} | {r} | {g['verdict']} |")
    notes = []
    for s, sc in results["scenarios"].items():
        for d, slot in sc["drivers"].items():
            info = slot.get("info") or {}
            how = info.get("how") or info.get("rows_as")
            if how:
                notes.append(f"{s}/{d}: {how}")
    if notes:
        out += ["", "How each ran: " + "; ".join(notes) + "."]
    return "\n".join(out)


def _render_django(s: str, sc: Dict, puff: Optional[float]) -> List[str]:
    out = [f"### {s}: {sc['title']} ({sc['unit']})", "",
           "| server | req/s | (min – max) | Puff ÷ server | p99 ms | CPU µs/req | Postgres CPU µs/req "
           "| errors |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for d, slot in sc["drivers"].items():
        m = slot.get("median") or {}
        if not m:
            why = next((x["error"] for x in slot["samples"] if "error" in x), "not measured")
            out.append(f"| {slot['label']} | failed: {why[:200].replace('|', '/')} | | | | | | |")
            continue
        ratio = f"{puff / m['ops_per_s']:.2f}×" if puff else "–"
        errs = ", ".join(f"{k} {v}" for k, v in sorted(m["errors"].items())) or "0"
        out.append(f"| {slot['label']} | {_fmt(m['ops_per_s'])} | {_fmt(m['min'])} – {_fmt(m['max'])} | "
                   f"{ratio} | {m['p99_ms']:.2f} | {m['cpu_us_per_op']:.0f} | {m['pg_cpu_us_per_op']:.0f} | "
                   f"{errs} |")
    out.append("")
    return out


def main(argv: List[str]) -> int:
    if len(argv) == 3 and argv[1] == "--render":
        with open(argv[2]) as f:
            print(render(json.load(f)))
        return 0
    cfg = config()
    results = run(cfg)
    os.makedirs(os.path.dirname(cfg["out"]), exist_ok=True)
    tmp = cfg["out"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    os.replace(tmp, cfg["out"])
    print(results["table"])
    print(f"\nwrote {os.path.relpath(cfg['out'], ROOT)} ({results['stamp']['duration_s']:.0f} s)")
    failed = any("error" in x for sc in results["scenarios"].values()
                 for slot in sc["drivers"].values() for x in slot["samples"])
    if failed:
        return 1
    if os.environ.get("BENCH_STRICT") and any(g["verdict"] == "MISS" for g in results["goals"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
