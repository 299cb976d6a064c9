#!/usr/bin/env python3
"""Runs the whole benchmark comparison and writes docs/BENCHMARKS.md.

pci-vault (the Rust API, the Node binding, the example server over HTTP; memory store and
Redis) and the plain Node.js peer (node:crypto + ioredis, ../shared/peers/node-secure-forms)
run interleaved, several repetitions, against the same redis-server; redis-benchmark's
EVALSHA rate at the same concurrency is the ceiling. Every run waits until the machine is
idle and records the CPU of everything else; a disturbed run is retried.

Usage: python3 bench/compare.py [--reps 3] [--duration 10] [--warmup 2]
                                [--peer DIR] [--out docs/BENCHMARKS.md] [--no-idle-wait]
"""
import argparse, json, os, platform, re, shutil, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HZ = os.sysconf('SC_CLK_TCK')

ap = argparse.ArgumentParser()
ap.add_argument('--reps', type=int, default=3)
ap.add_argument('--duration', type=float, default=10)
ap.add_argument('--warmup', type=float, default=2)
ap.add_argument('--peer', default=os.path.join(ROOT, '..', 'shared', 'peers', 'node-secure-forms'))
ap.add_argument('--out', default=os.path.join(ROOT, 'docs', 'BENCHMARKS.md'))
ap.add_argument('--json', default=os.path.join(ROOT, '.test-run', 'bench', 'results.json'))
ap.add_argument('--no-idle-wait', action='store_true')
ap.add_argument('--only', help='comma-separated config names to run (for a quick look)')
args = ap.parse_args()

def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)

def sys_ticks():
    f = list(map(int, open('/proc/stat').readline().split()[1:]))
    return f[0] + f[1] + f[2] + f[5] + f[6] + f[7]

def proc_ticks(pid):
    try:
        s = open(f'/proc/{pid}/stat').read()
        f = s[s.rindex(')') + 2:].split()
        return int(f[11]) + int(f[12])
    except OSError:
        return 0

def wait_idle(max_cores=0.1, timeout=300):
    if args.no_idle_wait:
        return 0.0
    t0 = time.time()
    while True:
        a = sys_ticks(); time.sleep(1); b = sys_ticks()
        if (b - a) / HZ < max_cores or time.time() - t0 > timeout:
            return time.time() - t0

def free_port():
    s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()
    return port

# ---------------------------------------------------------------- build ----
print('building (release): load driver, server, Node binding; installing the peer', flush=True)
sh(['cargo', 'build', '--release', '--locked', '-p', 'pci-vault-bench', '-p', 'pci-vault-server'], cwd=ROOT)
node_dir = os.path.join(ROOT, 'bindings', 'node')
if not os.path.isdir(os.path.join(node_dir, 'node_modules')):
    sh(['npm', 'ci', '--no-audit', '--no-fund'], cwd=node_dir)
sh(['npm', 'run', 'build'], cwd=node_dir, stdout=subprocess.DEVNULL)
peer = os.path.abspath(args.peer)
if not os.path.isdir(os.path.join(peer, 'node_modules')):
    sh(['npm', 'ci', '--no-audit', '--no-fund'], cwd=peer)
driver = os.path.join(ROOT, 'target', 'release', 'pci-vault-load')

