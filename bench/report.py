#!/usr/bin/env python3
"""Turns the harness's results (JSON lines) into bench/REPORT.md and bench/report.json, with the
machine's details on top. usage: report.py RESULTS.jsonl REPORT.md REPORT.json"""
import datetime
import json
import os
import platform
import subprocess
import sys


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return "?"


results = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
machine = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "cpu": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip(),
    "cores": os.cpu_count(),
    "memory": sh("free -h | awk '/Mem:/ {print $2}'"),
    "kernel": platform.release(),
    "rustc": sh("rustc --version"),
    "redis": sh("redis-server --version | cut -d' ' -f3"),
    "load average (1, 5, 15 min) at the end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    "duckdb": sh(f"{sys.executable} -c 'import duckdb; print(duckdb.__version__)'"),
}
# BENCH_MERGE_INTO=previous report.json: these rows replace theirs in it; the rest, and its
# machine details, stay as they were, and the header says when these rows were measured.
merge = os.environ.get("BENCH_MERGE_INTO")
if merge and os.path.exists(merge):
    previous = json.load(open(merge))
    rows = {r["row"] for r in results}
    remeasured = f"row(s) {', '.join(map(str, sorted(rows)))} at {machine['date']}, load {machine['load average (1, 5, 15 min) at the end']}"
    machine = previous["machine"]
    machine["measured apart"] = remeasured
    results = [r for r in previous["results"] if r["row"] not in rows] + results
json.dump({"machine": machine, "results": results}, open(sys.argv[3], "w"), indent=2)


def fmt(v):
    if v is None:
        return "–"
    return f"{v:.3f}" if abs(v) < 10 else f"{v:,.0f}"


with open(sys.argv[2], "w") as f:
    f.write("# Tablecast benchmark report\n\n")
    f.write("Every figure beside its baseline measured in the same run on the same machine; ")
    f.write("ratios are what to compare (the machine is shared and noisy).\n\n")
    for k, v in machine.items():
        f.write(f"- **{k}**: {v}\n")
    f.write("\n| # | measurement | ours | baseline | unit | ratio | target | met | note |\n")
    f.write("|---|---|---|---|---|---|---|---|---|\n")
    for r in sorted(results, key=lambda r: r["row"]):
        met = {True: "yes", False: "**no**", None: "–"}[r["met"]]
        f.write(f"| {r['row']} | {r['name']} | {fmt(r['value'])} | {fmt(r['baseline'])} | {r['unit']} | "
                f"{fmt(r['ratio'])} | {r['target']} | {met} | {r['note']} |\n")
    # Hand-kept notes: before/after figures of optimizations and the reasons for missed targets.
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "history.md")
    if os.path.exists(notes):
        f.write("\n" + open(notes).read())
