"""benchmarks/run service: numa-service (benchmarks/service) under wrk, on loopback.

The server runs pinned to CPU 0 (`taskset -c 0`, so one event loop) and wrk to CPU 1: on a
2-CPU machine they must not share a CPU. Four parts:
- throughput: each allocator mode (malloc, global, local) on /hello, POST /echo (4 KiB) and
  /work?bytes=16384, keep-alive and `Connection: close`, in rounds whose mode order alternates:
  requests per second, wrk's p50 and p99, the server's CPU time per request (/proc utime+stime),
  its resident memory, and the pools' reuse and fresh rates from /metrics at the end
  (service.csv, service.txt, service.png);
- memory: a burst of 256 KiB replies at 64 connections, then quiet; the server's resident
  memory every half second, local against malloc (service-memory.csv, service-memory.png);
- elastic: a phased load (connections 4, 64, 4, then a slow dependency: wait=20 ms at 16) with
  the demand controller and the study's SLO rule on 1 s windows (their 300 s cooldown as
  5 s), SLO 10 ms: the rate, the contexts' capacity and resident memory each second, and wrk's
  p99 of each phase (service-elastic.csv, service-elastic.png);
- profile: perf samples of the server on /work?bytes=16384 with keep-alive, per mode: the
  share of its CPU time in the pools and the heap (NUMAPool, NUMAPoolNIO, CNuma) and in
  malloc and free (service-profile.txt);
- instructions: callgrind's count per request, exact where timings are not: the server
  under valgrind answers N and then 2N sequential requests on one keep-alive connection (curl),
  and the difference of the totals over N is one request's instructions, start-up and
  shutdown cancelled; the heap's purger and the metrics collector, whose work follows the
  clock (which valgrind slows 50-fold), are off (service-instructions.csv);
- placement: in the emulated `two` guest, event loops on one CPU of each node, the share of
  sampled contexts and reply buffers on the node of the CPU that served the request, per mode
  (service-placement.csv). Placement only: latency in the guest means nothing.
"""
import csv
import json
import os
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

MODES = ["malloc", "global", "local"]
ENDPOINTS = {
    "hello": ("GET", "/hello", None),
    "echo4k": ("POST", "/echo", 4096),
    "work16k": ("GET", "/work?bytes=16384", None),
}
CONNECTIONS = ["keep-alive", "close"]


class Server:
    """numa-service on a port, pinned with taskset."""

    def __init__(self, binary, port, args, cpus="0"):
        self.port = port
        # Its log goes to a file: a pipe nobody reads would block the server once full.
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(["taskset", "-c", cpus, binary, "--port", str(port), *args],
                                        stdout=subprocess.PIPE, stderr=self.log, text=True)
        ready, _, _ = select.select([self.process.stdout], [], [], 60)
        line = self.process.stdout.readline() if ready else ""
        if "listening on port" not in line:
            self.process.kill()
            self.log.seek(0)
            raise SystemExit(f"benchmarks: numa-service did not start: {line} {self.log.read()}")

    def __enter__(self):
        return self

    def __exit__(self, *error):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30) as reply:
            return reply.read().decode()

    def cpu_seconds(self):
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self):
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def metric(self, name, labels):
        """The sum of `name{labels...}` over the series that match (every node's, where the
        labels leave the node out), or None when none does."""
        pattern = re.compile(re.escape(name) + r"\{([^}]*)\} (\S+)")
        values = []
        for match in pattern.finditer(self.get("/metrics")):
            have = dict(item.split("=", 1) for item in match.group(1).split(","))
            if all(have.get(key) == f'"{value}"' for key, value in labels.items()):
                values.append(float(match.group(2)))
        return sum(values) if values else None

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise SystemExit("benchmarks: numa-service did not stop on SIGTERM")
        if self.process.returncode != 0:
            self.log.seek(0)
            raise SystemExit(f"benchmarks: numa-service exited {self.process.returncode}: {self.log.read()[-2000:]}")


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seconds_of(text):
    """wrk's durations: 812.00us, 1.20ms, 2.00s, 1.50m, 1.00h."""
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]


