//! A private 3-node (in practice) JetStream cluster of real `nats-server` processes.
//!
//! Owns: generating one configuration file per node (cluster `wfl-test`, explicit routes to
//! every node, a JetStream store per node, a monitoring port per node), starting, killing and
//! restarting the nodes, and waiting until the JetStream meta group has a leader.
//!
//! Must not: listen on anything but 127.0.0.1 (unless a test asks for another client address,
//! [`NatsCluster::start_listening_on`]), or route to a node of another test (routes are
//! explicit and every port is this cluster's own).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{find_binary, read_log, temp_dir, READY_DEADLINE, READY_POLL};

/// How long [`NatsCluster::wait_ready`] waits for a JetStream meta leader.
const JETSTREAM_DEADLINE: Duration = Duration::from_secs(30);
/// Pause between two rounds of `/jsz` probes.
const JSZ_POLL: Duration = Duration::from_millis(50);
/// Connect, write and read timeout of one `/jsz` probe.
const JSZ_TIMEOUT: Duration = Duration::from_secs(1);
/// The `cluster { name }` every node is configured with.
const CLUSTER_NAME: &str = "wfl-test";

/// A private JetStream cluster of `nats-server` processes on 127.0.0.1 for one test.
///
/// Node `i` (0-based) is named `n{i+1}` and has its own client, cluster-route and monitoring
/// ports, configuration file, log and store directory, all stable across
/// [`NatsCluster::restart`]. Every process is killed when the value is dropped; the temp dir
/// holding the stores is deleted with it.
pub struct NatsCluster {
    bin: PathBuf,
    /// Root temp dir: one `n<k>/` per node holding `nats.conf`, `nats-server.log` and
    /// `jetstream/` (the store).
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
}

struct Node {
    name: String,
    client_port: u16,
    http_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn config_path(&self) -> PathBuf {
        self.dir.join("nats.conf")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("nats-server.log")
    }

    fn store_dir(&self) -> PathBuf {
        self.dir.join("jetstream")
    }
}

impl std::fmt::Debug for NatsCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nodes: Vec<_> = self
            .nodes
            .iter()
            .map(|n| (&n.name, n.client_port, n.child.is_some()))
            .collect();
        f.debug_struct("NatsCluster")
            .field("bin", &self.bin)
            .field("dir", &self.dir.path())
            .field("nodes (name, port, running)", &nodes)
            .finish()
    }
}

/// What one node's `/jsz` says about the JetStream meta group.
#[derive(Debug)]
struct Meta {
    /// Server name of the meta leader, if the node knows one.
    leader: Option<String>,
    cluster_size: u64,
    /// `(name, current)` of the other peers: only the leader lists them.
    replicas: Vec<(String, bool)>,
}

impl NatsCluster {
    /// Starts `nodes` servers named `n1`, `n2`, … with empty stores, each routing to all the
    /// others, and waits until every one accepts client connections and the cluster has a
    /// JetStream meta leader that counts `nodes` peers (see [`NatsCluster::wait_ready`]).
    ///
    /// # Panics
    /// If `nodes` is 0; if the `nats-server` binary cannot be found (as for
    /// [`crate::NatsServer::start`]) or spawned; if a node exits early or does not accept
    /// connections within 10 seconds; or if no meta leader is seen within 30 seconds. The panic
    /// shows the logs.
    #[must_use]
    pub fn start(nodes: usize) -> NatsCluster {
        NatsCluster::start_listening_on(nodes, Ipv4Addr::LOCALHOST)
    }

