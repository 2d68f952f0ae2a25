"""The published tables of bench/http, rendered from a results dict (main.py's JSON): one table
per scenario and worker count, then the issue's goals with PASS / MISS / N.A."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

PUFF = "puff"

# (scenario, peer or None for "the best peer", minimum Puff ÷ peer): the throughput goals.
THROUGHPUT_GOALS: List[Tuple[str, Optional[str], float]] = [
    ("wsgi_hello", "granian", 1.5), ("wsgi_hello", "uvicorn", 3.0),
    ("asgi_hello", "granian", 1.5), ("asgi_hello", "uvicorn", 3.0),
    ("flask_hello", None, 1.2), ("django_hello", None, 1.2), ("fastapi_json", None, 1.2),
    ("ws_echo", "uvicorn", 2.0),
    ("h2_hello", "granian", 1.5),
]

_PER = {"req/s": "req", "MB/s": "MiB response", "msg/s": "msg"}


def _num(x: Optional[float], digits: int = 0) -> str:
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def _errors(errors: Dict[str, int]) -> str:
    if not errors:
        return "0"
    return ", ".join(f"{k} {v}" for k, v in sorted(errors.items())) + " ⚠"


def sample_line(unit: str, s: Dict) -> str:
    """One progress line for a sample."""
    if "error" in s:
        return f"not available: {s['error']}"
    cpu = s.get("cpu_us_per_unit")
    return (f"{_num(s['value'], 1 if unit == 'MB/s' else 0)} {unit}, p99 {s['p99_ms']:.2f} ms, "
            f"CPU {_num(cpu, 1)} us/{_PER[unit]}, other load {s['other_cpu_cores']:.2f} cores"
            + (f", errors {_errors(s['errors'])}" if s["errors"] else ""))


def _value(slot: Optional[Dict]) -> Optional[float]:
    return (slot or {}).get("median", {}).get("value")


def _why_unavailable(slot: Dict) -> str:
    if "unavailable" in slot:
        return slot["unavailable"]
    failed = [x["error"] for x in slot["samples"] if "error" in x]
    return failed[0] if failed else "not measured"


def table(name: str, sc: Dict, workers: str) -> str:
    slots = sc["by_workers"][workers]
    unit = sc["unit"]
    digits = 1 if unit == "MB/s" else 0
    puff = _value(slots.get(PUFF))
    rounds = max((len(s["samples"]) for s in slots.values()), default=0)
    lines = [f"### {name}: {sc['title']}, {workers} worker{'s' if workers != '1' else ''} "
             f"({unit}, median of {rounds})", "",
             f"| server | {unit} | Puff ÷ server | p50 ms | p99 ms | CPU µs/{_PER[unit]} "
             "| errors |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for cname, slot in slots.items():
        m = slot.get("median") or {}
        if not m:
            why = _why_unavailable(slot).replace("|", "/")
            lines.append(f"| {cname} | not available: {why[:240]} | | | | | |")
            continue
        ratio = f"{puff / m['value']:.2f}" if puff and m["value"] else "–"
        failed = f" ({m['samples_failed']} failed)" if m.get("samples_failed") else ""
        eof = " (bodies end at close¹)" if m.get("notes", {}).get("eof_bodies") else ""
        lines.append(f"| {cname} | {_num(m['value'], digits)}{failed} | {ratio} | "
                     f"{m['p50_ms']:.2f} | {m['p99_ms']:.2f} | {_num(m['cpu_us_per_unit'], 1)} | "
                     f"{_errors(m['errors'])}{eof} |")
    if any((s.get("median") or {}).get("notes", {}).get("eof_bodies") for s in slots.values()):
        lines += ["", "¹ no Content-Length and no chunking: the body ends when the server closes "
                  "the connection; wrk counts each such close as a read error, not shown here."]
    return "\n".join(lines)


def goals(results: Dict) -> List[Dict]:
    """Every goal of the issue, per worker count, with its verdict."""
    out = []
    for w in (str(w) for w in results["config"]["workers"]):
        for name, peer, target in THROUGHPUT_GOALS:
            slots = results["scenarios"].get(name, {}).get("by_workers", {}).get(w, {})
            out.append({"workers": int(w), "scenario": name, "kind": "throughput",
                        "target": target, "goal": f"{name} ≥ {target:g}× {peer or 'best peer'}",
                        **_throughput_verdict(slots, peer, target)})
        for name, sc in results["scenarios"].items():
            out.append({"workers": int(w), "scenario": name, "kind": "p99",
                        "goal": f"{name} p99 ≤ best peer's",
                        **_p99_verdict(sc["by_workers"].get(w, {}))})
    return out


def _throughput_verdict(slots: Dict, peer: Optional[str], target: float) -> Dict:
    """Puff ÷ peer (None: the fastest peer) against target."""
    if peer is None:
        peers = {k: _value(v) for k, v in slots.items() if k != PUFF and _value(v)}
        peer = max(peers, key=peers.get) if peers else None
    return _verdict(slots.get(PUFF), slots.get(peer) if peer else None, peer, target)


def _p99_verdict(slots: Dict) -> Dict:
    p99 = {k: v["median"]["p99_ms"] for k, v in slots.items() if k != PUFF and v.get("median")}
    best = min(p99, key=p99.get) if p99 else None
    puff = (slots.get(PUFF) or {}).get("median") or {}
    if not slots:
        return {"verdict": "N.A.", "peer": None, "why": "scenario not run"}
    if not puff or best is None:
        return {"verdict": "N.A.", "peer": best,
                "why": "Puff not measured" if not puff else "no peer measured"}
    ok = puff["p99_ms"] <= p99[best] and not puff["errors"]
    return {"peer": best, "puff_value": puff["p99_ms"], "peer_value": p99[best],
            "verdict": "PASS" if ok else "MISS"}


def _verdict(puff: Optional[Dict], peer: Optional[Dict], peer_name, target: float) -> Dict:
    pv, qv = _value(puff), _value(peer)
    if puff is None and peer is None:
        return {"verdict": "N.A.", "peer": peer_name, "why": "scenario not run"}
    if not pv or not qv:
        return {"verdict": "N.A.", "peer": peer_name,
                "why": "Puff not measured" if not pv else f"{peer_name or 'no peer'} not measured"}
    ratio = pv / qv
    puff_errors = puff["median"]["errors"]
    verdict = "PASS" if ratio >= target and not puff_errors else "MISS"
    return {"verdict": verdict, "peer": peer_name, "puff_value": pv, "peer_value": qv,
            "ratio": round(ratio, 3), **({"why": "Puff had errors"} if puff_errors else {})}


def goals_table(gs: List[Dict]) -> str:
    lines = ["| workers | goal | Puff | peer | result | verdict |", "|---:|---|---:|---|---:|---|"]
    for g in gs:
        if g["verdict"] == "N.A.":
            lines.append(f"| {g['workers']} | {g['goal']} | | {g.get('peer') or ''} | "
                         f"{g.get('why', '')} | N.A. |")
        elif g["kind"] == "p99":
            lines.append(f"| {g['workers']} | {g['goal']} | {g['puff_value']:.2f} ms | "
                         f"{g['peer']} {g['peer_value']:.2f} ms | "
                         f"{_ratio(g['peer_value'], g['puff_value'])} | {g['verdict']} |")
        else:
            lines.append(f"| {g['workers']} | {g['goal']} | {_num(g['puff_value'])} | "
                         f"{g['peer']} {_num(g['peer_value'])} | {g['ratio']:.2f}× | "
                         f"{g['verdict']} |")
    return "\n".join(lines)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "–"


def _other_load(results: Dict) -> float:
    vals = sorted(x["other_cpu_cores"] for sc in results["scenarios"].values()
                  for slots in sc["by_workers"].values() for slot in slots.values()
                  for x in slot["samples"] if "other_cpu_cores" in x)
    return vals[len(vals) // 2] if vals else 0.0


def render(results: Dict) -> str:
    st, cfg = results["stamp"], results["config"]
    head = [f"# bench/http: {st['date']}, {st['cpu_model']} × {st['cores']} cores, "
            f"Python {st['python']}, puff {st['puff_commit'][:10]}"
            + (" (+ uncommitted changes)" if st.get("puff_tree_dirty") else ""),
            "",
            ("QUICK smoke run (BENCH_QUICK=1): one short round, noisier than a full run. "
             if cfg.get("quick") else "")
            + f"{cfg['duration_s']:g} s per measurement after {cfg['warmup_s']:g} s warm-up, "
            f"{cfg['rounds']} interleaved round(s), medians; load: {cfg['wrk']}; {cfg['h2load']}; "
            f"{cfg['ws']}. CPU = user+system time of the server's process tree ÷ work done. "
            f"Puff ÷ server > 1 means Puff is faster.", "",
            f"Load average {st.get('loadavg_at_start')} at start, {st.get('loadavg_at_end')} at "
            f"the end; CPU used by other processes during the measurements: median "
            f"{_other_load(results):.2f} cores of {st['cores']}. Compare rows of one run only.",
            ""]
    parts = ["\n".join(head)]
    for name, sc in results["scenarios"].items():
        for w in sc["by_workers"]:
            parts.append(table(name, sc, w))
    notes = {}
    for sc in results["scenarios"].values():
        for slots in sc["by_workers"].values():
            for cname, slot in slots.items():
                if slot.get("note"):
                    notes[cname] = slot["note"]
    if notes:
        parts.append("Servers: " + "; ".join(f"{k}: {v}" for k, v in notes.items()) + ".")
    parts.append("### Goals (per worker count)\n\n" + goals_table(results["goals"]))
    return "\n\n".join(parts)