def wrk(port, endpoint, connection, duration, connections=16, script_dir=None):
    """wrk on CPU 1 against one endpoint: (requests per second, p50 s, p99 s, requests, errors)."""
    method, path, body = ENDPOINTS[endpoint] if endpoint in ENDPOINTS else ("GET", endpoint, None)
    args = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    if connection == "close":
        args += ["-H", "Connection: close"]
    if method == "POST":
        script = os.path.join(script_dir, f"post{body}.lua")
        with open(script, "w") as f:
            f.write(f'wrk.method = "POST"\nwrk.body = string.rep("x", {body})\n'
                    'wrk.headers["Content-Type"] = "application/octet-stream"\n')
        args += ["-s", script]
    args.append(f"http://127.0.0.1:{port}{path}")
    text = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p50 = seconds_of(re.search(r"\s50%\s+(\S+)", text).group(1))
    p99 = seconds_of(re.search(r"\s99%\s+(\S+)", text).group(1))
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    errors = re.search(r"Socket errors: (.*)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return rate, p50, p99, requests, (errors.group(1) if errors else "") + (f" non-2xx {non2xx.group(1)}" if non2xx else "")


def throughput(binary, results, quick, check, log):
    rounds, duration = (1, 1) if quick else (5, 5)
    rows = []
    scratch = tempfile.mkdtemp()
    for round_ in range(rounds):
        order = MODES if round_ % 2 == 0 else list(reversed(MODES))
        for mode in order:
            with Server(binary, free_port(), ["--allocator", mode, "--placement-sample", "0", "--metrics-interval", "1"]) as server:
                throughput_mode(server, round_, mode, duration, scratch, rows, log)

    shutil.rmtree(scratch)
    summarize_throughput(rows, results, rounds, duration, check, log)


def throughput_mode(server, round_, mode, duration, scratch, rows, log):
    """One mode's cells in one round, on a running server, then its pools' rates."""
    for endpoint in ENDPOINTS:
        for connection in CONNECTIONS:
            wrk(server.port, endpoint, connection, 1, script_dir=scratch)  # warm
            cpu = server.cpu_seconds()
            rate, p50, p99, requests, errors = wrk(server.port, endpoint, connection, duration, script_dir=scratch)
            cpu = server.cpu_seconds() - cpu
            rows.append({"round": round_, "allocator": mode, "endpoint": endpoint, "connection": connection,
                         "requests_per_s": f"{rate:.0f}", "p50_ms": f"{p50 * 1e3:.3f}", "p99_ms": f"{p99 * 1e3:.3f}",
                         "cpu_us_per_request": f"{cpu / max(requests, 1) * 1e6:.2f}",
                         "rss_mib": f"{server.rss_bytes() / 2**20:.1f}", "errors": errors.strip()})
            log(f"service: round {round_} {mode} {endpoint} {connection}: {rate:.0f}/s p99 {p99 * 1e3:.2f} ms")
    time.sleep(1.2)  # one more collection of the pools' statistics
    for pool in ("contexts", "buffers"):
        for ratio in ("reuse", "fresh"):
            value = server.metric(f"numapool_{ratio}_ratio", {"pool": pool, "node": "all"})
            for row in rows:
                if row["round"] == round_ and row["allocator"] == mode:
                    row[f"{pool}_{ratio}"] = "" if value is None else f"{value:.4f}"
    server.stop()


def summarize_throughput(rows, results, rounds, duration, check, log):
    fields = list(rows[0].keys()) + [f"{p}_{r}" for p in ("contexts", "buffers") for r in ("reuse", "fresh") if f"{p}_{r}" not in rows[0]]
    with open(os.path.join(results, "service.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)

    # The table: medians over rounds; local and global against malloc as the median of the
    # rounds' ratios (each round's modes ran back to back, in alternating order).
    lines = [f"numa-service under wrk (server on CPU 0, wrk -t1 -c16 on CPU 1, {duration} s per cell, "
             f"{rounds} rounds in alternating order; medians)",
             f"{'endpoint':<9} {'connection':<10} {'allocator':<7} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
             f"{'CPU us/req':>10} {'RSS MiB':>7} {'rate vs malloc':>14} {'p99 vs malloc':>13}"]
    misses = []
    for endpoint in ENDPOINTS:
        for connection in CONNECTIONS:
            cell = [r for r in rows if r["endpoint"] == endpoint and r["connection"] == connection]
            for mode in MODES:
                mine = [r for r in cell if r["allocator"] == mode]
                median = lambda key: statistics.median(float(r[key]) for r in mine)  # noqa: E731
                ratios = ""
                if mode != "malloc":
                    rate_ratio = statistics.median(
                        float(r["requests_per_s"]) / float(b["requests_per_s"]) for r in mine for b in cell
                        if b["allocator"] == "malloc" and b["round"] == r["round"])
                    p99_ratio = statistics.median(
                        float(r["p99_ms"]) / float(b["p99_ms"]) for r in mine for b in cell
                        if b["allocator"] == "malloc" and b["round"] == r["round"])
                    ratios = f"{rate_ratio:>14.3f} {p99_ratio:>13.3f}"
                    if mode == "local" and (rate_ratio < 0.97 or p99_ratio > 1.03):
                        misses.append(f"{endpoint}/{connection}: rate {rate_ratio:.3f}x, p99 {p99_ratio:.3f}x")
                lines.append(f"{endpoint:<9} {connection:<10} {mode:<7} {median('requests_per_s'):>8.0f} {median('p50_ms'):>7.3f} "
                             f"{median('p99_ms'):>7.3f} {median('cpu_us_per_request'):>10.2f} {median('rss_mib'):>7.1f} {ratios}")
    def median_of(mode, key):
        values = [float(r[key]) for r in rows if r["allocator"] == mode and r.get(key)]
        return f"{statistics.median(values):.3f}" if values else "none"
    lines.append("pools at the end (the last collection interval with gets): " + "; ".join(
        f"{mode}: contexts reuse {median_of(mode, 'contexts_reuse')}, buffers reuse {median_of(mode, 'buffers_reuse')}"
        for mode in ("global", "local")))
    lines.append("global's buffers are spread over the nodes by NUMAHeap.allocate(byteCount:on:), which takes each "
                 "block from its arena, never a thread's cache: its reuse is 0 by construction")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(results, "service.txt"), "w") as f:
        f.write(table)
    log("service:\n" + table)
    check("service_no_regression", not misses,
          "numa-service local within 3% of malloc in rate and p99 on every endpoint"
          + (f"; missed: {'; '.join(misses)}" if misses else ""))


def memory(binary, results, quick, check, log):
    """RSS every half second: 3 s idle, a burst of 256 KiB replies, then quiet past the decay."""
    idle, burst, quiet = (1, 3, 14) if quick else (3, 10, 25)
    rows = []
    summary = {}
    for mode in ("local", "malloc"):
        with Server(binary, free_port(), ["--allocator", mode, "--placement-sample", "0", "--decay", "10"]) as server:
            samples = memory_series(server, mode, idle, burst, quiet, rows)
        before = max(s[2] for s in samples if s[1] == "idle")
        peak = max(s[2] for s in samples)
        end = samples[-1][2]
        summary[mode] = (before, peak, end)
    write_memory(rows, summary, results, burst, quiet, check, log)


def memory_series(server, mode, idle, burst, quiet, rows):
    """RSS samples (t, phase, bytes) of one server around one burst."""
    start = time.monotonic()
    load = None
    phase = "idle"
    samples = []
    while True:
        t = time.monotonic() - start
        if load is None and t >= idle:
            load = subprocess.Popen(["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{burst}s",
                                     f"http://127.0.0.1:{server.port}/work?bytes=262144"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            phase = "burst"
        if load is not None and phase == "burst" and load.poll() is not None:
            phase = "quiet"
            quiet_start = t
        if phase == "quiet" and t - quiet_start >= quiet:
            break
        rss = server.rss_bytes()
        samples.append((t, phase, rss))
        rows.append({"allocator": mode, "t_s": f"{t:.2f}", "phase": phase, "rss_mib": f"{rss / 2**20:.1f}"})
        time.sleep(0.5)
    server.stop()
    return samples


def write_memory(rows, summary, results, burst, quiet, check, log):
    with open(os.path.join(results, "service-memory.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    text = "; ".join(f"{mode}: idle {b / 2**20:.1f} MiB, peak {p / 2**20:.1f} MiB, {quiet} s after the burst {e / 2**20:.1f} MiB"
                     for mode, (b, p, e) in summary.items())
    with open(os.path.join(results, "service-memory.txt"), "w") as f:
        f.write(f"numa-service resident memory around a burst of /work?bytes=262144 at 64 connections "
                f"({burst} s), decay 10 s\n{text}\n")
    log("service memory: " + text)
    before, peak, end = summary["local"]
    check("service_memory_back", end <= before + 0.2 * max(peak - before, 0),
          f"numa-service local gives the burst's memory back within the decay: {text}")


def elastic(binary, results, quick, log):
    """The controllers live: phases of wrk at different connection counts, and a slow dependency."""
    phase_seconds = 4 if quick else 12
    phases = [("low", 4, "/work?bytes=4096"), ("burst", 64, "/work?bytes=4096"),
              ("quiet", 4, "/work?bytes=4096"), ("slow dependency", 16, "/work?bytes=4096&wait=20")]
    rows = []
    for policy in ("demand", "slo"):
        with Server(binary, free_port(), ["--allocator", "local", "--policy", policy, "--window", "1",
                                          "--cooldown", "5", "--slo", "10", "--placement-sample", "0", "--metrics-interval", "1"]) as server:
            elastic_phases(server, policy, phases, phase_seconds, rows)
    with open(os.path.join(results, "service-elastic.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    log(f"service elastic: {len(rows)} samples in service-elastic.csv")


def elastic_phases(server, policy, phases, phase_seconds, rows):
    """One policy's run through the phases: a row per second."""
    start = time.monotonic()
    answered = json.loads(server.get("/stats"))["answered"]
    for name, connections, path in phases:
        load = subprocess.Popen(["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{phase_seconds}s",
                                 "--latency", f"http://127.0.0.1:{server.port}{path}"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        while load.poll() is None:
            time.sleep(1)
            stats = json.loads(server.get("/stats"))
            rate = stats["answered"] - answered
            capacity = server.metric("numapool_capacity", {"pool": "contexts"})
            answered = stats["answered"]
            rows.append({"policy": policy, "t_s": f"{time.monotonic() - start:.1f}", "phase": name,
                         "connections": connections, "requests_per_s": rate,
                         "capacity": "" if capacity is None else f"{capacity:.0f}",
                         "rss_mib": f"{server.rss_bytes() / 2**20:.1f}"})
        text = load.stdout.read()
        p99 = re.search(r"\s99%\s+(\S+)", text)
        for row in rows:
            if row["policy"] == policy and row["phase"] == name:
                row["phase_p99_ms"] = f"{seconds_of(p99.group(1)) * 1e3:.2f}" if p99 else ""
    server.stop()


ALLOCATOR_SYMBOLS = {
    # Functions of the NUMAPool and NUMAPoolNIO modules (by their mangled names' module), and
    # the C shim's; the hit paths are inlined into their callers, so this is a floor.
    "pools and heap": re.compile(r"^(\$s8NUMAPool|\$s11NUMAPoolNIO|CNuma_)"),
    "malloc and free": re.compile(r"^(__libc_)?(malloc|free|cfree|realloc|calloc|_int_malloc|_int_free|_int_realloc|"
                                  r"malloc_consolidate|unlink_chunk|tcache_\w+|malloc_usable_size)(@.*)?$"),
}


def profile(binary, results, quick, log):
    """perf record of the server under wrk, per mode; the allocators' shares of its samples."""
    if not shutil.which("perf") or subprocess.run(["perf", "stat", "-e", "task-clock", "true"],
                                                   capture_output=True).returncode != 0:
        log("service profile: skipped, perf is not available (Debian's linux-perf)")
        return
    seconds = 2 if quick else 6
    lines = [f"numa-service on /work?bytes=16384, keep-alive, wrk -t1 -c16; perf record -F 2000 for {seconds} s; "
             "share of the server's samples"]
    scratch = tempfile.mkdtemp()
    for mode in MODES:
        data = os.path.join(scratch, f"{mode}.data")
        with Server(binary, free_port(), ["--allocator", mode, "--placement-sample", "0"]) as server:
            load = subprocess.Popen(["taskset", "-c", "1", "wrk", "-t1", "-c16", f"-d{seconds + 3}s",
                                     f"http://127.0.0.1:{server.port}/work?bytes=16384"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
            subprocess.run(["perf", "record", "-F", "2000", "-p", str(server.process.pid), "-o", data, "--", "sleep", str(seconds)],
                           capture_output=True, check=True)
            load.wait()
            server.stop()
        report = subprocess.run(["perf", "report", "-i", data, "--sort", "symbol", "--stdio"],
                                capture_output=True, text=True, check=True).stdout
        shares = {name: 0.0 for name in ALLOCATOR_SYMBOLS}
        for line in report.splitlines():
            match = re.match(r"\s*([\d.]+)%\s+\[[.k]\]\s+(\S+)", line)
            if not match:
                continue
            for name, pattern in ALLOCATOR_SYMBOLS.items():
                if pattern.search(match.group(2)):
                    shares[name] += float(match.group(1))
                    break
        lines.append(f"{mode:<7} " + ", ".join(f"{name} {share:.2f}%" for name, share in shares.items()))
    shutil.rmtree(scratch)
    with open(os.path.join(results, "service-profile.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    log("service profile:\n" + "\n".join(lines))


def instructions(binary, results, quick, log):
    """Instructions per request under callgrind, by mode, on /hello and /work?bytes=16384."""
    if not shutil.which("valgrind"):
        log("service instructions: skipped, valgrind is not installed")
        return
    scratch = tempfile.mkdtemp()
    # valgrind 3.19 cannot read the release build's DWARF 5; the symbol table is enough.
    stripped = os.path.join(scratch, "numa-service")
    shutil.copy(binary, stripped)
    subprocess.run(["strip", "-g", stripped], check=True)
    count = 500 if quick else 2000
    rows = []
    for endpoint, path in (("hello", "/hello?x=1"), ("work16k", "/work?bytes=16384")):
        for mode in MODES:
            totals = []
            for n in (count, 2 * count):
                out = os.path.join(scratch, f"{mode}.{n}.callgrind")
                port = free_port()
                server = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", stripped,
                                           "--port", str(port), "--allocator", mode, "--placement-sample", "0",
                                           "--metrics-interval", "3600", "--no-purger"],
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                if "listening on port" not in server.stdout.readline():
                    raise SystemExit("benchmarks: numa-service did not start under valgrind")
                subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}{path}&n=[1-{n}]"], check=True)
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    server.kill()
                    raise SystemExit("benchmarks: numa-service under valgrind did not stop on SIGTERM")
                if server.returncode != 0:
                    raise SystemExit(f"benchmarks: numa-service under valgrind exited {server.returncode}")
                with open(out) as f:
                    totals.append(next(int(line.split()[1]) for line in f if line.startswith(("summary:", "totals:"))))
            rows.append({"endpoint": endpoint, "allocator": mode, "requests": count,
                         "instructions_per_request": f"{(totals[1] - totals[0]) / count:.0f}"})
            log(f"service instructions: {endpoint} {mode}: {rows[-1]['instructions_per_request']} per request")
    shutil.rmtree(scratch)
    with open(os.path.join(results, "service-instructions.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def placement(binary, results, root, log, requests=400):
    """In the `two` guest: loops on CPUs 0 and 1 (one per node), curl's requests on short
    connections, and the server's placement counts from /metrics, for each mode and both
    places handlers run."""
    out = os.path.join(results, ".service-placement")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    lines = ["set -e"]  # numa-vm boots the guest with NUMA balancing off
    port = 18080
    for mode in MODES:
        for handlers in ("concurrency", "event-loops"):
            name = f"{mode}-{handlers}"
            port += 1
            lines += [
                f"{binary} --port {port} --allocator {mode} --handlers {handlers} --placement-sample 1 "
                f"> {out}/{name}.out 2> {out}/{name}.err &",
                "pid=$!",
                f"for i in $(seq 100); do grep -q listening {out}/{name}.out && break; sleep 0.5; done",
                f"curl -s -S -Z --parallel-max 8 -H 'Connection: close' -o /dev/null "
                f"'http://127.0.0.1:{port}/work?bytes=16384&n=[1-{requests}]'",
                f"curl -s -S http://127.0.0.1:{port}/metrics > {out}/{name}.metrics",
                "kill -TERM $pid",
                "wait $pid",
            ]
    with open(os.path.join(out, "placement.sh"), "w") as f:
        f.write("\n".join(lines) + "\n")
    subprocess.run([os.path.join(root, "scripts", "numa-vm"), "two", "--rwdir", out, "--", f"sh {out}/placement.sh"], check=True)
    rows = []
    for mode in MODES:
        for handlers in ("concurrency", "event-loops"):
            with open(os.path.join(out, f"{mode}-{handlers}.metrics")) as f:
                text = f.read()
            counts = {}
            for match in re.finditer(r'numaservice_placement_total\{object="(\w+)",locality="(\w+)"\} (\S+)', text):
                counts[(match.group(1), match.group(2))] = float(match.group(3))
            for obj in ("context", "buffer"):
                local, remote, unknown = (counts.get((obj, k), 0) for k in ("local", "remote", "unknown"))
                placed = local + remote
                rows.append({"allocator": mode, "handlers": handlers, "object": obj, "local": int(local),
                             "remote": int(remote), "unknown": int(unknown),
                             "local_share": f"{local / placed:.3f}" if placed else ""})
    shutil.rmtree(out)
    with open(os.path.join(results, "service-placement.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    log("service placement (two guest): " + "; ".join(
        f"{r['allocator']}/{r['handlers']} {r['object']} {r['local_share']}" for r in rows))
    return rows