# ---------------------------------------------------------------- redis ----
port = free_port()
rdir = tempfile.mkdtemp(prefix='pci-vault-bench-redis-')
redis_proc = subprocess.Popen(['redis-server', '--port', str(port), '--bind', '127.0.0.1', '--save', '',
                               '--appendonly', 'no', '--maxmemory-policy', 'noeviction', '--dir', rdir],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for _ in range(100):
    if subprocess.run(['redis-cli', '-p', str(port), 'ping'], capture_output=True).returncode == 0:
        break
    time.sleep(0.05)
redis_url = f'redis://127.0.0.1:{port}'
redis_version = subprocess.run(['redis-server', '--version'], capture_output=True, text=True).stdout.split()[2]

def cleanup():
    redis_proc.terminate(); redis_proc.wait(); shutil.rmtree(rdir, ignore_errors=True)

# ---------------------------------------------------------------- runs -----
def measured(cmd, cwd=ROOT):
    """Runs cmd once the machine is idle; retries (up to 4 times) a run during which other
    processes used more than 0.15 core. Returns its standard output."""
    for attempt in range(5):
        wait_idle()
        s0, r0, t0 = sys_ticks(), proc_ticks(redis_proc.pid), time.time()
        p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = p.communicate()
        t1 = time.time(); s1, r1 = sys_ticks(), proc_ticks(redis_proc.pid)
        if p.returncode != 0:
            raise SystemExit(f'{" ".join(cmd)} failed:\n{err}')
        sec = max(t1 - t0, 1e-9)
        others = (s1 - s0) / HZ / sec - (r1 - r0) / HZ / sec - cpu_of_children(t0, sec)
        if args.no_idle_wait or others <= 0.15 or attempt == 4:
            return out
        print(f'  (discarded a run of {cmd[0]}: other processes used {others:.2f} cores)', flush=True)
    return out

_children_before = [0.0]
def cpu_of_children(t0, sec):
    """Cores used by the commands this script waited for, during their run."""
    t = os.times()
    used = t.children_user + t.children_system - _children_before[0]
    _children_before[0] = t.children_user + t.children_system
    return used / sec

def ours(target, conc):
    cmd = [driver, '--target', target, '--concurrency', str(conc), '--duration', str(args.duration),
           '--warmup', str(args.warmup), '--ttl', '60', '--json']
    if 'redis' in target:
        cmd += ['--redis-url', redis_url]
    out = measured(cmd)
    r = json.loads(out.strip().splitlines()[-1])
    return {
        'cycles_per_second': r['cycles_per_second'], 'p50_ms': r['latency_us']['p50'] / 1000,
        'p99_ms': r['latency_us']['p99'] / 1000, 'max_ms': r['latency_us']['max'] / 1000,
        'errors': r['errors'], 'client_cpu_us_per_cycle': r['client_cpu_us_per_cycle'],
        'server_cpu_us_per_cycle': r.get('server_cpu_us_per_cycle'),
        'redis_cpu_us_per_cycle': r.get('redis_cpu_us_per_cycle'), 'peak_rss_bytes': r.get('peak_rss_bytes'),
    }

def peer_run(store, conc):
    out_file = tempfile.mktemp(suffix='.json')
    cmd = ['node', 'bench.mjs', '--stores', store, '--conc', str(conc), '--duration', str(args.duration),
           '--warmup', str(args.warmup), '--reps', '1', '--port', str(port), '--no-idle-wait', '--out', out_file]
    measured(cmd, cwd=peer)
    data = json.load(open(out_file)); os.unlink(out_file)
    run = data['runs'][0]
    cycles = run['cycles']
    return {
        'cycles_per_second': run['cyclesPerSec'], 'p50_ms': run['p50ms'], 'p99_ms': run['p99ms'],
        'max_ms': run['maxms'], 'errors': 0,
        'client_cpu_us_per_cycle': run['cpu']['node'] * run['seconds'] * 1e6 / cycles,
        'redis_cpu_us_per_cycle': run['cpu']['redis'] * run['seconds'] * 1e6 / cycles if store != 'memory' else None,
    }

SHA = None
def evalsha(conc):
    global SHA
    if SHA is None:
        lua = ("if redis.call('GETRANGE', KEYS[1], 0, 7) ~= ARGV[1] then return 0 end "
               "redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL') return 1")
        SHA = subprocess.run(['redis-cli', '-p', str(port), 'script', 'load', lua],
                             capture_output=True, text=True, check=True).stdout.strip()
        subprocess.run(['redis-cli', '-p', str(port), 'set', 'bench:k', 'v' * 400], capture_output=True, check=True)
    cmd = ['redis-benchmark', '-p', str(port), '-c', str(conc), '-n', str(200000 if conc > 1 else 50000), '-q',
           'evalsha', SHA, '1', 'bench:k', 'xxxxxxxx', 'y' * 400]
    out = measured(cmd)
    m = re.search(r'([\d.]+) requests per second', out.replace('\r', '\n'))
    return {'requests_per_second': float(m.group(1)) if m else None}

CONFIGS = [
    ('rust-memory c=1', lambda: ours('rust-memory', 1)),
    ('peer memory c=1', lambda: peer_run('memory', 1)),
    ('node-memory c=1', lambda: ours('node-memory', 1)),
    ('rust-memory c=64', lambda: ours('rust-memory', 64)),
    ('peer memory c=64', lambda: peer_run('memory', 64)),
    ('node-memory c=64', lambda: ours('node-memory', 64)),
    ('rust-redis c=1', lambda: ours('rust-redis', 1)),
    ('peer redis c=1', lambda: peer_run('redis', 1)),
    ('node-redis c=1', lambda: ours('node-redis', 1)),
    ('rust-redis c=64', lambda: ours('rust-redis', 64)),
    ('peer redis c=64', lambda: peer_run('redis', 64)),
    ('node-redis c=64', lambda: ours('node-redis', 64)),
    ('http-memory c=64', lambda: ours('http-memory', 64)),
    ('http-redis c=64', lambda: ours('http-redis', 64)),
    ('redis-benchmark evalsha c=1', lambda: evalsha(1)),
    ('redis-benchmark evalsha c=64', lambda: evalsha(64)),
]
if args.only:
    keep = set(args.only.split(','))
    CONFIGS = [c for c in CONFIGS if c[0] in keep]

results = {name: [] for name, _ in CONFIGS}
cpu_of_children(0, 1)  # start counting the children's CPU from here
try:
    for rep in range(1, args.reps + 1):
        for name, run in CONFIGS:
            r = run()
            results[name].append(r)
            rate = r.get('cycles_per_second') or r.get('requests_per_second')
            print(f'rep {rep} {name:30} {rate:10.0f}/s  p50 {r.get("p50_ms", 0):.3f} ms  p99 {r.get("p99_ms", 0):.3f} ms', flush=True)
    footprint_mem = json.loads(subprocess.run([driver, '--target', 'memory-footprint', '--sessions', '100000'],
                                              capture_output=True, text=True, check=True).stdout)
    # The runs above left sessions that expire while the footprint is measured: start it
    # from an empty server, or their expiry cancels the growth it measures.
    subprocess.run(['redis-cli', '-p', str(port), 'flushall'], capture_output=True, check=True)
    footprint_redis = json.loads(subprocess.run([driver, '--target', 'redis-footprint', '--redis-url', redis_url,
                                                 '--sessions', '20000'], capture_output=True, text=True, check=True).stdout)
finally:
    cleanup()

def med(name, key):
    xs = [r[key] for r in results.get(name, []) if r.get(key) is not None]
    return statistics.median(xs) if xs else None

os.makedirs(os.path.dirname(args.json), exist_ok=True)
json.dump({'results': results, 'footprint': {'memory': footprint_mem, 'redis': footprint_redis}},
          open(args.json, 'w'), indent=2)

# ---------------------------------------------------------------- report ---
def fmt(v, digits=0):
    return '—' if v is None else (f'{v:,.{digits}f}')

cpu = open('/proc/cpuinfo').read()
model = re.search(r'model name\s*:\s*(.+)', cpu).group(1)
rows = []
for name, _ in CONFIGS:
    if name.startswith('redis-benchmark'):
        continue
    rows.append(f"| {name} | {fmt(med(name, 'cycles_per_second'))} | {fmt(med(name, 'p50_ms'), 3)} | "
                f"{fmt(med(name, 'p99_ms'), 3)} | {fmt(med(name, 'max_ms'), 1)} | "
                f"{fmt(med(name, 'client_cpu_us_per_cycle'), 1)} | {fmt(med(name, 'server_cpu_us_per_cycle'), 1)} | "
                f"{fmt(med(name, 'redis_cpu_us_per_cycle'), 1)} |")
reps_detail = '\n'.join(
    f"| {name} | " + ' / '.join(fmt(r.get('cycles_per_second') or r.get('requests_per_second')) for r in results[name]) + ' |'
    for name, _ in CONFIGS)

def ratio(a, b):
    return None if a is None or not b else a / b

def verdict(ok):
    return '—' if ok is None else ('met' if ok else '**missed**')

def target_row(figure, peer, target, measured, ok):
    return f'| {figure} | {peer} | {target} | {measured} | {verdict(ok)} |'

def at_least(v, bound):
    return None if v is None else v >= bound

def at_most(v, bound):
    return None if v is None else v <= bound

peer_mem_c1 = med('peer memory c=1', 'cycles_per_second')
peer_redis_c64 = med('peer redis c=64', 'cycles_per_second')
rust_redis_c64 = med('rust-redis c=64', 'cycles_per_second')
node_redis_c64 = med('node-redis c=64', 'cycles_per_second')
targets = [
    target_row('full cycles/s, memory store, in-process, c=1, Rust', fmt(peer_mem_c1), '≥ 100,000',
               fmt(med('rust-memory c=1', 'cycles_per_second')), at_least(med('rust-memory c=1', 'cycles_per_second'), 100_000)),
    target_row('the same, through the Node binding', fmt(peer_mem_c1), '≥ 30,000',
               fmt(med('node-memory c=1', 'cycles_per_second')), at_least(med('node-memory c=1', 'cycles_per_second'), 30_000)),
    target_row('p99 per cycle, memory store, c=64, Rust', fmt(med('peer memory c=64', 'p99_ms'), 1) + ' ms', '≤ 2 ms',
               fmt(med('rust-memory c=64', 'p99_ms'), 2) + ' ms', at_most(med('rust-memory c=64', 'p99_ms'), 2)),
    target_row('the same, through the Node binding', fmt(med('peer memory c=64', 'p99_ms'), 1) + ' ms', '≤ 10 ms',
               fmt(med('node-memory c=64', 'p99_ms'), 2) + ' ms', at_most(med('node-memory c=64', 'p99_ms'), 10)),
    target_row('full cycles/s, Redis, c=64, Rust', fmt(peer_redis_c64), '≥ 2.5 × the peer',
               f"{fmt(rust_redis_c64)} ({fmt(ratio(rust_redis_c64, peer_redis_c64), 2)} ×)",
               at_least(ratio(rust_redis_c64, peer_redis_c64), 2.5)),
    target_row('the same, through the Node binding', fmt(peer_redis_c64), '≥ 1.5 × the peer',
               f"{fmt(node_redis_c64)} ({fmt(ratio(node_redis_c64, peer_redis_c64), 2)} ×)",
               at_least(ratio(node_redis_c64, peer_redis_c64), 1.5)),
    target_row('p50 per cycle, Redis, c=1, Rust', fmt(med('peer redis c=1', 'p50_ms'), 3) + ' ms', '≤ 0.25 ms',
               fmt(med('rust-redis c=1', 'p50_ms'), 3) + ' ms', at_most(med('rust-redis c=1', 'p50_ms'), 0.25)),
    target_row('the same, through the Node binding', fmt(med('peer redis c=1', 'p50_ms'), 3) + ' ms', '≤ 0.25 ms',
               fmt(med('node-redis c=1', 'p50_ms'), 3) + ' ms', at_most(med('node-redis c=1', 'p50_ms'), 0.25)),
    target_row('redis-server CPU per cycle, c=1 / c=64, Rust',
               f"{fmt(med('peer redis c=1', 'redis_cpu_us_per_cycle'))} / {fmt(med('peer redis c=64', 'redis_cpu_us_per_cycle'))} µs",
               'report it',
               f"{fmt(med('rust-redis c=1', 'redis_cpu_us_per_cycle'))} / {fmt(med('rust-redis c=64', 'redis_cpu_us_per_cycle'))} µs", None),
    target_row('full cycles/s over HTTP, memory store, c=64', '—', f'≥ the peer in-process, memory, c=1 ({fmt(peer_mem_c1)})',
               fmt(med('http-memory c=64', 'cycles_per_second')), at_least(med('http-memory c=64', 'cycles_per_second'), peer_mem_c1 or float('inf'))),
]

doc = open(args.out).read() if os.path.exists(args.out) else ''
generated = f"""<!-- generated by bench/compare.py: do not edit between these markers -->
Measured {time.strftime('%Y-%m-%d')} on {model}, {os.cpu_count()} cores, Linux {platform.release()},
redis-server {redis_version} on loopback (no persistence), Node.js {subprocess.run(['node', '--version'], capture_output=True, text=True).stdout.strip()};
{args.reps} interleaved repetitions of {args.duration:g} s after {args.warmup:g} s of warm-up, median shown; each
run waited for an idle machine. A cycle is create → submit → reveal with the revealed values
checked. CPU columns are CPU time per cycle: the client process (for the Rust and Node
targets this is the whole vault), the HTTP server, and redis-server.

Targets, against the peer measured in the same run:

| figure | peer | target | pci-vault | |
|---|---:|---|---:|---|
{chr(10).join(targets)}

All runs:

| configuration | cycles/s | p50 ms | p99 ms | max ms | client CPU µs/cycle | server CPU µs/cycle | redis CPU µs/cycle |
|---|---:|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

redis-benchmark EVALSHA (a compare-and-set script like ours on a 400-byte value), the rate
Redis itself allows: c=1 {fmt(med('redis-benchmark evalsha c=1', 'requests_per_second'))} requests/s,
c=64 {fmt(med('redis-benchmark evalsha c=64', 'requests_per_second'))} requests/s.

Every repetition (cycles/s or requests/s):

| configuration | repetitions |
|---|---|
{reps_detail}

Memory per stored session (default form, submitted): memory store
{fmt(footprint_mem['record_bytes_per_session'])} bytes of sealed record,
{fmt(footprint_mem['counted_bytes_per_session'])} bytes counted against its bound,
{fmt(footprint_mem['rss_bytes_per_session'])} bytes of process RSS ({footprint_mem['sessions']:,} sessions);
Redis {fmt(footprint_redis['value_bytes'])}-byte value, `MEMORY USAGE` {fmt(footprint_redis['memory_usage_of_one_key'])} bytes,
`used_memory` growth {fmt(footprint_redis['used_memory_bytes_per_session'])} bytes per session ({footprint_redis['sessions']:,} sessions).
Peak RSS of the example server during the HTTP runs: {fmt((med('http-memory c=64', 'peak_rss_bytes') or 0) / 1048576, 1)} MiB (memory store),
{fmt((med('http-redis c=64', 'peak_rss_bytes') or 0) / 1048576, 1)} MiB (Redis).
<!-- end of generated section -->"""
start, end = '<!-- generated by bench/compare.py', '<!-- end of generated section -->'
if start in doc and end in doc:
    doc = doc[:doc.index(start)] + generated + doc[doc.index(end) + len(end):]
else:
    doc = doc + '\n' + generated + '\n'
open(args.out, 'w').write(doc)
print(f'wrote {args.out} and {args.json}')
