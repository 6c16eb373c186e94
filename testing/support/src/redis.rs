//! Real Redis servers for the session-store tests, driven through `testing/redis/cluster.sh`:
//! a 6-node cluster (3 masters, 3 replicas) or one plain node, on free loopback ports, stopped
//! when the handle drops (also on panic). Needs `redis-server` and `redis-cli` on `PATH`.
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::process::poll_every;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../redis/cluster.sh")
}

fn run_script(args: &[&str]) -> Result<(), String> {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .output()
        .map_err(|e| format!("cannot run cluster.sh: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "cluster.sh {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn require_redis() {
    for tool in ["redis-server", "redis-cli"] {
        let found = Command::new(tool).arg("--version").output().is_ok();
        assert!(
            found,
            "{tool} not found: these tests need Redis >= 7 (apt-get install redis-server)"
        );
    }
}

fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A random base port whose `count` ports and their cluster-bus ports (+10000) are all free
/// right now. The range is 20000..22760 so that the bus ports stay below the kernel's
/// ephemeral range (32768..): a port in it can be taken by any outgoing connection between our
/// check and redis-server's bind.
pub fn free_base(count: u16) -> u16 {
    for _ in 0..200 {
        let base = rand::random_range(20000..22760 - count);
        if (base..base + count).all(|p| port_free(p) && port_free(p + 10000)) {
            return base;
        }
    }
    panic!("no free port range found in 20000..22760");
}

fn temp_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "gatehouse-redis-{tag}-{}-{:x}",
        std::process::id(),
        rand::random::<u64>()
    ))
}

/// `redis-cli -p PORT ARGS...` on loopback; stdout (trimmed), or the error text.
pub fn cli(port: u16, args: &[&str]) -> Result<String, String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !stdout.starts_with("Could not connect") {
        Ok(stdout)
    } else {
        Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// Polls `check` every 50 ms until it holds or `limit` passes, then once more; whether it held.
pub fn wait_for(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    poll_every(Duration::from_millis(50), limit, &mut check) || check()
}

/// One line of `CLUSTER NODES`.
pub struct Node {
    /// Flagged `master`.
    pub master: bool,
    /// Flagged `fail` or `fail?`.
    pub failed: bool,
    /// The slot ranges it serves (inclusive).
    pub slots: Vec<(u16, u16)>,
}

/// A 6-node Redis Cluster on `127.0.0.1:base..base+5`.
pub struct Cluster {
    dir: PathBuf,
    /// The first node's port.
    pub base: u16,
}

impl Cluster {
    /// Starts the cluster and waits for `cluster_state:ok` on every node (a few seconds).
    pub fn start() -> Cluster {
        require_redis();
        let mut last = String::new();
        for _ in 0..3 {
            let base = free_base(6);
            let dir = temp_dir("cluster");
            match run_script(&["start", dir.to_str().unwrap(), &base.to_string()]) {
                Ok(()) => return Cluster { dir, base },
                Err(e) => {
                    // Probably a port taken between the check and the start; try another range.
                    let _ = run_script(&["stop", dir.to_str().unwrap()]);
                    last = e;
                }
            }
        }
        panic!("could not start a Redis Cluster: {last}");
    }

    /// The six node ports.
    pub fn ports(&self) -> Vec<u16> {
        (self.base..self.base + 6).collect()
    }

    /// `redis-cluster://127.0.0.1:P0,...` naming every node as a seed.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .ports()
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis-cluster://{}", nodes.join(","))
    }

    fn any_live_port(&self) -> u16 {
        self.ports()
            .into_iter()
            .find(|p| cli(*p, &["ping"]).is_ok_and(|r| r == "PONG"))
            .expect("no cluster node answers")
    }

    /// Parsed `CLUSTER NODES` from a live node, by port.
    pub fn nodes(&self) -> BTreeMap<u16, Node> {
        let text = cli(self.any_live_port(), &["cluster", "nodes"]).expect("cluster nodes");
        let mut nodes = BTreeMap::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                continue;
            }
            let port: u16 = f[1]
                .split('@')
                .next()
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
                .expect("node address");
            let flags = f[2];
            let slots = f[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .map(|s| match s.split_once('-') {
                    Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                    None => (s.parse().unwrap(), s.parse().unwrap()),
                })
                .collect();
            let node = Node {
                master: flags.contains("master"),
                failed: flags.contains("fail"),
                slots,
            };
            nodes.insert(port, node);
        }
        nodes
    }

    /// Ports of the masters that serve slots and are not failed.
    pub fn masters(&self) -> Vec<u16> {
        self.nodes()
            .into_iter()
            .filter(|(_, n)| n.master && !n.failed && !n.slots.is_empty())
            .map(|(p, _)| p)
            .collect()
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`).
    pub fn keyslot(&self, key: &str) -> u16 {
        cli(self.any_live_port(), &["cluster", "keyslot", key])
            .expect("cluster keyslot")
            .parse()
            .expect("slot number")
    }

    /// The port of the master serving `key`'s slot.
    pub fn master_of(&self, key: &str) -> u16 {
        let slot = self.keyslot(key);
        self.nodes()
            .into_iter()
            .find(|(_, n)| {
                n.master && !n.failed && n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
            })
            .map(|(p, _)| p)
            .expect("a master serves every slot")
    }

    /// `redis-cli -c` (following redirections) from the first live node.
    pub fn cli_c(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args([
                "-c",
                "-h",
                "127.0.0.1",
                "-p",
                &self.any_live_port().to_string(),
            ])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Waits until every master's replicas have acknowledged all its writes (replication
    /// offsets caught up), so a failover cannot lose what was written before.
    pub fn wait_replicated(&self, limit: Duration) -> bool {
        wait_for(limit, || {
            let masters = self.masters();
            masters.len() == 3
                && masters.iter().all(|m| {
                    let Ok(info) = cli(*m, &["info", "replication"]) else {
                        return false;
                    };
                    let field = |name: &str| {
                        info.lines()
                            .find_map(|l| l.strip_prefix(name))
                            .map(|v| v.trim().to_string())
                    };
                    let Some(offset) =
                        field("master_repl_offset:").and_then(|v| v.parse::<u64>().ok())
                    else {
                        return false;
                    };
                    let replica_offsets: Vec<u64> = info
                        .lines()
                        .filter(|l| l.starts_with("slave") && l.contains("state=online"))
                        .filter_map(|l| {
                            l.split(',')
                                .find_map(|kv| kv.strip_prefix("offset="))
                                .and_then(|v| v.parse().ok())
                        })
                        .collect();
                    !replica_offsets.is_empty() && replica_offsets.iter().all(|o| *o >= offset)
                })
        })
    }

    /// Kills one master (`SHUTDOWN NOSAVE`) and returns its port.
    pub fn kill_a_master(&self) -> u16 {
        let port = self.masters()[0];
        let _ = cli(port, &["shutdown", "nosave"]);
        assert!(
            wait_for(Duration::from_secs(5), || cli(port, &["ping"]).is_err()),
            "master {port} did not stop"
        );
        port
    }

    /// Waits until a replica took over from `dead` and every live node reports
    /// `cluster_state:ok`; whether that happened within `limit`.
    pub fn wait_failover(&self, dead: u16, limit: Duration) -> bool {
        wait_for(limit, || {
            let live: Vec<u16> = self.ports().into_iter().filter(|p| *p != dead).collect();
            let ok = live.iter().all(|p| {
                cli(*p, &["cluster", "info"]).is_ok_and(|i| i.contains("cluster_state:ok"))
            });
            ok && self.masters().len() == 3 && !self.masters().contains(&dead)
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = run_script(&["stop", self.dir.to_str().unwrap()]);
    }
}

/// One plain (non-cluster) redis-server on a loopback port.
pub struct Single {
    dir: PathBuf,
    /// Its port.
    pub port: u16,
}

impl Single {
    /// Starts a server on a free port.
    pub fn start() -> Single {
        Single::start_on(free_base(1))
    }

    /// Starts a server on `port` and waits until it answers PING.
    pub fn start_on(port: u16) -> Single {
        require_redis();
        let dir = temp_dir("single");
        if let Err(e) = run_script(&["single", dir.to_str().unwrap(), &port.to_string()]) {
            let _ = run_script(&["stop", dir.to_str().unwrap()]);
            panic!("could not start redis-server: {e}");
        }
        Single { dir, port }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops it now (`SHUTDOWN NOSAVE`), waiting until the port is closed.
    pub fn shutdown(&self) {
        let _ = cli(self.port, &["shutdown", "nosave"]);
        assert!(wait_for(Duration::from_secs(5), || cli(
            self.port,
            &["ping"]
        )
        .is_err()));
    }
}

impl Drop for Single {
    fn drop(&mut self) {
        let _ = run_script(&["stop", self.dir.to_str().unwrap()]);
    }
}
