#!/usr/bin/env python3
"""Runs the whole benchmark comparison and writes docs/BENCHMARKS.md.

pci-vault (the Rust API, the Node binding, the example server over HTTP; memory store and
Redis) and the plain Node.js peer (node:crypto + ioredis; its directory is --peer) run
interleaved, several repetitions, against the same redis-server; redis-benchmark's EVALSHA
rate at the same concurrency is the ceiling. Every run waits until the machine is idle and
records the CPU of everything else; a disturbed run is retried.

Besides loopback, one run also measures:

- an emulated network: pci-vault and the peer reach the same redis-server through one
  `fault-proxy` (crate pci-vault-testkit) that adds --delay-us to every chunk each way
  (250 µs: about 0.5 ms per round trip; this kernel has no netem). The proxy waits out
  sub-millisecond delays by spinning, so it uses up to a core while requests are in flight:
  its CPU is recorded per run and not counted as disturbance.
- replication: a second redis-server with one replica (`--replicaof`); the Rust API with and
  without `min_replicas = 1` (--min-replicas-timeout-ms), and the peer, against its primary.
  The Node binding and the store string have no min_replicas option, so only the Rust API
  runs with it.
- round trips and commands per operation (create, submit, reveal with the right PIN, reveal
  with a wrong PIN, full cycle) for the Rust API, the Node binding, the Rust API with
  min_replicas and the peer: each runs --round-trip-batch operations of each kind at
  concurrency 1 through a counting proxy (in this script) that counts the commands the
  client sends and its round trips (a burst of requests after a reply).

Usage: python3 bench/compare.py [--reps 3] [--duration 10] [--warmup 2]
                                [--peer DIR] [--out docs/BENCHMARKS.md] [--no-idle-wait]
                                [--delay-us 250] [--min-replicas-timeout-ms 500]
                                [--round-trip-batch 200] [--only NAME,NAME]

Release binaries are built into $CARGO_TARGET_DIR (default: target/ of the repository).
"""
import argparse, json, os, platform, re, shutil, socket, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HZ = os.sysconf('SC_CLK_TCK')

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument('--reps', type=int, default=3)
ap.add_argument('--duration', type=float, default=10)
ap.add_argument('--warmup', type=float, default=2)
ap.add_argument('--peer', default=os.path.join(ROOT, '..', 'shared', 'peers', 'node-secure-forms'))
ap.add_argument('--out', default=os.path.join(ROOT, 'docs', 'BENCHMARKS.md'))
ap.add_argument('--json', default=os.path.join(ROOT, '.test-run', 'bench', 'results.json'))
ap.add_argument('--no-idle-wait', action='store_true')
ap.add_argument('--only', help='comma-separated config names to run (for a quick look)')
ap.add_argument('--delay-us', type=int, default=250,
                help='delay the fault-proxy adds to each chunk, each way, for the network runs')
ap.add_argument('--min-replicas-timeout-ms', type=int, default=500,
                help='the WAIT timeout of the min_replicas runs')
ap.add_argument('--round-trip-batch', type=int, default=200,
                help='operations of each kind counted for the round-trip table')
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
sh(['cargo', 'build', '--release', '--locked', '-p', 'pci-vault-bench', '-p', 'pci-vault-server',
    '-p', 'pci-vault-testkit', '--bin', 'pci-vault-load', '--bin', 'pci-vault-server', '--bin', 'fault-proxy'], cwd=ROOT)
node_dir = os.path.join(ROOT, 'bindings', 'node')
if not os.path.isdir(os.path.join(node_dir, 'node_modules')):
    sh(['npm', 'ci', '--no-audit', '--no-fund'], cwd=node_dir)
sh(['npm', 'run', 'build'], cwd=node_dir, stdout=subprocess.DEVNULL)
peer = os.path.abspath(args.peer)
if not os.path.isdir(os.path.join(peer, 'node_modules')):
    sh(['npm', 'ci', '--no-audit', '--no-fund'], cwd=peer)
target_dir = os.path.abspath(os.environ.get('CARGO_TARGET_DIR') or os.path.join(ROOT, 'target'))
driver = os.path.join(target_dir, 'release', 'pci-vault-load')
server_bin = os.path.join(target_dir, 'release', 'pci-vault-server')
fault_proxy_bin = os.path.join(target_dir, 'release', 'fault-proxy')

