"""bench/http: Puff's HTTP server against its peers, one interleaved run (`make bench-http`).

For every scenario and worker count, each contender in turn is started, polled until it
answers, warmed up, measured, and stopped; the contenders are interleaved in rounds, the order
rotated each round, and the medians reported. Prints the tables (report.py) and writes
bench/results/http.json with every raw sample. Environment:

  BENCH_QUICK=1              1 s measurements, 1 round (a smoke run)
  BENCH_SCENARIOS=a,b        only these scenarios (names in scenarios.py)
  BENCH_SERVERS=puff,granian only these servers ("gunicorn" = its three worker classes)
  BENCH_WORKERS=1,2          worker processes per server (default 1 then 2)
  BENCH_DURATION, BENCH_ROUNDS, BENCH_WARMUP   override the defaults (3 s, 3, 1 s)
  BENCH_OUT                  the JSON path (default bench/results/http.json, or the gitignored
                             bench/results/http-quick.json.tmp for a quick run)
  WS_CLIENT                  the compiled ws_echo_client (run.sh builds it)

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
from typing import Dict, List, Optional

import contenders
import load
import procs
import report
from scenarios import BY_NAME, SCENARIOS, Scenario

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench", "common"))
from stamp import loadavg, stamp  # noqa: E402

PACKAGES = ["puff", "granian", "socketify", "uvicorn", "uvloop", "httptools", "websockets",
            "gunicorn", "gevent", "greenlet", "uwsgi", "flask", "django", "fastapi", "starlette",
            "pydantic"]
HOST = "127.0.0.1"
READY_TIMEOUT = 30.0
H2_PROBE_TIMEOUT = 5.0  # after the port accepts: a server without h2c fails fast


def _env_list(name: str) -> List[str]:
    return [x.strip() for x in os.environ.get(name, "").split(",") if x.strip()]


def config() -> Dict:
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    cfg = {
        "quick": quick,
        "duration_s": float(os.environ.get("BENCH_DURATION", 1 if quick else 3)),
        "rounds": int(os.environ.get("BENCH_ROUNDS", 1 if quick else 3)),
        "warmup_s": float(os.environ.get("BENCH_WARMUP", 1)),
        "workers": [int(w) for w in _env_list("BENCH_WORKERS")] or [1, 2],
        "scenarios": _env_list("BENCH_SCENARIOS") or [s.name for s in SCENARIOS],
        "servers": _env_list("BENCH_SERVERS"),
        # a quick run never overwrites the published results (bench/results/*.tmp is gitignored)
        "out": os.environ.get("BENCH_OUT") or os.path.join(
            ROOT, "bench", "results", "http-quick.json.tmp" if quick else "http.json"),
        "ws_client": os.environ.get("WS_CLIENT", os.path.join(ROOT, "build", "bench-http",
                                                              "ws_echo_client")),
        "host": HOST,
        "wrk": f"wrk -t1 -c{load.WRK_CONNECTIONS} --latency",
        "h2load": f"h2load -t1 -c {load.H2_CONNECTIONS} -m {load.H2_STREAMS} (h2c prior knowledge)",
        "ws": f"ws_echo_client: {load.WS_CONNECTIONS} connections, one "
              f"{load.WS_MESSAGE_BYTES}-byte text message in flight each",
    }
    unknown = [n for n in cfg["scenarios"] if n not in BY_NAME]
    if unknown:
        sys.exit(f"bench/http: unknown scenario(s) {unknown}; known: {list(BY_NAME)}")
    return cfg


def drive(s: Scenario, port: int, seconds: float, cfg: Dict, head: Dict) -> Dict:
    if s.load == "wrk":
        framed = "content-length" in head or "chunked" in head.get("transfer-encoding", "")
        return load.run_wrk(HOST, port, seconds, close_delimited=not framed, path=s.path)
    if s.load == "h2load":
        return load.run_h2load(HOST, port, seconds)
    return load.run_ws(cfg["ws_client"], HOST, port, seconds)


def wait_ready(s: Scenario, server: procs.Server, port: int, head: Dict) -> Optional[str]:
    """None once the server answers the scenario's protocol; head gets GET /'s headers."""
    if s.load != "h2load":
        return server.wait_ready(lambda: procs.http1_probe(HOST, port, head), READY_TIMEOUT)
    why = server.wait_ready(lambda: procs.tcp_probe(HOST, port), READY_TIMEOUT)
    return why or server.wait_ready(lambda: load.h2_probe(HOST, port), H2_PROBE_TIMEOUT)


def measure(s: Scenario, c: contenders.Contender, workers: int, cfg: Dict, logdir: str) -> Dict:
    """One sample: start c serving s, warm up, measure, stop. {"error": why} if it could not;
    "fatal" if it will not work in the next rounds either."""
    port = procs.free_port(HOST)
    argv = c.argv(s, HOST, port, workers)
    log_path = os.path.join(logdir, f"{s.name}-{c.name}-w{workers}.log")
    try:
        server = procs.Server(argv, HERE, log_path)
    except OSError as e:
        return {"error": f"cannot start {argv[0]}: {e}", "fatal": True}
    head: Dict[str, str] = {}
    try:
        why = wait_ready(s, server, port, head)
        if why:
            return {"error": why, "fatal": True}
        try:
            drive(s, port, cfg["warmup_s"], cfg, head)
        except load.LoadError as e:
            hint = f"; its answer to GET /: {procs.raw_head(HOST, port)}" if s.load == "wrk" else ""
            return {"error": str(e) + hint, "fatal": True}
        before, busy0, t0 = server.cpu_seconds(), procs.machine_busy(), time.monotonic()
        try:
            sample = drive(s, port, cfg["duration_s"], cfg, head)
        except load.LoadError as e:
            return {"error": str(e)}
        wall = time.monotonic() - t0
        cpu = procs.cpu_delta(before, server.cpu_seconds())
        other = procs.machine_busy() - busy0 - cpu - sample["client_cpu_s"]
        alive = server.proc.poll() is None
    finally:
        server.stop()
    count = sample["count"]
    sample.update({
        "value": count * (s.body_bytes or 1) / sample["seconds"] / (1e6 if s.body_bytes else 1),
        "server_cpu_s": round(cpu, 4),
        "cpu_us_per_unit": cpu / count * 1e6 if count else None,
        "other_cpu_cores": round(max(other, 0.0) / wall, 3),
        "loadavg_1m": (loadavg() or [None])[0],
    })
    if not alive:
        sample["errors"]["server_exited"] = 1
    return sample


def _rotated(items: List, r: int) -> List:
    return items[r % len(items):] + items[:r % len(items)] if items else []


def summarize(samples: List[Dict]) -> Dict:
    ok = [x for x in samples if "error" not in x]
    if not ok:
        return {}

    def med(key):
        vals = [x[key] for x in ok if x.get(key) is not None]
        return statistics.median(vals) if vals else None

    errors: Dict[str, int] = {}
    notes: Dict[str, int] = {}
    for x in ok:
        for k, v in x["errors"].items():
            errors[k] = errors.get(k, 0) + v
        for k, v in x.get("notes", {}).items():
            notes[k] = notes.get(k, 0) + v
    return {"value": med("value"), "p50_ms": med("p50_ms"), "p99_ms": med("p99_ms"),
            "cpu_us_per_unit": med("cpu_us_per_unit"), "errors": errors, "notes": notes,
            "count": sum(x["count"] for x in ok), "samples_ok": len(ok),
            "samples_failed": len(samples) - len(ok)}


def run(cfg: Dict) -> Dict:
    scenarios = [BY_NAME[n] for n in cfg["scenarios"]]
    plan = [(s, w, contenders.for_scenario(s, cfg["servers"])) for s in scenarios
            for w in cfg["workers"]]
    total = sum(len(cs) for _, _, cs in plan) * cfg["rounds"]
    per = cfg["duration_s"] + cfg["warmup_s"] + 0.5  # + start, readiness, stop
    print(f"bench/http: {total} measurements, about {total * per / 60:.0f} min", file=sys.stderr)
    st = stamp(ROOT, packages=PACKAGES, reproduce="make bench-http")
    st["versions"].update(wrk=_tool_version(["wrk", "--version"]),
                          h2load=_tool_version(["h2load", "--version"]))
    results: Dict = {"benchmark": "HTTP servers (bench/http)", "stamp": st, "config": cfg,
                     "scenarios": {}}
    logdir = tempfile.mkdtemp(prefix="bench-http-")
    done, started = 0, time.monotonic()
    for s, w, cs in plan:
        entry = results["scenarios"].setdefault(s.name, {
            "title": s.title, "unit": s.unit, "interface": s.interface, "app": s.app,
            "load": s.load, "by_workers": {}})
        # argv: the command line, with PORT for the free port each measurement picks
        table = entry["by_workers"][str(w)] = {
            c.name: {"argv": c.argv(s, HOST, "PORT", w),  # type: ignore[arg-type]
                     "note": c.note, "samples": []} for c in cs}
        for r in range(cfg["rounds"]):
            for c in _rotated(cs, r):
                done += 1
                slot = table[c.name]
                if "unavailable" in slot:
                    continue
                sample = measure(s, c, w, cfg, logdir)
                sample["round"] = r
                if sample.pop("fatal", False):
                    slot["unavailable"] = sample["error"]
                slot["samples"].append(sample)
                print(f"[{done}/{total}] {s.name} w{w} r{r} {c.name}: "
                      + report.sample_line(s.unit, sample), file=sys.stderr)
        for slot in table.values():
            slot["median"] = summarize(slot["samples"])
    st.update(loadavg_at_end=loadavg(), duration_s=round(time.monotonic() - started, 1))
    results["server_logs"] = logdir
    results["goals"] = report.goals(results)
    results["table"] = report.render(results)
    return results


def _tool_version(argv: List[str]) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True)
    except OSError:
        return "not installed"
    lines = (p.stdout + p.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def main(argv: List[str]) -> int:
    if len(argv) == 3 and argv[1] == "--render":
        with open(argv[2]) as f:
            print(report.render(json.load(f)))
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
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
