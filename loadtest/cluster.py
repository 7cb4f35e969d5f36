"""`loadtest/run --cluster`: the cluster mode's load figure (shared/cluster.md §13.2 #10).

In one run, on this machine's loopback:
  1. embedded: one gateway on fjall, the preloaded population, k6 `send_batch.js` (500-recipient
     batches to PushOnline users with tokens) for --duration seconds;
  2. redis: a 3+3 Redis Cluster (scripts/redis-cluster) and 3 gateway nodes in
     `cluster.mode = "redis"`, the same population preloaded through node 1, k6
     `send_batch.js` with BASES spreading the same batches over the 3 nodes.
Both phases send to the same Xiaomi emulator. Each reports recipients routed per second and the
gateway's CPU per recipient (user+system from /proc, summed over the 3 nodes in redis mode), both
over the k6 phase alone and up to the end of the drain to the emulator (the owner node sends a
certificate's notifications after the senders answered, so the drain is part of the work). The
Redis servers' CPU is reported beside it, not added.

Ratios (target/loadtest/report.json, merged into an existing report):
  ratios.cluster_vs_embedded      recipients/s, redis mode over embedded (1.0 = as fast)
  ratios.cpu_cluster_vs_embedded  gateway CPU per recipient, embedded over redis mode
                                  (1.0 = as cheap; the other CPU ratios' convention)
Standard library only; every phase has a time bound; every process started here is stopped by
its own pid.
"""

import json
import os
import random
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REDIS_CLUSTER = os.path.join(ROOT, "scripts", "redis-cluster")

# Node settings: the test suite's on this shared machine (a replica's WAIT can take longer than
# the 50 ms default), and queues deep enough that a phase never hits `queue_full`.
NODE_TOML = """# written by loadtest/run --cluster
[push]
queue_capacity = %(queue)d
vendor_timeout_ms = 120000

[cluster]
wait_timeout_ms = 2000
cert_queue_capacity = %(queue)d
inbox_capacity = 1000000
"""


class Pids:
    """CPU of processes we did not start through Proc (the Redis servers), for CpuMeter."""

    def __init__(self, run, pids):
        self.run, self.pids = run, pids

    def cpu(self):
        secs = [self.run.cpu_seconds(p) for p in self.pids]
        return None if any(s is None for s in secs) else sum(secs)


def free_redis_base():
    """Six client ports and their bus ports (+10000) free on loopback."""
    for _ in range(200):
        base = random.randrange(21000, 29000)
        ports = [p for b in range(base, base + 6) for p in (b, b + 10000)]
        ok = True
        for p in ports:
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                s.close()
            if not ok:
                break
        if ok:
            return base
    sys.exit("loadtest --cluster: no free port range for Redis")


def emulator_drained(run, emu, tail=1.5, bound=180):
    """Waits until the emulator's accepted count stops rising for `tail` seconds; the count."""
    last, last_t = run.emulator_accepted(emu), time.time()
    deadline = time.time() + bound
    while time.time() < deadline:
        time.sleep(0.1)
        a = run.emulator_accepted(emu)
        if a is None:
            break
        if a != last:
            last, last_t = a, time.time()
        elif time.time() - last_t > tail:
            break
    return last


def scrape_all(run, bases):
    out = []
    for b in bases:
        s, _ = run.scrape(b)
        out.extend(s)
    return out


def preload(run, ctx, base, pid_list, label):
    r = subprocess.run(
        [ctx["bins"]["preload"], "--url", base, "--api-token", ctx["api_token"],
         "--certificate-id", str(ctx["cert_id"]), "--devices", str(ctx["devices"]),
         "--concurrency", "256"] + (["--pid", str(pid_list[0])] if len(pid_list) == 1 else []),
        capture_output=True, text=True, timeout=1800,
    )
    try:
        pre = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        sys.exit(f"loadtest --cluster: preload ({label}) failed: {r.stdout[-500:]} {r.stderr[-500:]}")
    run.log(f"preload ({label}): {pre['login_events_per_sec']:.0f} login events/s, "
            f"{pre['token_reports_per_sec']:.0f} durable token reports/s, errors {pre['errors']}")
    return pre