# ---------------------------------------------------------------- redis ----
started = []   # (Popen, temporary directory or None)

def start_redis(*extra):
    """A redis-server on a free loopback port, no persistence; returns (Popen, port)."""
    p = free_port()
    d = tempfile.mkdtemp(prefix='pci-vault-bench-redis-')
    proc = subprocess.Popen(['redis-server', '--port', str(p), '--bind', '127.0.0.1', '--save', '',
                             '--appendonly', 'no', '--maxmemory-policy', 'noeviction', '--dir', d, *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started.append((proc, d))
    for _ in range(100):
        if subprocess.run(['redis-cli', '-p', str(p), 'ping'], capture_output=True).returncode == 0:
            break
        time.sleep(0.05)
    return proc, p

def redis_info(p, section):
    return subprocess.run(['redis-cli', '-p', str(p), 'info', section], capture_output=True, text=True).stdout

def cleanup():
    for proc, d in reversed(started):
        if proc.stdin:
            proc.stdin.close()
        proc.terminate(); proc.wait()
        if d:
            shutil.rmtree(d, ignore_errors=True)

# The benchmark's own redis-server (loopback and, through the proxy, the network runs).
redis_proc, port = start_redis()
redis_url = f'redis://127.0.0.1:{port}'
redis_version = subprocess.run(['redis-server', '--version'], capture_output=True, text=True).stdout.split()[2]

# A primary with one replica, for the replication runs.
pair_proc, pair_port = start_redis()
replica_proc, replica_port = start_redis('--replicaof', '127.0.0.1', str(pair_port))
pair_url = f'redis://127.0.0.1:{pair_port}'
for _ in range(200):
    if 'master_link_status:up' in redis_info(replica_port, 'replication'):
        break
    time.sleep(0.05)
else:
    cleanup(); raise SystemExit('the replica did not come up')

# One delaying proxy in front of the benchmark's redis-server, shared by pci-vault and the peer.
proxy_proc = subprocess.Popen([fault_proxy_bin, f'127.0.0.1:{port}', str(args.delay_us)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
started.append((proxy_proc, None))
proxy_line = proxy_proc.stdout.readline()
m = re.search(r'listening on 127\.0\.0\.1:(\d+)', proxy_line)
if not m:
    cleanup(); raise SystemExit(f'fault-proxy printed {proxy_line!r}')
proxy_port = int(m.group(1))
proxy_url = f'redis://127.0.0.1:{proxy_port}'

# ---------------------------------------------------------------- runs -----
# Our own servers: their CPU is not a disturbance.
watched = {'redis': redis_proc.pid, 'pair': pair_proc.pid, 'replica': replica_proc.pid, 'proxy': proxy_proc.pid}

def measured(cmd, cwd=ROOT, done=None):
    """Runs cmd once the machine is idle; retries (up to 4 times) a run during which other
    processes used more than 0.15 core. Returns its standard output and what the machine
    did meanwhile: cores used by other processes, by the proxy and by the replica."""
    for attempt in range(5):
        wait_idle()
        s0, w0, t0 = sys_ticks(), {k: proc_ticks(v) for k, v in watched.items()}, time.time()
        p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = p.communicate()
        t1 = time.time(); s1, w1 = sys_ticks(), {k: proc_ticks(v) for k, v in watched.items()}
        if p.returncode != 0 and not (done and done()):
            raise SystemExit(f'{" ".join(cmd)} failed:\n{err}')
        sec = max(t1 - t0, 1e-9)
        cores = {k: (w1[k] - w0[k]) / HZ / sec for k in watched}
        others = (s1 - s0) / HZ / sec - sum(cores.values()) - cpu_of_children(t0, sec)
        machine = {'others_cores': max(others, 0.0), 'proxy_cores': cores['proxy'],
                   'replica_cores': cores['replica']}
        if args.no_idle_wait or others <= 0.15 or attempt == 4:
            return out, machine
        print(f'  (discarded a run of {cmd[0]}: other processes used {others:.2f} cores)', flush=True)
    return out, machine

_children_before = [0.0]
def cpu_of_children(t0, sec):
    """Cores used by the commands this script waited for, during their run."""
    t = os.times()
    used = t.children_user + t.children_system - _children_before[0]
    _children_before[0] = t.children_user + t.children_system
    return used / sec

def ours(target, conc, url=None, min_replicas=0):
    cmd = [driver, '--target', target, '--concurrency', str(conc), '--duration', str(args.duration),
           '--warmup', str(args.warmup), '--ttl', '60', '--json', '--server-bin', server_bin]
    if 'redis' in target:
        cmd += ['--redis-url', url or redis_url]
    if min_replicas:
        cmd += ['--min-replicas', str(min_replicas), '--min-replicas-timeout-ms', str(args.min_replicas_timeout_ms)]
    out, machine = measured(cmd)
    r = json.loads(out.strip().splitlines()[-1])
    return {
        'cycles_per_second': r['cycles_per_second'], 'p50_ms': r['latency_us']['p50'] / 1000,
        'p99_ms': r['latency_us']['p99'] / 1000, 'max_ms': r['latency_us']['max'] / 1000,
        'errors': r['errors'], 'client_cpu_us_per_cycle': r['client_cpu_us_per_cycle'],
        'server_cpu_us_per_cycle': r.get('server_cpu_us_per_cycle'),
        'redis_cpu_us_per_cycle': r.get('redis_cpu_us_per_cycle'), 'peak_rss_bytes': r.get('peak_rss_bytes'),
        **machine,
    }

def peer_run(store, conc, redis_port=None):
    out_file = tempfile.mktemp(suffix='.json')
    cmd = ['node', 'bench.mjs', '--stores', store, '--conc', str(conc), '--duration', str(args.duration),
           '--warmup', str(args.warmup), '--reps', '1', '--port', str(redis_port or port), '--no-idle-wait',
           '--out', out_file]
    # Through fault-proxy the peer's final QUIT can fail ("Connection is closed": the proxy
    # drops a delayed reply when the server closes first); its results are written before.
    _, machine = measured(cmd, cwd=peer, done=lambda: os.path.exists(out_file) and os.path.getsize(out_file) > 0)
    data = json.load(open(out_file)); os.unlink(out_file)
    run = data['runs'][0]
    cycles = run['cycles']
    return {
        'cycles_per_second': run['cyclesPerSec'], 'p50_ms': run['p50ms'], 'p99_ms': run['p99ms'],
        'max_ms': run['maxms'], 'errors': 0,
        'client_cpu_us_per_cycle': run['cpu']['node'] * run['seconds'] * 1e6 / cycles,
        'redis_cpu_us_per_cycle': run['cpu']['redis'] * run['seconds'] * 1e6 / cycles if store != 'memory' else None,
        **machine,
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
    out, machine = measured(cmd)
    m = re.search(r'([\d.]+) requests per second', out.replace('\r', '\n'))
    return {'requests_per_second': float(m.group(1)) if m else None, **machine}

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
    # across the emulated network: the same redis-server, through the delaying proxy
    ('net rust-redis c=1', lambda: ours('rust-redis', 1, proxy_url)),
    ('net peer redis c=1', lambda: peer_run('redis', 1, proxy_port)),
    ('net node-redis c=1', lambda: ours('node-redis', 1, proxy_url)),
    ('net rust-redis c=64', lambda: ours('rust-redis', 64, proxy_url)),
    ('net peer redis c=64', lambda: peer_run('redis', 64, proxy_port)),
    ('net node-redis c=64', lambda: ours('node-redis', 64, proxy_url)),
    # a primary with one replica, with and without min_replicas = 1
    ('replicated rust-redis c=1', lambda: ours('rust-redis', 1, pair_url)),
    ('replicated rust-redis min_replicas=1 c=1', lambda: ours('rust-redis', 1, pair_url, 1)),
    ('replicated peer redis c=1', lambda: peer_run('redis', 1, pair_port)),
    ('replicated rust-redis c=64', lambda: ours('rust-redis', 64, pair_url)),
    ('replicated rust-redis min_replicas=1 c=64', lambda: ours('rust-redis', 64, pair_url, 1)),
    ('replicated peer redis c=64', lambda: peer_run('redis', 64, pair_port)),
]
if args.only:
    keep = set(args.only.split(','))
    CONFIGS = [c for c in CONFIGS if c[0] in keep]


# ---------------------------------------------------------- round trips ----
class CountingProxy:
    """Forwards loopback connections to a redis-server and counts, over all of them, the
    commands clients send (RESP arrays; an inline command is one line), the round trips
    (a burst of requests on a connection after a reply on it, or as its first bytes) and the
    connections."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.lock = threading.Lock()
        self.counts = {'commands': 0, 'round_trips': 0, 'connections': 0}
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(('127.0.0.1', 0)); self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def snapshot(self):
        time.sleep(0.05)  # let the forwarding threads finish counting what already arrived
        with self.lock:
            return dict(self.counts)

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(('127.0.0.1', self.upstream))
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = {'last': 'reply', 'pending': b''}
            with self.lock:
                self.counts['connections'] += 1
            threading.Thread(target=self._pump, args=(client, server, conn, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, conn, False), daemon=True).start()

    def _pump(self, src, dst, conn, requests):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b''
            if not data:
                for sock in (src, dst):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            with self.lock:
                if requests:
                    if conn['last'] == 'reply':
                        self.counts['round_trips'] += 1
                    conn['last'] = 'request'
                    conn['pending'] += data
                    n, used = count_commands(conn['pending'])
                    conn['pending'] = conn['pending'][used:]
                    self.counts['commands'] += n
                else:
                    conn['last'] = 'reply'
            try:
                dst.sendall(data)
            except OSError:
                return

def count_commands(buf):
    """Complete commands at the front of buf, and the bytes they take."""
    n = pos = 0
    while pos < len(buf):
        eol = buf.find(b'\r\n', pos)
        if eol < 0:
            break
        if buf[pos:pos + 1] != b'*':
            n, pos = n + 1, eol + 2
            continue
        items, at = int(buf[pos + 1:eol]), eol + 2
        for _ in range(items):
            e = buf.find(b'\r\n', at)
            if e < 0:
                return n, pos
            at = e + 2 + int(buf[at + 1:e]) + 2
        if at > len(buf):
            break
        n, pos = n + 1, at
    return n, pos

KINDS = ['create', 'submit', 'reveal', 'reveal-wrong']

def count_round_trips(cmd, proxy, cwd=ROOT):
    """Runs a --round-trips / round-trips.mjs process and reads the proxy between its marks.
    Returns, per kind of batch, the commands and round trips per batch."""
    p = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    before, per = None, {}
    for line in p.stdout:
        word, _, kind = line.strip().partition(' ')
        if word == 'mark':
            before = proxy.snapshot()
        elif word == 'end':
            after = proxy.snapshot()
            per[kind] = {k: (after[k] - before[k]) / args.round_trip_batch for k in after}
        else:
            continue
        p.stdin.write('\n'); p.stdin.flush()
    p.stdin.close()
    if p.wait() != 0 or set(per) != set(KINDS):
        raise SystemExit(f'{" ".join(cmd)} failed (exit {p.returncode})')
    # Each batch runs the steps before it on a fresh session: the operation's own share is
    # the difference.
    cum = {k: per[k] for k in KINDS}
    ops = {
        'create': cum['create'],
        'submit': {k: cum['submit'][k] - cum['create'][k] for k in cum['create']},
        'reveal': {k: cum['reveal'][k] - cum['submit'][k] for k in cum['create']},
        'reveal-wrong': {k: cum['reveal-wrong'][k] - cum['submit'][k] for k in cum['create']},
        'cycle': cum['reveal'],
    }
    return ops

def round_trip_table():
    proxy, pair_proxy = CountingProxy(port), CountingProxy(pair_port)
    batch = str(args.round_trip_batch)
    rows = {
        'pci-vault, Rust API': lambda: count_round_trips(
            [driver, '--target', 'rust-redis', '--redis-url', f'redis://127.0.0.1:{proxy.port}',
             '--round-trips', batch, '--ttl', '60'], proxy),
        'pci-vault, Node binding': lambda: count_round_trips(
            ['node', 'bench/node/round-trips.mjs', '--impl', 'binding', '--store',
             f'redis://127.0.0.1:{proxy.port}', '--per-batch', batch], proxy),
        'pci-vault, Rust API, min_replicas = 1': lambda: count_round_trips(
            [driver, '--target', 'rust-redis', '--redis-url', f'redis://127.0.0.1:{pair_proxy.port}',
             '--round-trips', batch, '--ttl', '60', '--min-replicas', '1',
             '--min-replicas-timeout-ms', str(args.min_replicas_timeout_ms)], pair_proxy),
        'plain Node peer': lambda: count_round_trips(
            ['node', os.path.join(ROOT, 'bench', 'node', 'round-trips.mjs'), '--impl', 'peer', '--peer', peer,
             '--port', str(proxy.port), '--per-batch', batch], proxy),
    }
    return {name: run() for name, run in rows.items()}

results = {name: [] for name, _ in CONFIGS}
cpu_of_children(0, 1)  # start counting the children's CPU from here
run_started = time.time()
try:
    print('counting round trips per operation', flush=True)
    round_trips = round_trip_table()
    for name, ops in round_trips.items():
        print(f'  {name:40} ' + '  '.join(f"{k} {v['round_trips']:.2f} ({v['commands']:.2f} cmds)" for k, v in ops.items()), flush=True)
    cpu_of_children(0, 1)
    for rep in range(1, args.reps + 1):
        for name, run in CONFIGS:
            r = run()
            results[name].append(r)
            rate = r.get('cycles_per_second') or r.get('requests_per_second')
            print(f'rep {rep} {name:42} {rate:10.0f}/s  p50 {r.get("p50_ms", 0):.3f} ms  p99 {r.get("p99_ms", 0):.3f} ms'
                  f'  others {r["others_cores"]:.2f} proxy {r["proxy_cores"]:.2f} cores', flush=True)
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
run_minutes = (time.time() - run_started) / 60
json.dump({'results': results, 'round_trips': round_trips, 'minutes': run_minutes,
           'footprint': {'memory': footprint_mem, 'redis': footprint_redis}},
          open(args.json, 'w'), indent=2)

# ---------------------------------------------------------------- report ---
def fmt(v, digits=0):
    return '—' if v is None else (f'{v:,.{digits}f}')

cpu = open('/proc/cpuinfo').read()
model = re.search(r'model name\s*:\s*(.+)', cpu).group(1)
def run_row(name, label=None):
    return (f"| {label or name} | {fmt(med(name, 'cycles_per_second'))} | {fmt(med(name, 'p50_ms'), 3)} | "
            f"{fmt(med(name, 'p99_ms'), 3)} | {fmt(med(name, 'max_ms'), 1)} | "
            f"{fmt(med(name, 'client_cpu_us_per_cycle'), 1)} | {fmt(med(name, 'redis_cpu_us_per_cycle'), 1)} | "
            f"{fmt(med(name, 'proxy_cores'), 2)} | {fmt(med(name, 'replica_cores'), 2)} |")

names = [name for name, _ in CONFIGS]
rows = []
for name in names:
    if name.startswith(('redis-benchmark', 'net ', 'replicated ')):
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

net_rows = '\n'.join(run_row(n) for n in names if n.startswith('net '))
replicated_rows = '\n'.join(run_row(n) for n in names if n.startswith('replicated '))

def ratio_cell(ours_name, peer_name, key='cycles_per_second'):
    a, b = med(ours_name, key), med(peer_name, key)
    return '—' if a is None or not b else f'{a / b:.2f} ×'

headline = []
for setting, prefix, peer_prefix in [('loopback', '', 'peer redis'), ('emulated network', 'net ', 'net peer redis'),
                                     ('primary + replica', 'replicated ', 'replicated peer redis')]:
    for conc in (1, 64):
        peer_name = f'{peer_prefix} c={conc}'
        variants = [('Rust API', f'{prefix}rust-redis c={conc}')]
        if prefix == 'replicated ':
            variants.append(('Rust API, min_replicas = 1', f'{prefix}rust-redis min_replicas=1 c={conc}'))
        else:
            variants.append(('Node binding', f'{prefix}node-redis c={conc}'))
        for label, ours_name in variants:
            if ours_name not in results or peer_name not in results:
                continue
            headline.append(f"| {setting}, c={conc} | {label} | {fmt(med(ours_name, 'cycles_per_second'))} | "
                            f"{fmt(med(peer_name, 'cycles_per_second'))} | **{ratio_cell(ours_name, peer_name)}** | "
                            f"{fmt(med(ours_name, 'p50_ms'), 3)} / {fmt(med(peer_name, 'p50_ms'), 3)} |")

def rt(v):
    return '—' if v is None else (f'{v:.0f}' if abs(v - round(v)) < 0.02 else f'{v:.2f}')

rt_rows = []
for name, ops in round_trips.items():
    rt_rows.append(f'| {name} | ' + ' | '.join(f"{rt(ops[k]['round_trips'])} ({rt(ops[k]['commands'])})"
                                              for k in ['create', 'submit', 'reveal', 'reveal-wrong', 'cycle']) + ' |')
cycle_rts = round_trips['pci-vault, Rust API']['cycle']['round_trips']

def implied_round_trips(ours_name, loop_name):
    a, b = med(ours_name, 'p50_ms'), med(loop_name, 'p50_ms')
    return None if a is None or b is None else (a - b) / (2 * args.delay_us / 1000)

implied = ', '.join(f"{label} {fmt(implied_round_trips('net ' + n, n), 1)}"
                    for label, n in [('Rust API', 'rust-redis c=1'), ('Node binding', 'node-redis c=1'),
                                     ('peer', 'peer redis c=1')])
others = [r['others_cores'] for name in names for r in results[name]]
proxy_busy = [r['proxy_cores'] for name in names if name.startswith('net ') for r in results[name]]

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
node_redis_c1 = med('node-redis c=1', 'cycles_per_second')
peer_redis_c1 = med('peer redis c=1', 'cycles_per_second')
later_targets = [
    target_row('store round trips per full cycle',
               rt(round_trips['plain Node peer']['cycle']['round_trips']), '≤ 5', rt(cycle_rts), at_most(cycle_rts, 5.02)),
    target_row('full cycles/s, Redis, c=1, Node binding', fmt(peer_redis_c1), '≥ the peer',
               f"{fmt(node_redis_c1)} ({fmt(ratio(node_redis_c1, peer_redis_c1), 2)} ×)",
               at_least(ratio(node_redis_c1, peer_redis_c1), 1)),
    target_row('p50 per cycle, Redis, c=1, Node binding', fmt(med('peer redis c=1', 'p50_ms'), 3) + ' ms',
               '≤ the peer', fmt(med('node-redis c=1', 'p50_ms'), 3) + ' ms',
               None if med('node-redis c=1', 'p50_ms') is None else med('node-redis c=1', 'p50_ms') <= (med('peer redis c=1', 'p50_ms') or 0)),
    target_row('full cycles/s, Redis, c=64, Node binding', fmt(peer_redis_c64), '≥ 2 × the peer',
               f"{fmt(node_redis_c64)} ({fmt(ratio(node_redis_c64, peer_redis_c64), 2)} ×)",
               at_least(ratio(node_redis_c64, peer_redis_c64), 2)),
    target_row('client CPU per cycle, Redis, c=1, Node binding ÷ Rust API', '—', '≤ 1.5 ×',
               f"{fmt(med('node-redis c=1', 'client_cpu_us_per_cycle'))} / {fmt(med('rust-redis c=1', 'client_cpu_us_per_cycle'))} µs "
               f"({fmt(ratio(med('node-redis c=1', 'client_cpu_us_per_cycle'), med('rust-redis c=1', 'client_cpu_us_per_cycle')), 2)} ×)",
               at_most(ratio(med('node-redis c=1', 'client_cpu_us_per_cycle'), med('rust-redis c=1', 'client_cpu_us_per_cycle')), 1.5)),
    target_row('client CPU per cycle, Redis, c=64, Node binding ÷ Rust API', '—', 'report it',
               f"{fmt(med('node-redis c=64', 'client_cpu_us_per_cycle'))} / {fmt(med('rust-redis c=64', 'client_cpu_us_per_cycle'))} µs "
               f"({fmt(ratio(med('node-redis c=64', 'client_cpu_us_per_cycle'), med('rust-redis c=64', 'client_cpu_us_per_cycle')), 2)} ×)",
               None),
]

doc = open(args.out).read() if os.path.exists(args.out) else ''
idle_note = ('each run started without waiting for an idle machine (`--no-idle-wait`: other engineers were '
             'compiling and fuzzing on the same two cores, so the wait would not have ended)' if args.no_idle_wait
             else 'each run waited for an idle machine')
generated = f"""<!-- generated by bench/compare.py: do not edit between these markers -->
Measured {time.strftime('%Y-%m-%d')} on {model}, {os.cpu_count()} cores, Linux {platform.release()},
redis-server {redis_version} on loopback (no persistence), Node.js {subprocess.run(['node', '--version'], capture_output=True, text=True).stdout.strip()};
{args.reps} interleaved repetitions of {args.duration:g} s after {args.warmup:g} s of warm-up, median shown;
{idle_note}. Other processes used {fmt(statistics.median(others) if others else None, 2)} cores in the median run
(at most {fmt(max(others) if others else None, 2)}) of the machine's {os.cpu_count()}; the whole run took {run_minutes:.0f} minutes.
A cycle is create → submit → reveal with the revealed values checked. CPU columns are CPU
time per cycle: the client process (for the Rust and Node targets this is the whole vault),
the HTTP server, and redis-server.

Headline, pci-vault against the peer in the same run (Redis; cycles/s, ratio, p50 ms ours / peer's):

| setting | pci-vault | pci-vault cycles/s | peer cycles/s | ratio | p50 ms |
|---|---|---:|---:|---:|---:|
{chr(10).join(headline)}

Store round trips per operation, counted at concurrency 1 over {args.round_trip_batch} operations of each kind
by a proxy between the client and redis-server (commands sent in brackets; a round trip is a
burst of requests after a reply). "Reveal, wrong PIN" is a first wrong PIN, with attempts left:

| client | create | submit | reveal, right PIN | reveal, wrong PIN | full cycle |
|---|---:|---:|---:|---:|---:|
{chr(10).join(rt_rows)}

Targets, against the peer measured in the same run:

| figure | peer | target | pci-vault | |
|---|---:|---|---:|---|
{chr(10).join(targets + later_targets)}

All runs:

| configuration | cycles/s | p50 ms | p99 ms | max ms | client CPU µs/cycle | server CPU µs/cycle | redis CPU µs/cycle |
|---|---:|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

redis-benchmark EVALSHA (a compare-and-set script like ours on a 400-byte value), the rate
Redis itself allows: c=1 {fmt(med('redis-benchmark evalsha c=1', 'requests_per_second'))} requests/s,
c=64 {fmt(med('redis-benchmark evalsha c=64', 'requests_per_second'))} requests/s.

Across an emulated network: the same redis-server behind one `fault-proxy` that adds
{args.delay_us} µs to every chunk each way (about {2 * args.delay_us / 1000:g} ms per round trip), shared by
pci-vault and the peer. The proxy waits out sub-millisecond delays by spinning: it used
{fmt(statistics.median(proxy_busy) if proxy_busy else None, 2)} cores in the median run, taken from the same two cores
as the client and redis-server. The p50 added at c=1, divided by one round trip's delay, gives
the round trips per cycle the latency shows: {implied}.

| configuration | cycles/s | p50 ms | p99 ms | max ms | client CPU µs/cycle | redis CPU µs/cycle | proxy cores | replica cores |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
{net_rows}

A primary with one replica (a second redis-server pair on loopback, `--replicaof`), the Rust
API with and without `min_replicas = 1` (WAIT 1 {args.min_replicas_timeout_ms} pipelined with each write) and the peer
(which has no such option; neither have the Node binding nor the store string):

| configuration | cycles/s | p50 ms | p99 ms | max ms | client CPU µs/cycle | redis CPU µs/cycle | proxy cores | replica cores |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
{replicated_rows}

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