    /// As [`NatsCluster::start`], with the client ports listening on `client_host` as well as
    /// on loopback (`0.0.0.0`: every interface, e.g. a veth pair's host end that a process in
    /// another network namespace connects to; see [`NatsCluster::urls_at`]). Routes and the
    /// monitoring port stay on 127.0.0.1.
    ///
    /// # Panics
    /// As [`NatsCluster::start`].
    #[must_use]
    pub fn start_listening_on(nodes: usize, client_host: Ipv4Addr) -> NatsCluster {
        assert!(nodes > 0, "a NATS cluster needs at least one node");
        let bin = find_binary();
        let dir = temp_dir();
        let ports = distinct_free_ports(3 * nodes);
        let (client_ports, rest) = ports.split_at(nodes);
        let (cluster_ports, http_ports) = rest.split_at(nodes);
        let routes: Vec<String> = cluster_ports
            .iter()
            .map(|port| format!("    nats-route://127.0.0.1:{port}"))
            .collect();
        let routes = routes.join("\n");
        let mut cluster = NatsCluster {
            bin,
            nodes: Vec::with_capacity(nodes),
            dir,
        };
        for i in 0..nodes {
            let name = format!("n{}", i + 1);
            let node = Node {
                dir: cluster.dir.path().join(&name),
                name,
                client_port: client_ports[i],
                http_port: http_ports[i],
                child: None,
            };
            std::fs::create_dir(&node.dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", node.dir.display()));
            let config = format!(
                "# Generated by wfl-testkit: node {name} of {nodes}.\n\
                 server_name: {name}\n\
                 listen: {host}:{client}\n\
                 http: 127.0.0.1:{http}\n\
                 jetstream {{\n  store_dir: {store:?}\n}}\n\
                 cluster {{\n  name: {CLUSTER_NAME}\n  listen: 127.0.0.1:{route}\n  \
                 routes: [\n{routes}\n  ]\n}}\n",
                name = node.name,
                host = if client_host == Ipv4Addr::LOCALHOST {
                    "127.0.0.1".to_owned()
                } else {
                    client_host.to_string()
                },
                client = node.client_port,
                http = node.http_port,
                // Written `{:?}`: a quoted string with `"` and `\` escaped, which the
                // configuration syntax reads back (paths look like /tmp/wfl-test-x/n1/jetstream).
                store = node.store_dir().display().to_string(),
                route = cluster_ports[i],
            );
            let path = node.config_path();
            std::fs::write(&path, config)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            cluster.nodes.push(node);
        }
        // Every node first: each waits for the others to elect a meta leader.
        for i in 0..nodes {
            cluster.spawn(i);
        }
        for i in 0..nodes {
            cluster.wait_accepting(i);
        }
        cluster.wait_ready();
        cluster
    }

    /// How many nodes the cluster was started with (running or not).
    #[must_use]
    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// Every node's client URL, comma-separated: `nats://127.0.0.1:<p1>,nats://127.0.0.1:<p2>,…`
    /// (the form of a `--nats-url` flag or the `nats` CLI's `-s`).
    ///
    /// async-nats 0.38 parses a `&str` or `String` as one URL: to give it the whole list, pass
    /// [`NatsCluster::url_list`] (a `Vec<String>`) to `async_nats::connect`.
    #[must_use]
    pub fn urls(&self) -> String {
        self.url_list().join(",")
    }

    /// Every node's client URL, in node order; `async_nats::connect` takes this list.
    #[must_use]
    pub fn url_list(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|i| self.url(i)).collect()
    }

