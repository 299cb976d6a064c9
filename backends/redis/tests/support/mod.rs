//! Real `redis-server` processes for the tests, on free loopback ports.
//!
//! Each server runs under a small `sh` supervisor that owns it: the supervisor starts the
//! server, signals it by its PID when the test asks (kill, freeze, thaw, restart), and, when
//! its stdin closes, kills the server by PID and removes its directory. The test holds the
//! supervisor's stdin, so the server stops when the test drops it — and also when the test
//! binary ends in any way (a panic, `SIGKILL`, a server kept in a `static` for the whole
//! binary): the kernel closes the pipe, and no server outlives its test binary.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers: each test binary uses part of them, and a failed setup is a failed test"
)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The supervisor: `sh -c SUPERVISOR sh DIR redis-server ARGS...`. It prints one line per
/// command it completes (`started PID`, `killed`, `frozen`, `thawed`), and stops the server
/// and removes DIR at end of input.
const SUPERVISOR: &str = r#"
dir=$1; shift
start() { "$@" >>"$dir/redis.log" 2>&1 </dev/null & pid=$!; echo "started $pid"; }
start "$@"
while read -r command; do
  case $command in
    kill) kill -KILL "$pid"; wait "$pid"; pid=""; echo killed ;;
    freeze) kill -STOP "$pid"; echo frozen ;;
    thaw) kill -CONT "$pid"; echo thawed ;;
    restart) [ -z "$pid" ] && start "$@" ;;
  esac
done 2>/dev/null
# $pid is empty once the server was killed and reaped: its number may belong to another
# process by now.
if [ -n "$pid" ]; then kill -KILL "$pid"; wait "$pid"; fi 2>/dev/null
rm -rf -- "$dir"
"#;

