//! One `redis-server` process of a test, under a small `sh` supervisor that owns it.
//!
//! The supervisor starts the server, signals it by its PID when the test asks (stop, kill,
//! freeze, thaw, restart), and, when its stdin closes, kills the server by PID and removes
//! its directory. The test holds the supervisor's stdin, so the server stops when the test
//! drops its [`RedisServer`] — and also when the test binary ends in any way (a panic,
//! `SIGKILL`, a server kept in a `static` for the whole binary): the kernel closes the
//! pipe, and no server outlives its test binary.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::tls::TlsFiles;

/// The supervisor: `sh -c SUPERVISOR sh DIR redis-server ARGS...`. It prints one line per
/// command it completes (`started PID`, `stopped`, `killed`, `frozen`, `thawed`,
/// `running`), and stops the server and removes DIR at end of input.
const SUPERVISOR: &str = r#"
dir=$1; shift
start() { "$@" >>"$dir/redis.log" 2>&1 </dev/null & pid=$!; echo "started $pid"; }
start "$@"
while read -r command; do
  case $command in
    stop) kill -CONT "$pid"; kill -TERM "$pid"; wait "$pid"; pid=""; echo stopped ;;
    kill) kill -KILL "$pid"; wait "$pid"; pid=""; echo killed ;;
    freeze) kill -STOP "$pid"; echo frozen ;;
    thaw) kill -CONT "$pid"; echo thawed ;;
    restart) if [ -z "$pid" ]; then start "$@"; else echo running; fi ;;
  esac
done 2>/dev/null
# $pid is empty once the server was stopped and reaped: its number may belong to another
# process by now.
if [ -n "$pid" ]; then kill -KILL "$pid"; wait "$pid"; fi 2>/dev/null
rm -rf -- "$dir"
"#;

/// How long a server may take to accept connections after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The file every test launcher of the repository reads its server arguments from.
const FLAGS_JSON: &str = include_str!("../../redis-flags.json");

/// The arguments every launcher of the repository (Rust, Node, Python, shell) starts
/// `redis-server` with, read from `testkit/redis-flags.json`: loopback only, no
/// persistence, `noeviction`, in the foreground.
pub fn shared_flags() -> &'static [String] {
    static FLAGS: OnceLock<Vec<String>> = OnceLock::new();
    FLAGS.get_or_init(|| {
        let json: serde_json::Value = serde_json::from_str(FLAGS_JSON).unwrap();
        json["args"]
            .as_array()
            .expect("redis-flags.json has an `args` array")
            .iter()
            .map(|a| a.as_str().expect("every argument is a string").to_owned())
            .collect()
    })
}

/// A TCP port on 127.0.0.1 that nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where `name` is on the `PATH`. A missing Redis program fails the test (in CI and
/// elsewhere alike): the test command installs it.
pub(crate) fn program(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is not installed; scripts/test installs it (apt-get install {package})")
        })
}

/// Where `redis-server` is on the `PATH`; a missing server fails the test (the test
/// command installs it).
pub fn redis_server_binary() -> PathBuf {
    program("redis-server", "redis-server")
}

fn new_dir() -> PathBuf {
    tempfile::Builder::new()
        .prefix("pci-vault-redis-")
        .tempdir()
        .unwrap()
        .keep()
}