    /// Every node's client URL at `host` (reachable when the cluster listens there, see
    /// [`NatsCluster::start_listening_on`]), comma-separated.
    #[must_use]
    pub fn urls_at(&self, host: Ipv4Addr) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://{host}:{}", n.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `i`'s client URL, `nats://127.0.0.1:<port>`.
    ///
    /// # Panics
    /// If `i` is not below [`NatsCluster::size`].
    #[must_use]
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.node(i).client_port)
    }

    /// Node `i`'s client port (stable across [`NatsCluster::restart`]).
    ///
    /// # Panics
    /// If `i` is not below [`NatsCluster::size`].
    #[must_use]
    pub fn port(&self, i: usize) -> u16 {
        self.node(i).client_port
    }

    /// Node `i`'s server name, `n{i+1}`: the name JetStream reports as a stream's or the meta
    /// group's leader and replicas.
    ///
    /// # Panics
    /// If `i` is not below [`NatsCluster::size`].
    #[must_use]
    pub fn name(&self, i: usize) -> &str {
        &self.node(i).name
    }

    /// The index of the node named `name` (`n1` is 0), if there is one.
    #[must_use]
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Node `i`'s JetStream store directory (stable across [`NatsCluster::restart`]).
    ///
    /// # Panics
    /// If `i` is not below [`NatsCluster::size`].
    #[must_use]
    pub fn store_dir(&self, i: usize) -> PathBuf {
        self.node(i).store_dir()
    }

    /// Whether node `i` is running (started and not killed since).
    ///
    /// # Panics
    /// If `i` is not below [`NatsCluster::size`].
    #[must_use]
    pub fn is_running(&self, i: usize) -> bool {
        self.node(i).child.is_some()
    }

    /// Node `i`'s log so far (its last few KiB, across restarts).
    ///
    /// # Panics
    /// If `i` is not below [`NatsCluster::size`].
    #[must_use]
    pub fn log(&self, i: usize) -> String {
        read_log(&self.node(i).log_path())
    }

    /// Kills node `i` with SIGKILL (no graceful shutdown) and waits for it to exit; its store
    /// is kept. Does nothing if it is not running. The others elect a new meta leader (and
    /// stream leaders) if it led: call [`NatsCluster::wait_ready`] to wait for that.
    ///
    /// # Panics
    /// If `i` is not below [`NatsCluster::size`].
    pub fn kill(&mut self, i: usize) {
        let node = self.node_mut(i);
        if let Some(mut child) = node.child.take() {
            // An error here means the process already exited; `wait` reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` again with the same configuration, ports and store (killing it first if
    /// it is still running), waits until it accepts client connections, then until the running
    /// nodes agree on a meta leader that counts it as a current peer (see
    /// [`NatsCluster::wait_ready`]).
    ///
    /// # Panics
    /// If `i` is not below [`NatsCluster::size`]; otherwise as [`NatsCluster::start`].
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_accepting(i);
        self.wait_ready();
    }

    /// Waits until the cluster is usable for JetStream: every running node's monitoring
    /// endpoint (`GET /jsz`) names the same meta leader, that leader is a running node, every
    /// node reports a meta group of [`NatsCluster::size`] peers, and the leader reports every
    /// other running node as current. Killed nodes are not asked, so with a minority down this
    /// waits for the survivors to elect a leader.
    ///
    /// # Panics
    /// If that is not the case within 30 seconds (for example with a majority of nodes
    /// killed). The panic shows what each node last answered and every node's log.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + JETSTREAM_DEADLINE;
        loop {
            let answers: Vec<(usize, Option<Meta>)> = (0..self.nodes.len())
                .filter(|&i| self.is_running(i))
                .map(|i| (i, jsz_meta(self.nodes[i].http_port)))
                .collect();
            if self.meta_ready(&answers) {
                return;
            }
            if Instant::now() >= deadline {
                let answers: Vec<String> = answers
                    .iter()
                    .map(|(i, meta)| format!("  {}: {meta:?}", self.nodes[*i].name))
                    .collect();
                panic!(
                    "the NATS cluster has no JetStream meta leader known to every running node \
                     within {JETSTREAM_DEADLINE:?}; last /jsz answers:\n{}\n{}",
                    answers.join("\n"),
                    self.all_logs()
                );
            }
            std::thread::sleep(JSZ_POLL);
        }
    }

    fn meta_ready(&self, answers: &[(usize, Option<Meta>)]) -> bool {
        let size = self.nodes.len() as u64;
        let Some((_, Some(first))) = answers.first() else {
            return false;
        };
        let Some(leader) = first.leader.as_deref() else {
            return false;
        };
        // A follower keeps naming a killed leader until it votes for a new one: the leader
        // must be running and confirm itself.
        let Some((_, Some(leader_meta))) =
            answers.iter().find(|(i, _)| self.nodes[*i].name == leader)
        else {
            return false;
        };
        let agreed = answers.iter().all(|(_, meta)| {
            meta.as_ref()
                .is_some_and(|m| m.leader.as_deref() == Some(leader) && m.cluster_size == size)
        });
        let current = answers
            .iter()
            .map(|(i, _)| self.nodes[*i].name.as_str())
            .filter(|name| *name != leader)
            .all(|name| {
                leader_meta
                    .replicas
                    .iter()
                    .any(|(peer, current)| peer == name && *current)
            });
        agreed && current
    }

    fn node(&self, i: usize) -> &Node {
        self.nodes.get(i).unwrap_or_else(|| {
            panic!(
                "no node {i} in a NATS cluster of {} nodes",
                self.nodes.len()
            )
        })
    }

    fn node_mut(&mut self, i: usize) -> &mut Node {
        let size = self.nodes.len();
        self.nodes
            .get_mut(i)
            .unwrap_or_else(|| panic!("no node {i} in a NATS cluster of {size} nodes"))
    }

    fn spawn(&mut self, i: usize) {
        let bin = self.bin.clone();
        let node = self.node_mut(i);
        let log_path = node.log_path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", log_path.display()));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone log handle: {e}"));
        let child = Command::new(&bin)
            .arg("-c")
            .arg(node.config_path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", bin.display()));
        node.child = Some(child);
    }

    /// Readiness polling of one node: its client port accepts TCP connections.
    fn wait_accepting(&mut self, i: usize) {
        let port = self.node(i).client_port;
        let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into();
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let node = self.node_mut(i);
            if let Some(child) = node.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    node.child = None;
                    panic!(
                        "nats-server {} exited early with {status}; logs:\n{}",
                        self.node(i).name,
                        self.all_logs()
                    );
                }
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "nats-server {} did not accept connections on 127.0.0.1:{port} within \
                     {READY_DEADLINE:?}; logs:\n{}",
                    self.node(i).name,
                    self.all_logs()
                );
            }
            std::thread::sleep(READY_POLL);
        }
    }

    /// Every node's log tail, headed by its name, for panic messages.
    fn all_logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let state = if n.child.is_some() {
                    "running"
                } else {
                    "not running"
                };
                format!(
                    "----- {} ({state}) log:\n{}",
                    n.name,
                    read_log(&n.log_path())
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// `count` distinct TCP ports on 127.0.0.1 that were free a moment ago: all are bound at once
/// (so none repeats), then released.
fn distinct_free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| {
            TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
                .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"))
        })
        .collect();
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .unwrap_or_else(|e| panic!("cannot read local address: {e}"))
                .port()
        })
        .collect()
}