/// A TCP port on 127.0.0.1 that nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where `redis-server` is. A missing server fails the test (in CI and elsewhere alike):
/// the test command installs it.
pub fn redis_server_binary() -> PathBuf {
    which("redis-server").unwrap_or_else(|| {
        panic!(
            "redis-server is not installed; scripts/test installs it (apt-get install redis-server)"
        )
    })
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A `redis-server` process of this test, stopped (by PID, through its supervisor) on drop.
pub struct RedisServer {
    supervisor: Child,
    commands: Option<ChildStdin>,
    replies: BufReader<ChildStdout>,
    /// The port it listens on (the TLS port for a TLS server).
    pub port: u16,
    /// Its working directory (RDB/AOF files, `nodes.conf`, `redis.log`).
    pub dir: PathBuf,
    /// How to reach it over TLS, for a TLS-only server.
    pub tls: Option<redis::TlsCertificates>,
    /// The PID of the running `redis-server`.
    pub pid: u32,
}

/// The arguments of a server with no persistence and `noeviction`, as the README
/// recommends; `extra` comes last, so it overrides them.
fn base_args(dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--maxmemory-policy",
        "noeviction",
        "--daemonize",
        "no",
        "--dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(dir.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn new_dir() -> PathBuf {
    tempfile::Builder::new()
        .prefix("pci-vault-redis-")
        .tempdir()
        .unwrap()
        .keep()
}

impl RedisServer {
    /// A single node with no persistence and `noeviction`, plus `extra` arguments.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_on(free_port(), extra)
    }

    /// Like [`start`](Self::start), on `port`.
    pub fn start_on(port: u16, extra: &[&str]) -> Self {
        let dir = new_dir();
        let mut args = vec!["--port".to_owned(), port.to_string()];
        args.extend(base_args(&dir, extra));
        Self::spawn(port, dir, None, args)
    }

    /// A TLS-only node with `certs`' server certificate; clients need a certificate from
    /// `certs`' CA when `require_client_cert` is set.
    pub fn start_tls(certs: &TlsFiles, require_client_cert: bool, extra: &[&str]) -> Self {
        let dir = new_dir();
        let port = free_port();
        let mut args: Vec<String> = vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            certs.server_cert.display().to_string(),
            "--tls-key-file".into(),
            certs.server_key.display().to_string(),
            "--tls-ca-cert-file".into(),
            certs.ca.display().to_string(),
            "--tls-auth-clients".into(),
            if require_client_cert { "yes" } else { "no" }.into(),
        ];
        args.extend(base_args(&dir, extra));
        let read = |path: &Path| std::fs::read(path).unwrap();
        let client = redis::TlsCertificates {
            client_tls: require_client_cert.then(|| redis::ClientTlsConfig {
                client_cert: read(&certs.client_cert),
                client_key: read(&certs.client_key),
            }),
            root_cert: Some(read(&certs.ca)),
        };
        Self::spawn(port, dir, Some(client), args)
    }

    /// A Redis Sentinel (`redis-server CONFIG --sentinel`) that monitors the primary at
    /// `127.0.0.1:primary_port` as `master_name` with `quorum`, declaring it down after
    /// 1 s without an answer. Sentinel rewrites its configuration file, so each has its own.
    pub fn start_sentinel(primary_port: u16, master_name: &str, quorum: u32) -> Self {
        let dir = new_dir();
        let port = free_port();
        let config = dir.join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\n\
                 sentinel monitor {master_name} 127.0.0.1 {primary_port} {quorum}\n\
                 sentinel down-after-milliseconds {master_name} 1000\n\
                 sentinel failover-timeout {master_name} 5000\n\
                 sentinel parallel-syncs {master_name} 1\n",
                dir = dir.display()
            ),
        )
        .unwrap();
        let args = vec![config.display().to_string(), "--sentinel".to_owned()];
        Self::spawn(port, dir, None, args)
    }

    fn spawn(
        port: u16,
        dir: PathBuf,
        tls: Option<redis::TlsCertificates>,
        args: Vec<String>,
    ) -> Self {
        let mut supervisor = Command::new("sh")
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("sh")
            .arg(&dir)
            .arg(redis_server_binary())
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let commands = supervisor.stdin.take();
        let replies = BufReader::new(supervisor.stdout.take().unwrap());
        let mut server = RedisServer {
            supervisor,
            commands,
            replies,
            port,
            dir,
            tls,
            pid: 0,
        };
        server.pid = server.read_started();
        server.wait_ready();
        server
    }

    fn reply(&mut self) -> String {
        let mut line = String::new();
        self.replies.read_line(&mut line).unwrap();
        line.trim().to_owned()
    }

    fn read_started(&mut self) -> u32 {
        let line = self.reply();
        line.strip_prefix("started ")
            .and_then(|pid| pid.parse().ok())
            .unwrap_or_else(|| panic!("the supervisor answered {line:?}"))
    }

    fn command(&mut self, command: &str, ack: &str) {
        let stdin = self.commands.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
        assert_eq!(self.reply(), ack);
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
        panic!("redis-server did not start on port {}:\n{log}", self.port);
    }

    /// `redis://127.0.0.1:PORT`, or `rediss://` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (`SIGKILL`), as a crash would.
    pub fn kill(&mut self) {
        self.command("kill", "killed");
    }

    /// Stops the server (`SIGSTOP`): it keeps its connections and accepts new ones, but
    /// answers nothing, as a hung server or a network partition would.
    pub fn freeze(&mut self) {
        self.command("freeze", "frozen");
    }

    /// Lets a frozen server run again (`SIGCONT`).
    pub fn thaw(&mut self) {
        self.command("thaw", "thawed");
    }

    /// Starts the server again after [`kill`](Self::kill), with the same port, arguments
    /// and directory (so it reloads an append-only file if it wrote one).
    pub fn restart(&mut self) {
        let stdin = self.commands.as_mut().unwrap();
        writeln!(stdin, "restart").unwrap();
        stdin.flush().unwrap();
        self.pid = self.read_started();
        self.wait_ready();
    }

    /// An admin connection (as the default user, which has no password).
    pub async fn admin(&self) -> redis::aio::MultiplexedConnection {
        let client = match &self.tls {
            Some(certs) => redis::Client::build_with_tls(self.url(), certs.clone()),
            None => redis::Client::open(self.url()),
        };
        client
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // End of input: the supervisor kills the server by PID and removes its directory.
        drop(self.commands.take());
        let _ = self.supervisor.wait();
    }
}

/// Sets `maxmemory` to `headroom` bytes above what the server uses now (`noeviction` is
/// already set): writes fail with `OOM` once that much more is stored.
pub async fn limit_memory(conn: &mut redis::aio::MultiplexedConnection, headroom: u64) {
    let used = used_memory(conn).await;
    let limit = (used + headroom).to_string();
    let _: () = run(conn, &["CONFIG", "SET", "maxmemory", &limit]).await;
}

