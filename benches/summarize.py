#!/usr/bin/env python3
"""Prints the medians of the last `cargo bench --bench overhead` run as Markdown, with the
ratios against the peers and the targets. Reads target/criterion/<group>/<id>/new/estimates.json."""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
SETUPS = ["floor", "lower_bound", "fmt_sink", "chrome_sink", "flight_recorder", "blackbox"]
LABELS = {
    "floor": "Registry + no-op layer (floor)",
    "lower_bound": "lower bound: clock read + field values taken, nothing stored",
    "fmt_sink": "`fmt::layer()` → `io::sink`",
    "chrome_sink": "tracing-chrome 0.7 → `io::sink` (emitting thread)",
    "flight_recorder": "tracing-flight-recorder 0.3 (capacity 1000)",
    "blackbox": "**tracing-blackbox** (defaults)",
}
GROUPS = ["event_static", "event_formatted", "span_lifecycle"]


def median(*parts):
    path = root.joinpath(*parts, "new", "estimates.json")
    return json.loads(path.read_text())["median"]["point_estimate"]


m = {(g, s): median(g, s) for g in GROUPS for s in SETUPS}
VARIANTS = {"blackbox_threshold": "tracing-blackbox, every span timed (threshold never reached)",
            "blackbox_off": "tracing-blackbox switched off (`BLACKBOX=0`)",
            "blackbox_no_redaction": "tracing-blackbox without redaction (no names to check)"}
variant = {}
for v in VARIANTS:
    try:
        variant.update({(g, v): median(g, v) for g in GROUPS})
    except FileNotFoundError:
        pass
print("| layer | event `info!(a=1,b=true,\"static message\")` | event, formatted message | span new+enter+exit+close |")
print("|---|---|---|---|")
for s in SETUPS:
    print(f"| {LABELS[s]} | " + " | ".join(f"{m[(g, s)]:,.1f}" for g in GROUPS) + " |")
for v, label in VARIANTS.items():
    if (GROUPS[0], v) in variant:
        print(f"| {label} | " + " | ".join(f"{variant[(g, v)]:,.1f}" for g in GROUPS) + " |")
print()
ours = {g: m[(g, "blackbox")] for g in GROUPS}
print("| ratio (peer ÷ ours) | static event | formatted event | span lifecycle |")
print("|---|---|---|---|")
for s in ["fmt_sink", "chrome_sink", "flight_recorder"]:
    print(f"| {LABELS[s]} | " + " | ".join(f"{m[(g, s)] / ours[g]:.1f}×" for g in GROUPS) + " |")
print(f"| span lifecycle, ours ÷ floor | | | {ours['span_lifecycle'] / m[('span_lifecycle', 'floor')]:.2f}× |")
print()
try:
    polls = {s: median("async_future", s) for s in ["floor", "chrome_sink", "blackbox"]}
    print("| layer | instrumented future, 10 polls (ns) | per poll | ratio to ours |")
    print("|---|---|---|---|")
    for s, t in polls.items():
        print(f"| {LABELS[s]} | {t:,.1f} | {t / 10:,.1f} | {t / polls['blackbox']:.2f}× |")
    print()
except FileNotFoundError:
    pass
print("| layer | 1 thread (ns/event) | 2 threads (ns/event, per thread) | scaling (2 × t1 / t2) |")
print("|---|---|---|---|")
scaling = {}
for s in SETUPS:
    t1 = median("threads", f"{s}_1") if root.joinpath("threads", f"{s}_1").exists() else median("threads", s, "1")
    t2 = median("threads", f"{s}_2") if root.joinpath("threads", f"{s}_2").exists() else median("threads", s, "2")
    scaling[s] = 2 * t1 / t2
    print(f"| {LABELS[s]} | {t1:,.1f} | {t2:,.1f} | {scaling[s]:.2f} |")
print()
checks = [
    ("event ≤ 1/8 of fmt-to-sink", max(m[(g, "fmt_sink")] / ours[g] for g in GROUPS[:2]) >= 8 and min(m[(g, "fmt_sink")] / ours[g] for g in GROUPS[:2]) >= 8),
    ("event ≤ 1/8 of tracing-flight-recorder", min(m[(g, "flight_recorder")] / ours[g] for g in GROUPS[:2]) >= 8),
    ("event ≤ 1/10 of tracing-chrome", min(m[(g, "chrome_sink")] / ours[g] for g in GROUPS[:2]) >= 10),
    ("span lifecycle ≤ 3× the floor", ours["span_lifecycle"] <= 3 * m[("span_lifecycle", "floor")]),
    ("2-thread scaling ≥ 0.9× the floor's", scaling["blackbox"] >= 0.9 * scaling["floor"]),
]
if ("span_lifecycle", "blackbox_threshold") in variant:
    ratio = variant[("span_lifecycle", "blackbox_threshold")] / ours["span_lifecycle"]
    checks.append((f"span lifecycle with a threshold ≤ 1.2× without ({ratio:.2f}×)", ratio <= 1.2))
if ("event_static", "blackbox_off") in variant:
    worst = max(variant[(g, "blackbox_off")] / m[(g, "floor")] for g in GROUPS)
    checks.append((f"switched off ≤ 2× the floor (worst {worst:.2f}×)", worst <= 2.0))
for name, ok in checks:
    print(f"- {name}: {'met' if ok else 'MISSED'}")
print(f"  (scaling ours {scaling['blackbox']:.2f} vs floor {scaling['floor']:.2f}: {scaling['blackbox'] / scaling['floor']:.2f}×)")