/// The `meta_cluster` part of `GET http://127.0.0.1:<http_port>/jsz`, or `None` if the node
/// does not answer (yet), answers an error, or has no meta group yet.
fn jsz_meta(http_port: u16) -> Option<Meta> {
    let body = http_get(http_port, "/jsz")?;
    let json: serde_json::Value = serde_json::from_str(&body).ok()?;
    let meta = json.get("meta_cluster")?;
    let leader = meta
        .get("leader")
        .and_then(serde_json::Value::as_str)
        .filter(|leader| !leader.is_empty())
        .map(str::to_owned);
    let cluster_size = meta.get("cluster_size")?.as_u64()?;
    let replicas = meta
        .get("replicas")
        .and_then(serde_json::Value::as_array)
        .map(|peers| {
            peers
                .iter()
                .filter_map(|peer| {
                    let name = peer.get("name")?.as_str()?.to_owned();
                    let current = peer
                        .get("current")
                        .and_then(serde_json::Value::as_bool)
                        .unwrap_or(false);
                    Some((name, current))
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Meta {
        leader,
        cluster_size,
        replicas,
    })
}

/// The body of a `200 OK` answer to an HTTP/1.0 `GET` on 127.0.0.1 (the server closes the
/// connection after the body), or `None`.
fn http_get(port: u16, path: &str) -> Option<String> {
    let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, JSZ_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(JSZ_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(JSZ_TIMEOUT)).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
        .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let response = String::from_utf8(response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?;
    (status == "200").then(|| body.to_owned())
}