/// `used_memory` from `INFO memory`.
pub async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = run(conn, &["INFO", "memory"]).await;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// Runs a command on an admin connection and returns its reply.
pub async fn run<T: redis::FromRedisValue>(
    conn: &mut redis::aio::MultiplexedConnection,
    args: &[&str],
) -> T {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

/// A Redis Cluster of real `redis-server` nodes on loopback, each with its own directory
/// and ports, stopped with its nodes.
pub struct RedisCluster {
    /// The nodes, masters only.
    pub nodes: Vec<RedisServer>,
}

fn cluster_node(extra: &[&str]) -> RedisServer {
    let bus_port = free_port().to_string();
    let mut args = vec![
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-port",
        bus_port.as_str(),
        "--cluster-node-timeout",
        "5000",
    ];
    args.extend_from_slice(extra);
    RedisServer::start(&args)
}

impl RedisCluster {
    /// Three masters (no replicas), formed with `redis-cli --cluster create`; node `i` gets
    /// the extra arguments `extra[i]`, if any.
    pub fn start(extra: &[&[&str]]) -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|i| cluster_node(extra.get(i).copied().unwrap_or_default()))
            .collect();
        let redis_cli = which("redis-cli").unwrap_or_else(|| {
            panic!(
                "redis-cli is not installed; scripts/test installs it (apt-get install redis-tools)"
            )
        });
        let output = Command::new(redis_cli)
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_ok();
        cluster
    }

    /// One master holding every slot: the cheapest real cluster, for tests that need one
    /// of their own (e.g. to stop it).
    pub fn single_node(extra: &[&str]) -> Self {
        let node = cluster_node(extra);
        let url = node.url();
        let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
        let _: () = redis::cmd("CLUSTER")
            .arg("ADDSLOTSRANGE")
            .arg(0)
            .arg(16383)
            .query(&mut conn)
            .unwrap();
        let cluster = RedisCluster { nodes: vec![node] };
        cluster.wait_ok();
        cluster
    }

    /// The 3-master cluster every test of this binary shares. Its nodes stop when the test
    /// binary ends (see the module documentation).
    pub fn shared() -> &'static RedisCluster {
        static SHARED: OnceLock<RedisCluster> = OnceLock::new();
        SHARED.get_or_init(|| RedisCluster::start(&[]))
    }

    fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &self.nodes {
            let mut conn = redis::Client::open(node.url())
                .unwrap()
                .get_connection()
                .unwrap();
            loop {
                let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut conn).unwrap();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not form: {info}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Every node's URL, to use as seeds.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

/// A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate, all
/// signed by that CA; and a second CA that signs nothing of this server's. PEM files in a
/// directory removed on drop.
pub struct TlsFiles {
    _dir: tempfile::TempDir,
    /// The CA that signs the server and client certificates.
    pub ca: PathBuf,
    /// A CA that signs nothing here.
    pub other_ca: PathBuf,
    /// The server's certificate and key.
    pub server_cert: PathBuf,
    /// The server's key.
    pub server_key: PathBuf,
    /// A client certificate signed by [`ca`](Self::ca).
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
    /// A client certificate signed by [`other_ca`](Self::other_ca).
    pub stranger_cert: PathBuf,
    /// Its key.
    pub stranger_key: PathBuf,
}

fn new_ca(name: &str) -> (rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert, rcgen::Issuer::new(params, key))
}

fn leaf(
    issuer: &rcgen::Issuer<'static, rcgen::KeyPair>,
    names: &[&str],
    usage: rcgen::ExtendedKeyUsagePurpose,
) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, names[0]);
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl TlsFiles {
    /// Generates fresh certificates (ECDSA P-256) with `rcgen`.
    pub fn generate() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("pci-vault-redis-tls-")
            .tempdir()
            .unwrap();
        let write = |name: &str, pem: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        let (ca_cert, ca) = new_ca("pci-vault test CA");
        let (other_cert, other) = new_ca("pci-vault unrelated CA");
        let (server_cert, server_key) = leaf(
            &ca,
            &["127.0.0.1", "localhost"],
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) = leaf(
            &ca,
            &["pci-vault-client"],
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        );
        let (stranger_cert, stranger_key) = leaf(
            &other,
            &["pci-vault-stranger"],
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        );
        TlsFiles {
            ca: write("ca.pem", &ca_cert.pem()),
            other_ca: write("other-ca.pem", &other_cert.pem()),
            server_cert: write("server.pem", &server_cert),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client.key", &client_key),
            stranger_cert: write("stranger.pem", &stranger_cert),
            stranger_key: write("stranger.key", &stranger_key),
            _dir: dir,
        }
    }
}

