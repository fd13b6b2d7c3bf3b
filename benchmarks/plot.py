#!/usr/bin/env python3
"""Draws the plots in results/ from its CSV files (matplotlib)."""
import csv
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results")


def rows(name):
    path = os.path.join(RESULTS, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [r for r in csv.DictReader(line for line in f if not line.startswith("#"))]


def save(figure, name):
    figure.tight_layout()
    figure.savefig(os.path.join(RESULTS, name), dpi=110)
    plt.close(figure)


def latency_by_size():
    data = [r for r in rows("latency-sweep.csv") if r.get("scope", r["thread"]) == "total"]
    if not data:
        return
    figure, axis = plt.subplots(figsize=(7, 4.2))
    for strategy in sorted({r["strategy"] for r in data}):
        points = sorted((int(r["size_bytes"]), float(r["mean_ns"]), float(r["stddev_ns"])) for r in data if r["strategy"] == strategy)
        axis.errorbar([p[0] / 2**20 for p in points], [p[1] for p in points], yerr=[p[2] for p in points],
                      marker="o", capsize=3, label=strategy)
    axis.set_xscale("log", base=2)
    axis.set_xlabel("buffer per thread (MiB)")
    loads = sorted({r["loads_per_sample"] for r in data})
    axis.set_ylabel(f"mean latency (ns per access; ±1 sd of {'/'.join(loads)}-load sample means)")
    axis.set_title("Latency by size and strategy (one NUMA node)")
    axis.legend()
    axis.grid(alpha=0.3)
    save(figure, "latency-by-size.png")


def percentile_curves():
    data = [r for r in rows("latency-sweep.csv") if r.get("scope", r["thread"]) == "total"]
    if not data:
        return
    size = max(int(r["size_bytes"]) for r in data if int(r["size_bytes"]) <= 256 << 20)
    figure, axis = plt.subplots(figsize=(7, 4.2))
    marks = [("min_ns", 0), ("p50_ns", 50), ("p90_ns", 90), ("p99_ns", 99), ("p999_ns", 99.9), ("max_ns", 100)]
    for r in data:
        if int(r["size_bytes"]) != size:
            continue
        axis.plot([m[1] for m in marks], [float(r[m[0]]) for m in marks], marker="o", label=r["strategy"])
    axis.set_xlabel("percentile")
    axis.set_ylabel("ns per access")
    axis.set_yscale("log")
    axis.set_title(f"Latency distribution at {size >> 20} MiB")
    axis.legend()
    axis.grid(alpha=0.3)
    save(figure, "latency-percentiles.png")


def allocator_bars():
    # The pools and glibc from the plain process; every other malloc from its own process.
    data = [r for r in rows("alloc-summary.csv") if r.get("batch") == "32"
            and (r["process"] == "glibc" or r["allocator"].startswith("malloc"))]
    if not data:
        return
    names = list(dict.fromkeys(r["allocator"] for r in data))
    threads = sorted({int(r["threads"]) for r in data})
    figure, axis = plt.subplots(figsize=(8, 4.2))
    width = 0.8 / len(threads)
    for i, count in enumerate(threads):
        values = [next((float(r["median_pairs_per_s"]) / 1e6 for r in data if r["allocator"] == n and int(r["threads"]) == count), 0)
                  for n in names]
        axis.bar([x + i * width for x in range(len(names))], values, width, label=f"{count} thread(s)")
    axis.set_xticks([x + width * (len(threads) - 1) / 2 for x in range(len(names))], names, rotation=15)
    axis.set_ylabel("million get+put pairs per second")
    axis.set_title("Allocator throughput, 64-byte blocks, batches of 32 (medians of rounds)")
    axis.legend()
    axis.grid(axis="y", alpha=0.3)
    save(figure, "allocator-throughput.png")


def matrix_heatmap():
    # One cell per total record (a cell's thread records are beside it).
    data = [r for r in rows("matrix.csv") if r["scope"] == "total"]
    if not data:
        return
    cpu_nodes = sorted({int(r["cpu_node"]) for r in data})
    memory_nodes = sorted({int(r["memory_node"]) for r in data})
    grid = [[next(float(r["mean_ns"]) for r in data if int(r["cpu_node"]) == c and int(r["memory_node"]) == m)
             for m in memory_nodes] for c in cpu_nodes]
    figure, axis = plt.subplots(figsize=(3 + len(memory_nodes), 2.5 + len(cpu_nodes)))
    image = axis.imshow(grid, cmap="viridis")
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            axis.text(j, i, f"{value:.0f}", ha="center", va="center", color="white")
    axis.set_xticks(range(len(memory_nodes)), [f"mem {m}" for m in memory_nodes])
    axis.set_yticks(range(len(cpu_nodes)), [f"cpu {c}" for c in cpu_nodes])
    axis.set_title("Idle latency, ns")
    figure.colorbar(image)
    save(figure, "latency-matrix.png")


def loaded_curve():
    data = rows("loaded.csv")
    if not data:
        return
    figure, axis = plt.subplots(figsize=(7, 4.2))
    # The idle step runs no load: its load_gb_per_s is empty, plotted at 0.
    load = [float(r["load_gb_per_s"] or 0) for r in data]
    axis.plot(load, [float(r["mean_ns"]) for r in data], marker="o", label="mean")
    axis.plot(load, [float(r["p99_ns"]) for r in data], marker="s", alpha=0.6, label="p99")
    for r in data:
        axis.annotate(r["delay"] or "idle", (float(r["load_gb_per_s"] or 0), float(r["mean_ns"])), fontsize=7,
                      textcoords="offset points", xytext=(3, 4))
    axis.set_xlabel("load bandwidth (GB/s, load threads together)")
    axis.set_ylabel("chase latency (ns per access)")
    axis.set_title(f"Loaded latency ({data[0]['load_threads']} {data[0]['load_kind']} load thread(s); labels: delay)")
    axis.legend()
    axis.grid(alpha=0.3)
    save(figure, "loaded-latency.png")


def churn_series():
    data = rows("churn.csv")
    if not data:
        return
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for allocator in dict.fromkeys(r["allocator"] for r in data):
        points = [(float(r["t_s"]), int(r["rss_bytes"])) for r in data if r["allocator"] == allocator]
        axis.plot([p[0] for p in points], [p[1] / 2**20 for p in points], marker=".", label=f"{allocator}: process RSS")
    held = [(float(r["t_s"]), int(r["held_bytes"])) for r in data if r["allocator"] == "heap"]
    axis.plot([p[0] for p in held], [p[1] / 2**20 for p in held], color="black", linestyle="--", label="bytes the threads hold")
    spans, start = [], None
    for r in (r for r in data if r["allocator"] == "heap"):
        if r["phase"] == "idle" and start is None:
            start = float(r["t_s"])
        if r["phase"] == "idle":
            spans = [(start, float(r["t_s"]))]
    for left, right in spans:
        axis.axvspan(left, right, color="grey", alpha=0.15, label="idle: no allocator call")
    axis.set_xlabel("seconds")
    axis.set_ylabel("MiB")
    axis.set_title("membench churn: memory after the load drops")
    axis.legend(fontsize=7, loc="lower left")
    save(figure, "churn.png")


def elastic_series():
    data = rows("elastic.csv")
    if not data:
        return
    first_round = [r for r in data if r["round"] == "0"]
    figure, (top, middle, bottom) = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    for policy in dict.fromkeys(r["policy"] for r in first_round):
        mine = [r for r in first_round if r["policy"] == policy]
        t = [float(r["t_s"]) for r in mine]
        top.plot(t, [float(r["p99_s"] or "nan") * 1000 for r in mine], marker=".", label=policy)
        middle.plot(t, [int(r["capacity"]) for r in mine], marker=".", label=policy)
        bottom.plot(t, [int(r["resident_bytes"]) / 2**20 for r in mine], marker=".", label=policy)
    slo = float(first_round[0]["slo_s"]) * 1000
    top.axhline(slo, color="black", linestyle="--", linewidth=0.8, label="SLO")
    for axis in (top, middle, bottom):
        previous = None
        for r in (r for r in first_round if r["policy"] == first_round[0]["policy"]):
            if r["phase"] != previous:
                axis.axvline(float(r["t_s"]), color="grey", alpha=0.3)
                if axis is top:
                    axis.annotate(r["phase"], (float(r["t_s"]), slo * 3), fontsize=7)
                previous = r["phase"]
    top.set_ylabel("p99 ms")
    top.set_yscale("log")
    middle.set_ylabel("idle contexts per node")
    middle.set_yscale("log")
    bottom.set_ylabel("pools resident MiB")
    bottom.set_xlabel("seconds")
    top.legend(fontsize=7)
    top.set_title("membench elastic: capacity policies under a phased load (round 0)")
    save(figure, "elastic.png")


def service_bars():
    data = rows("service.csv")
    if not data:
        return
    import statistics
    cells = list(dict.fromkeys((r["endpoint"], r["connection"]) for r in data))
    modes = list(dict.fromkeys(r["allocator"] for r in data))
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    width = 0.8 / len(modes)
    for index, mode in enumerate(modes):
        x = [c + (index - (len(modes) - 1) / 2) * width for c in range(len(cells))]
        rate = [statistics.median(float(r["requests_per_s"]) for r in data if (r["endpoint"], r["connection"]) == cell and r["allocator"] == mode) for cell in cells]
        p99 = [statistics.median(float(r["p99_ms"]) for r in data if (r["endpoint"], r["connection"]) == cell and r["allocator"] == mode) for cell in cells]
        top.bar(x, [v / 1000 for v in rate], width, label=mode)
        bottom.bar(x, p99, width, label=mode)
    top.set_ylabel("thousand requests/s")
    bottom.set_ylabel("p99 ms (wrk)")
    bottom.set_xticks(range(len(cells)))
    bottom.set_xticklabels([f"{e}\n{c}" for e, c in cells], fontsize=8)
    top.legend(fontsize=8)
    top.set_title("numa-service under wrk: allocator modes (medians of rounds; server on 1 CPU)")
    save(figure, "service.png")


def service_memory():
    data = rows("service-memory.csv")
    if not data:
        return
    figure, axis = plt.subplots(figsize=(8, 4))
    for mode in dict.fromkeys(r["allocator"] for r in data):
        mine = [r for r in data if r["allocator"] == mode]
        axis.plot([float(r["t_s"]) for r in mine], [float(r["rss_mib"]) for r in mine], marker=".", label=mode)
        burst = [float(r["t_s"]) for r in mine if r["phase"] == "burst"]
        if burst and mode == "local":
            axis.axvspan(min(burst), max(burst), color="grey", alpha=0.15, label="burst (local's run)")
    axis.set_xlabel("seconds")
    axis.set_ylabel("server resident MiB")
    axis.legend(fontsize=8)
    axis.set_title("numa-service: resident memory around a burst of 256 KiB replies (decay 10 s)")
    save(figure, "service-memory.png")


def service_elastic():
    data = rows("service-elastic.csv")
    if not data:
        return
    figure, (top, middle, bottom) = plt.subplots(3, 1, figsize=(8, 7.5), sharex=True)
    for policy in dict.fromkeys(r["policy"] for r in data):
        mine = [r for r in data if r["policy"] == policy]
        t = [float(r["t_s"]) for r in mine]
        top.plot(t, [float(r["requests_per_s"]) / 1000 for r in mine], marker=".", label=policy)
        middle.plot(t, [float(r["capacity"] or "nan") for r in mine], marker=".", label=policy)
        bottom.plot(t, [float(r["rss_mib"]) for r in mine], marker=".", label=policy)
        previous = None
        for r in mine:
            if r["phase"] != previous and policy == data[0]["policy"]:
                for axis in (top, middle, bottom):
                    axis.axvline(float(r["t_s"]), color="grey", alpha=0.3)
                top.annotate(f"{r['phase']} (c={r['connections']}, p99 {r['phase_p99_ms']} ms)", (float(r["t_s"]), 1), fontsize=7)
                previous = r["phase"]
    top.set_ylabel("thousand requests/s")
    middle.set_ylabel("contexts capacity (all nodes)")
    bottom.set_ylabel("server resident MiB")
    bottom.set_xlabel("seconds")
    top.legend(fontsize=8)
    top.set_title("numa-service: capacity controllers live under wrk phases (1 s windows, SLO 10 ms)")
    save(figure, "service-elastic.png")


if __name__ == "__main__":
    service_bars()
    service_memory()
    service_elastic()
    elastic_series()
    churn_series()
    loaded_curve()
    latency_by_size()
    percentile_curves()
    allocator_bars()
    matrix_heatmap()
