//! Dev-only helpers for wfl's tests: a real `nats-server` per test, free ports and temp dirs.
//!
//! Owns: starting, killing and restarting a private JetStream-enabled `nats-server` process
//! bound to 127.0.0.1 on a free port, with its own store directory; and the same for a
//! JetStream cluster of such processes ([`NatsCluster`]).
//!
//! Must not: be a dependency of any production crate, skip a test when the server binary is
//! missing (it panics with install instructions instead), or talk to anything but loopback.
//!
//! Panicking is this crate's way to fail a test: every public function documents its panics.

pub mod cluster;
pub mod decide;
pub mod scenario;

pub use cluster::NatsCluster;

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long [`NatsServer::start`] and [`NatsServer::restart`] wait for the port to accept.
const READY_DEADLINE: Duration = Duration::from_secs(10);
/// Pause between two readiness probes.
const READY_POLL: Duration = Duration::from_millis(20);
/// Fallback location of Debian's `nats-server` package.
const DEBIAN_BIN: &str = "/usr/sbin/nats-server";

/// A private `nats-server` process with JetStream (file storage) for one test.
///
/// The process is killed when the value is dropped; the store directory is deleted with it.
pub struct NatsServer {
    bin: PathBuf,
    port: u16,
    /// Root temp dir: holds `jetstream/` (the store) and `nats-server.log`.
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Configuration file passed with `-c` (its listen address, port and store dir are
    /// overridden by the command line), with the environment its `$VARIABLES` read.
    config: Option<(PathBuf, Vec<(String, String)>)>,
}

impl std::fmt::Debug for NatsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsServer")
            .field("bin", &self.bin)
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .field("running", &self.child.is_some())
            .finish()
    }
}

impl NatsServer {
    /// Starts a fresh server on a free port with an empty store and waits until it accepts
    /// TCP connections.
    ///
    /// # Panics
    /// If the `nats-server` binary cannot be found (`NATS_SERVER_BIN`, then `nats-server` on
    /// `PATH`, then `/usr/sbin/nats-server`), cannot be spawned, exits early, or does not accept
    /// connections within 10 seconds.
    #[must_use]
    pub fn start() -> NatsServer {
        NatsServer::start_inner(None)
    }

    /// As [`NatsServer::start`], with a server configuration file (`-c`), such as the
    /// repository's `deploy/nats/wfl.conf`, and the environment variables it reads (its
    /// passwords). The test's free port, loopback address and private store dir override the
    /// file's.
    ///
    /// # Panics
    /// As [`NatsServer::start`] (a configuration the server refuses makes it exit early; the
    /// panic shows its log).
    #[must_use]
    pub fn start_with_config(config: &Path, env: &[(&str, &str)]) -> NatsServer {
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        NatsServer::start_inner(Some((config.to_path_buf(), env)))
    }

    fn start_inner(config: Option<(PathBuf, Vec<(String, String)>)>) -> NatsServer {
        let bin = find_binary();
        let port = free_port();
        let dir = temp_dir();
        let mut server = NatsServer {
            bin,
            port,
            dir,
            child: None,
            config,
        };
        server.spawn_and_wait();
        server
    }

    /// The server log so far (its last few KiB): permission violations are logged here.
    #[must_use]
    pub fn log(&self) -> String {
        read_log(&self.log_path())
    }

    /// The client URL, `nats://127.0.0.1:<port>`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The TCP port the server listens on (stable across [`NatsServer::restart`]).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory (stable across [`NatsServer::restart`]).
    #[must_use]
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("jetstream")
    }

    /// Kills the server with SIGKILL (no graceful shutdown) and waits for it to exit.
    /// Does nothing if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error here means the process already exited; `wait` reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store directory (killing it
    /// first if it is still running) and waits until it accepts connections.
    ///
    /// # Panics
    /// As [`NatsServer::start`].
    pub fn restart(&mut self) {
        self.kill();
        self.spawn_and_wait();
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    fn spawn_and_wait(&mut self) {
        let store = self.store_dir();
        let log_path = self.log_path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", log_path.display()));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone log handle: {e}"));
        let mut command = Command::new(&self.bin);
        if let Some((config, env)) = &self.config {
            command.arg("-c").arg(config);
            command.envs(env.iter().map(|(k, v)| (k, v)));
        }
        let child = command
            .arg("-a")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-js")
            .arg("-sd")
            .arg(&store)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", self.bin.display()));
        self.child = Some(child);
        self.wait_ready();
    }

    /// Readiness polling: the port accepts TCP connections (JetStream is enabled before the
    /// client listener opens, so this also means JetStream is up).
    fn wait_ready(&mut self) {
        let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port).into();
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!(
                        "nats-server exited early with {status}; log:\n{}",
                        read_log(&self.log_path())
                    );
                }
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "nats-server did not accept connections on 127.0.0.1:{} within {:?}; log:\n{}",
                    self.port,
                    READY_DEADLINE,
                    read_log(&self.log_path())
                );
            }
            std::thread::sleep(READY_POLL);
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, release it).
///
/// # Panics
/// If no loopback port can be bound.
#[must_use]
pub fn free_port() -> u16 {
    let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("cannot read local address: {e}"))
        .port()
}

/// A fresh temporary directory, deleted when the returned value is dropped.
///
/// # Panics
/// If the directory cannot be created.
#[must_use]
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("wfl-test-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"))
}

/// `NATS_SERVER_BIN`, else `nats-server` on `PATH`, else Debian's `/usr/sbin/nats-server`.
fn find_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN") {
        let bin = PathBuf::from(bin);
        if is_file(&bin) {
            return bin;
        }
        panic!(
            "NATS_SERVER_BIN={} does not exist; unset it or point it at a nats-server binary \
             (install one with `apt-get install -y nats-server`)",
            bin.display()
        );
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("nats-server");
            if is_file(&candidate) {
                return candidate;
            }
        }
    }
    let debian = PathBuf::from(DEBIAN_BIN);
    if is_file(&debian) {
        return debian;
    }
    panic!(
        "nats-server not found (looked at $NATS_SERVER_BIN, `nats-server` on PATH and {DEBIAN_BIN}). \
         The NATS tests need a real server: install it with `apt-get install -y nats-server` \
         (Debian/Ubuntu), or set NATS_SERVER_BIN to a nats-server 2.9+ binary."
    );
}

fn is_file(path: &Path) -> bool {
    path.metadata().map(|m| m.is_file()).unwrap_or(false)
}

/// The last few KiB of the server log, for panic messages.
fn read_log(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    let keep = 4096;
    if text.len() > keep {
        let mut start = text.len() - keep;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text = text.split_off(start);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_kills_and_restarts_on_the_same_port() {
        let mut server = NatsServer::start();
        let port = server.port();
        assert_eq!(server.url(), format!("nats://127.0.0.1:{port}"));
        let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into();
        assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok());

        server.kill();
        assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());

        server.restart();
        assert_eq!(server.port(), port);
        assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok());
        assert!(server.store_dir().exists());
    }

    #[test]
    fn free_port_and_temp_dir() {
        assert_ne!(free_port(), 0);
        let dir = temp_dir();
        assert!(dir.path().is_dir());
    }
}