/// One key as Redis holds it: its name, type, encoding, remaining TTL, value (for a
/// string) and `DUMP` serialization.
#[derive(Debug)]
pub struct StoredKey {
    pub name: Vec<u8>,
    pub kind: String,
    pub encoding: String,
    pub pttl_ms: i64,
    pub value: Option<Vec<u8>>,
    pub dump: Vec<u8>,
}

/// Every key of the node at `url`, found with `SCAN`, with its value and encodings.
pub async fn scan_every_key(conn: &mut redis::aio::MultiplexedConnection) -> Vec<StoredKey> {
    let mut cursor: u64 = 0;
    let mut names: Vec<Vec<u8>> = Vec::new();
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap();
        names.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    names.sort();
    names.dedup();
    let mut keys = Vec::new();
    for name in names {
        let kind: String = redis::cmd("TYPE")
            .arg(&name)
            .query_async(conn)
            .await
            .unwrap();
        if kind == "none" {
            continue; // expired between SCAN and now
        }
        let encoding: Option<String> = redis::cmd("OBJECT")
            .arg("ENCODING")
            .arg(&name)
            .query_async(conn)
            .await
            .unwrap();
        let pttl_ms: i64 = redis::cmd("PTTL")
            .arg(&name)
            .query_async(conn)
            .await
            .unwrap();
        let value: Option<Vec<u8>> = if kind == "string" {
            redis::cmd("GET")
                .arg(&name)
                .query_async(conn)
                .await
                .unwrap()
        } else {
            None
        };
        let dump: Option<Vec<u8>> = redis::cmd("DUMP")
            .arg(&name)
            .query_async(conn)
            .await
            .unwrap();
        keys.push(StoredKey {
            name,
            kind,
            encoding: encoding.unwrap_or_default(),
            pttl_ms,
            value,
            dump: dump.unwrap_or_default(),
        });
    }
    keys
}

/// A vault on `store` with the conformance suite's keyring (the same key material in every
/// test and every process).
pub fn vault_on(store: pci_vault_redis::RedisStore) -> pci_vault::Vault {
    pci_vault::Vault::builder(
        std::sync::Arc::new(store),
        std::sync::Arc::new(pci_vault::conformance::test_keyring()),
    )
    .build()
    .unwrap()
}

/// create → submit → reveal through `vault`, checking the revealed card.
pub async fn round_trip(vault: &pci_vault::Vault) {
    use pci_vault::ExposeSecret as _;
    let ticket = vault
        .create_session(&pci_vault::SessionOptions::default())
        .await
        .unwrap();
    let receipt = vault
        .submit(&ticket.id, &pci_vault::conformance::visa_form())
        .await
        .unwrap();
    let form = vault.reveal(&ticket.id, &receipt.pin).await.unwrap();
    assert_eq!(
        form.get("card_number").unwrap().expose_secret(),
        "4242424242424242"
    );
}

/// The ACL rules the README recommends for the vault's user: the line in its
/// "Recommended Redis configuration" block that starts with `user vault`, without the user
/// name and `on`/password parts. The test reads the README so the documented rules are the
/// tested ones.
pub fn readme_acl_rules() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let line = readme
        .lines()
        .find(|l| l.starts_with("user vault on "))
        .expect("the README's recommended configuration has a `user vault on ...` line");
    let rules = line.split('#').next().unwrap_or_default();
    rules
        .split_whitespace()
        .skip(3) // user vault on
        .filter(|rule| !rule.starts_with('>'))
        .map(str::to_owned)
        .collect()
}

/// Creates (or resets) ACL user `name` with password `password` and `rules`.
pub async fn acl_user(
    conn: &mut redis::aio::MultiplexedConnection,
    name: &str,
    password: &str,
    rules: &[String],
) {
    let mut cmd = redis::cmd("ACL");
    cmd.arg("SETUSER")
        .arg(name)
        .arg("reset")
        .arg("on")
        .arg(format!(">{password}"));
    for rule in rules {
        cmd.arg(rule);
    }
    let _: () = cmd
        .query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("ACL SETUSER {name} {rules:?} failed: {e}"));
}

/// An admin connection as the default user, with its password.
pub async fn admin_with_password(
    server: &RedisServer,
    password: &str,
) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://:{password}@127.0.0.1:{}", server.port))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}