def create_certificate(run, ctx, base):
    status, text = run.http("POST", f"{base}/v1/certificates", {
        "vendor": "xiaomi", "package_name": "com.example.chat", "app_id": "2882303761517000000",
        "app_secret": "loadtest-secret", "click_action": {"type": "open_app"}, "qps": 100000,
    }, token=ctx["admin_token"])
    if status != 201:
        sys.exit(f"loadtest --cluster: creating the certificate failed: {status} {text}")
    return json.loads(text)["id"]


def measure(run, ctx, label, script, bases, procs, extra_env, redis=None):
    """One send_batch phase: k6 for the duration, then the drain to the emulator. Figures per
    recipient routed, with CPU over the k6 phase and up to the end of the drain."""
    emu = ctx["emulator"]
    m0 = scrape_all(run, bases)
    a0 = run.emulator_accepted(emu) or 0
    meter = run.CpuMeter(dict(procs, **({"redis": redis} if redis else {})))
    res = run.k6_run(ctx, label, script, bases[0], extra_env, cpu_of=dict(procs))
    drained = emulator_drained(run, emu)
    cpu_total = meter.stop()
    m1 = scrape_all(run, bases)
    gw_k6 = sum(v for v in res.get("cpu_seconds", {}).values() if v is not None)
    gw_all = sum(v for n, v in cpu_total.items() if n != "redis" and v is not None)
    secs = res.get("seconds") or 0
    rec = round((res.get("recipients_per_sec") or 0) * secs)
    by_outcome = run.diff(run.by_label(m1, "pushgate_recipients_total", "outcome"),
                          run.by_label(m0, "pushgate_recipients_total", "outcome"))
    out = {
        "nodes": len(bases),
        "requests": res.get("requests"),
        "seconds": secs,
        "recipients": rec,
        "recipients_per_sec": res.get("recipients_per_sec"),
        "p50_ms": res.get("p50_ms"),
        "p99_ms": res.get("p99_ms"),
        "error_rate": res.get("error_rate"),
        "recipients_by_outcome": by_outcome,
        "skipped_by_reason": run.diff(run.by_label(m1, "pushgate_skipped_total", "reason"),
                                      run.by_label(m0, "pushgate_skipped_total", "reason")),
        "notifications_to_emulator": (drained or 0) - a0,
        "gateway_cpu_seconds_k6_phase": round(gw_k6, 3),
        "gateway_cpu_seconds_to_drain_end": round(gw_all, 3),
        "gateway_cpu_seconds_by_process": cpu_total,
        "cpu_us_per_recipient": run.per_unit_us(gw_all, rec),
        "cpu_us_per_recipient_k6_phase": run.per_unit_us(gw_k6, rec),
    }
    if redis:
        out["redis_cpu_seconds"] = cpu_total.get("redis")
        out["redis_cpu_us_per_recipient"] = run.per_unit_us(cpu_total.get("redis"), rec)
    run.log(f"{label}: {run.fnum(out['recipients_per_sec'])} recipients/s, "
            f"gateway {run.fnum(out['cpu_us_per_recipient'], 2)} µs/recipient "
            f"(k6 phase {run.fnum(out['cpu_us_per_recipient_k6_phase'], 2)}), "
            f"{out['notifications_to_emulator']} notifications to the emulator")
    return out


def start_node(run, ctx, name, urls, conf):
    env = run.gateway_env(ctx)
    env.update(
        PUSHGATE_DATA_DIR=os.path.join(ctx["run_dir"], name),
        PUSHGATE_CLUSTER_MODE="redis",
        PUSHGATE_REDIS_URLS=",".join(urls),
        PUSHGATE_NODE_NAME=name,
    )
    return run.Proc(name, [ctx["bins"]["pushgate"], "serve", "--config", conf], env,
                    ctx["run_dir"], "pushgate listening on")