/// `--port PORT`, the shared flags, `--dir DIR`, then `extra` (which override them).
fn node_args(port: u16, dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--port".to_owned(), port.to_string()];
    args.extend(shared_flags().iter().cloned());
    args.extend(["--dir".to_owned(), dir.display().to_string()]);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

/// A `redis-server` process of this test (a data node or a sentinel), on a free loopback
/// port in a directory of its own, stopped (by PID, through its supervisor) on drop.
pub struct RedisServer {
    supervisor: Child,
    commands: Option<ChildStdin>,
    replies: BufReader<ChildStdout>,
    /// The port it listens on (the TLS port for a TLS server).
    pub port: u16,
    /// Its working directory (`nodes.conf`, `sentinel.conf`, `redis.log`), removed on drop.
    pub dir: PathBuf,
    /// How to reach it over TLS, for a TLS-only server.
    pub tls: Option<redis::TlsCertificates>,
    /// The PID of the running `redis-server`, or `None` after [`stop`](Self::stop) or
    /// [`kill`](Self::kill).
    pub pid: Option<u32>,
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("dir", &self.dir)
            .field("tls", &self.tls.is_some())
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl RedisServer {
    /// A single node with the [shared flags](shared_flags), plus `extra` arguments.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_on(free_port(), extra)
    }

    /// Like [`start`](Self::start), on `port`.
    pub fn start_on(port: u16, extra: &[&str]) -> Self {
        let dir = new_dir();
        let args = node_args(port, &dir, extra);
        Self::spawn(port, dir, None, args)
    }

    /// A replica of `primary` (`--replicaof`), plus `extra` arguments. It accepts
    /// connections at once; [`wait_in_sync`](Self::wait_in_sync) waits for its first full
    /// synchronisation.
    pub fn start_replica_of(primary: &RedisServer, extra: &[&str]) -> Self {
        let primary_port = primary.port.to_string();
        let mut args = vec!["--replicaof", "127.0.0.1", primary_port.as_str()];
        args.extend_from_slice(extra);
        Self::start(&args)
    }

    /// A TLS-only node with `certs`' server certificate; clients need a certificate from
    /// `certs`' CA when `require_client_cert` is set (mutual TLS).
    pub fn start_tls(certs: &TlsFiles, require_client_cert: bool, extra: &[&str]) -> Self {
        let dir = new_dir();
        let port = free_port();
        let path = |p: &Path| p.display().to_string();
        let mut tls_args = vec![
            "--tls-port".to_owned(),
            port.to_string(),
            "--tls-cert-file".to_owned(),
            path(&certs.server_cert),
            "--tls-key-file".to_owned(),
            path(&certs.server_key),
            "--tls-ca-cert-file".to_owned(),
            path(&certs.ca),
            "--tls-auth-clients".to_owned(),
            if require_client_cert { "yes" } else { "no" }.to_owned(),
        ];
        tls_args.extend(extra.iter().map(|s| (*s).to_owned()));
        let tls_args: Vec<&str> = tls_args.iter().map(String::as_str).collect();
        let args = node_args(0, &dir, &tls_args);
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

    /// A sentinel (`redis-server CONFIG --sentinel`) on a free port, whose configuration
    /// file (`sentinel.conf` in its directory, which the sentinel rewrites) starts with
    /// `config`.
    pub(crate) fn start_sentinel(config: &str) -> Self {
        let dir = new_dir();
        let port = free_port();
        let conf = dir.join("sentinel.conf");
        std::fs::write(&conf, config).unwrap();
        let mut args = vec![conf.display().to_string(), "--sentinel".to_owned()];
        args.extend(node_args(port, &dir, &[]));
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
            pid: None,
        };
        server.pid = Some(server.read_started());
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

    fn send(&mut self, command: &str) {
        let stdin = self.commands.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
    }

    fn command(&mut self, command: &str, ack: &str) {
        assert!(self.pid.is_some(), "{command}: the server is not running");
        self.send(command);
        assert_eq!(self.reply(), ack);
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(self.addr()).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "redis-server did not start on port {}:\n{}",
            self.port,
            self.log()
        );
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
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

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    /// Stops the server cleanly (`SIGTERM`, thawing it first if it is frozen) and waits
    /// for it to exit.
    pub fn stop(&mut self) {
        self.command("stop", "stopped");
        self.pid = None;
    }

    /// Kills the server at once (`SIGKILL`), as a crash would.
    pub fn kill(&mut self) {
        self.command("kill", "killed");
        self.pid = None;
    }

    /// Suspends the server (`SIGSTOP`): it keeps its connections and the kernel still
    /// accepts new ones, but it answers nothing, as a hung server or a network partition
    /// would.
    pub fn freeze(&mut self) {
        self.command("freeze", "frozen");
    }

    /// Lets a frozen server run again (`SIGCONT`).
    pub fn thaw(&mut self) {
        self.command("thaw", "thawed");
    }

    /// Starts the server again after [`stop`](Self::stop) or [`kill`](Self::kill), with
    /// the same port, arguments and directory. With no persistence it starts empty; a
    /// replica started with `--replicaof` synchronises again.
    pub fn restart(&mut self) {
        assert!(self.pid.is_none(), "restart: the server is still running");
        self.send("restart");
        self.pid = Some(self.read_started());
        self.wait_ready();
    }

    /// A client for this server (with its TLS certificates, if any; TLS uses rustls with
    /// the *ring* provider, installed as the process default if none is).
    pub fn client(&self) -> redis::Client {
        if self.tls.is_some() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        match &self.tls {
            Some(certs) => redis::Client::build_with_tls(self.url(), certs.clone()),
            None => redis::Client::open(self.url()),
        }
        .unwrap()
    }

    /// An async admin connection (as the default user, which has no password).
    pub async fn admin(&self) -> redis::aio::MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Runs one command on a fresh blocking connection and returns its reply; panics on
    /// an error reply or after 10 s without one. Usable from sync and async tests alike.
    pub fn query<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut conn = self
            .client()
            .get_connection_with_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url()));
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        command(args)
            .query(&mut conn)
            .unwrap_or_else(|e| panic!("{args:?} on port {} failed: {e}", self.port))
    }

    /// The server's role as `ROLE` names it: `master`, `slave` or `sentinel`.
    pub fn role(&self) -> String {
        let role: Vec<redis::Value> = self.query(&["ROLE"]);
        match role.first() {
            Some(redis::Value::BulkString(name)) => String::from_utf8_lossy(name).into_owned(),
            Some(redis::Value::SimpleString(name)) => name.clone(),
            other => panic!("unexpected ROLE reply {other:?}"),
        }
    }

    /// Makes this replica a primary (`REPLICAOF NO ONE`), as an operator or a sentinel
    /// promoting it would. It keeps whatever it had received from its old primary.
    pub fn promote(&self) {
        let _: () = self.query(&["REPLICAOF", "NO", "ONE"]);
    }

    /// Makes this node a replica of `primary` (`REPLICAOF 127.0.0.1 PORT`).
    pub fn replicate(&self, primary: &RedisServer) {
        let port = primary.port.to_string();
        let _: () = self.query(&["REPLICAOF", "127.0.0.1", &port]);
    }

    /// Waits (up to 20 s) until this replica's link to its primary is up and it has
    /// applied everything the primary had sent when this call started.
    pub fn wait_in_sync(&self, primary: &RedisServer) {
        let target = info_field(
            &primary.query::<String>(&["INFO", "replication"]),
            "master_repl_offset",
        )
        .unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let info: String = self.query(&["INFO", "replication"]);
            let up = info_text(&info, "master_link_status") == Some("up");
            let applied = info_field(&info, "slave_repl_offset").unwrap_or(0);
            if up && applied >= target {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the replica on port {} did not catch up with offset {target}:\n{info}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // End of input: the supervisor kills the server by PID and removes its directory.
        drop(self.commands.take());
        let _ = self.supervisor.wait();
    }
}

/// `args` as a command (`args[0]` is the command's name).
pub(crate) fn command(args: &[&str]) -> redis::Cmd {
    let (name, rest) = args.split_first().expect("a command has a name");
    let mut cmd = redis::cmd(name);
    for arg in rest {
        cmd.arg(*arg);
    }
    cmd
}

/// The text of `field` in an `INFO` reply (`field:value` lines).
pub(crate) fn info_text<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// The number in `field` of an `INFO` reply.
pub(crate) fn info_field(info: &str, field: &str) -> Option<i64> {
    info_text(info, field).and_then(|v| v.parse().ok())
}