def main(run, args):
    started_at = time.time()
    devices = args.devices or 20_000
    duration = max(2, min(args.duration or (8 if args.quick else 15), 120))
    vus = args.vus or 32
    os.makedirs(run.OUT_DIR, exist_ok=True)
    run_dir = os.path.join(run.OUT_DIR, "cluster-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    os.makedirs(run_dir)
    if not shutil_which("redis-server") or not shutil_which("redis-cli"):
        sys.exit("loadtest --cluster: redis-server/redis-cli are not installed "
                 "(apt-get install redis-server redis-tools)")
    mach = run.machine()
    run.log(f"cluster load figure: {devices} devices, {duration} s per phase, {vus} VUs; run dir {run_dir}")
    k6, k6_version = run.ensure_k6()
    bins = run.build(args.skip_build)
    import secrets
    ctx = {
        "k6": k6, "bins": bins, "run_dir": run_dir, "devices": devices, "duration": duration,
        "vus": vus, "admin_token": "adm-" + secrets.token_hex(12),
        "api_token": "api-" + secrets.token_hex(12), "secret_key": secrets.token_hex(16),
        "queue_capacity": args.queue_capacity or 2_000_000, "vendor_emulators": {},
    }
    report = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_at)),
        "command": "loadtest/run " + " ".join(sys.argv[1:]),
        "git": run.git_commit(), "machine": mach, "k6": k6_version,
        "params": {"devices": devices, "duration_secs": duration, "vus": vus, "batch": 500},
    }
    procs, redis_dir = [], None
    try:
        emu = run.Proc("emulator", [bins["loadtest_emulator"], "--listen", "127.0.0.1:0",
                                    "--workers", "2"], dict(os.environ), run_dir,
                       "emulator listening on")
        procs.append(emu)
        ctx["emulator"] = f"http://{emu.addr}"
        ctx["emulator_proc"] = emu

        # -- embedded
        gw = run.start_gateway(ctx)
        procs.append(gw)
        base = f"http://{gw.addr}"
        if not run.wait_ready(base):
            sys.exit("loadtest --cluster: the embedded gateway never became ready")
        ctx["cert_id"] = create_certificate(run, ctx, base)
        report["embedded_preload"] = preload(run, ctx, base, [gw.p.pid], "embedded")
        run.log("embedded: send_batch, one node")
        report["embedded"] = measure(run, ctx, "embedded_send_batch", "send_batch.js", [base],
                                     {"gateway": gw}, {})
        gw.stop()
        procs.remove(gw)

        # -- redis mode: 3+3 Redis Cluster, 3 nodes
        redis_dir = os.path.join(run_dir, "redis")
        rbase = free_redis_base()
        t0 = time.time()
        r = subprocess.run([REDIS_CLUSTER, "start", redis_dir, str(rbase)],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            sys.exit(f"loadtest --cluster: redis-cluster start failed: {r.stdout[-500:]} {r.stderr[-500:]}")
        run.log(f"Redis Cluster 3+3 on ports {rbase}..{rbase + 5} in {time.time() - t0:.1f} s")
        urls = [f"redis://127.0.0.1:{p}" for p in range(rbase, rbase + 3)]
        redis_pids = []
        for p in range(rbase, rbase + 6):
            with open(os.path.join(redis_dir, str(p), "redis.pid")) as f:
                redis_pids.append(int(f.read().strip()))
        conf = os.path.join(run_dir, "node.toml")
        with open(conf, "w") as f:
            f.write(NODE_TOML % {"queue": ctx["queue_capacity"]})
        nodes = []
        for i in (1, 2, 3):
            n = start_node(run, ctx, f"gw-{i}", urls, conf)
            procs.append(n)
            nodes.append(n)
        bases = [f"http://{n.addr}" for n in nodes]
        for b in bases:
            if not run.wait_ready(b, timeout=60):
                sys.exit(f"loadtest --cluster: node {b} never became ready")
        ctx["cert_id"] = create_certificate(run, ctx, bases[0])
        # Every node must know the certificate before a send names it (the log is read every
        # 500 ms), and one of them must own its queue.
        deadline = time.time() + 30
        while time.time() < deadline:
            m = scrape_all(run, bases)
            if run.total(m, "pushgate_cert_owned") >= 1:
                break
            time.sleep(0.2)
        time.sleep(1.0)
        report["redis_preload"] = preload(run, ctx, bases[0], [n.p.pid for n in nodes], "redis mode")
        run.log("redis mode: send_batch over 3 nodes")
        report["redis"] = measure(
            run, ctx, "cluster_send_batch", "send_batch.js", bases,
            {n.name: n for n in nodes}, {"BASES": ",".join(bases)},
            redis=Pids(run, redis_pids))
    finally:
        for p in reversed(procs):
            p.stop(timeout=30)
        if redis_dir:
            subprocess.run([REDIS_CLUSTER, "stop", redis_dir], capture_output=True, timeout=60)

    e, c = report["embedded"], report["redis"]
    ratios = {}
    if e.get("recipients_per_sec") and c.get("recipients_per_sec") is not None:
        ratios["cluster_vs_embedded"] = round(c["recipients_per_sec"] / e["recipients_per_sec"], 4)
    if e.get("cpu_us_per_recipient") and c.get("cpu_us_per_recipient"):
        ratios["cpu_cluster_vs_embedded"] = round(e["cpu_us_per_recipient"] / c["cpu_us_per_recipient"], 4)
    report["ratios"] = ratios
    report["elapsed_secs"] = round(time.time() - started_at, 1)
    with open(os.path.join(run_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    # Merged into the main report, which may hold a full run's figures: the cluster section and
    # its two ratios replace any earlier ones.
    main_path = os.path.join(run.OUT_DIR, "report.json")
    try:
        with open(main_path) as f:
            merged = json.load(f)
    except (OSError, ValueError):
        merged = {}
    merged["cluster"] = report
    merged.setdefault("ratios", {}).update(ratios)
    with open(main_path, "w") as f:
        json.dump(merged, f, indent=2)
    print_report(run, report)
    run.log(f"report: {main_path} (cluster section; logs in {run_dir})")


def shutil_which(name):
    import shutil
    return shutil.which(name)


def print_report(run, r):
    e, c, ra = r["embedded"], r["redis"], r["ratios"]
    m = r["machine"]
    print()
    print("pushgate cluster load figure (500-recipient batches to PushOnline users with tokens)")
    print(f"  when     {r['timestamp']}   commit {r['git']}   elapsed {r['elapsed_secs']} s")
    print(f"  machine  {m['nproc']} cores, {m['cpu']}, load average at start {m.get('loadavg_at_start')}")
    print(f"  command  {r['command']}  ({r['params']['devices']:,} devices, "
          f"{r['params']['duration_secs']} s per phase, {r['params']['vus']} k6 VUs)")
    print("  k6, the gateways, the emulator and the 6 Redis servers share this machine's cores.")
    print()
    print(f"  {'mode':<22}{'recipients/s':>14}{'p50 ms':>9}{'p99 ms':>9}{'µs CPU/recip.':>15}{'k6 phase':>10}{'Redis µs':>10}")
    for name, s in (("embedded (1 node)", e), ("redis (3 nodes, 3+3)", c)):
        print(f"  {name:<22}{run.fnum(s.get('recipients_per_sec')):>14}{run.fnum(s.get('p50_ms'), 1):>9}"
              f"{run.fnum(s.get('p99_ms'), 1):>9}{run.fnum(s.get('cpu_us_per_recipient'), 2):>15}"
              f"{run.fnum(s.get('cpu_us_per_recipient_k6_phase'), 2):>10}"
              f"{run.fnum(s.get('redis_cpu_us_per_recipient'), 2):>10}")
    print()
    print(f"  ratios.cluster_vs_embedded      {run.fnum(ra.get('cluster_vs_embedded'), 4)}  (recipients/s, redis over embedded)")
    print(f"  ratios.cpu_cluster_vs_embedded  {run.fnum(ra.get('cpu_cluster_vs_embedded'), 4)}  "
          f"(gateway CPU per recipient, embedded over redis; 1.0 = as cheap)")
    print(f"  durable token reports/s, preload: embedded "
          f"{run.fnum(r['embedded_preload'].get('token_reports_per_sec'))}, redis mode "
          f"{run.fnum(r['redis_preload'].get('token_reports_per_sec'))}")
    print()
