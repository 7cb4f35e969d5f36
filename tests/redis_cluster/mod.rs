//! A throwaway Redis Cluster on loopback for the cluster-mode tests (3 masters with one replica
//! each, or two for the §13.2 #6 variant), started and stopped by `scripts/redis-cluster` (each
//! server stopped by its own pid, on Drop too).

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};

/// Runs `f` on a 2-thread runtime, failing the test after `secs` (the cluster tests' bound).
pub fn bounded<F: std::future::Future<Output = ()>>(secs: u64, f: F) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(secs), f)
            .await
            .expect("the test ran out of time");
    });
}

pub struct RedisCluster {
    pub dir: PathBuf,
    pub base: u16,
    /// Servers on ports `base..base + servers`: 3 masters and their replicas.
    pub servers: u16,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/redis-cluster")
}

/// `servers` client ports and their bus ports (+10000) all free on loopback.
fn free_base(servers: u16) -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() % 200) as u16;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = 20_000 + ((seed + n * 7) % 900) * 10;
        let free = (0..servers).all(|i| {
            TcpListener::bind(("127.0.0.1", base + i)).is_ok()
                && TcpListener::bind(("127.0.0.1", base + 10_000 + i)).is_ok()
        });
        if free {
            return base;
        }
    }
}

impl RedisCluster {
    /// Starts a 3+3 cluster, or `None` (with a message) when redis-server is not installed.
    pub fn start() -> Option<RedisCluster> {
        RedisCluster::start_with_replicas(1)
    }

    /// Starts 3 masters with `replicas` replicas each, or `None` (with a message) when
    /// redis-server is not installed.
    pub fn start_with_replicas(replicas: u16) -> Option<RedisCluster> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            eprintln!(
                "SKIPPED: redis-server is not installed; scripts/test installs it \
                 (apt-get install redis-server redis-tools)"
            );
            return None;
        }
        for _ in 0..3 {
            let servers = 3 * (1 + replicas);
            let base = free_base(servers);
            let dir = std::env::temp_dir().join(format!("pg-rc-{}-{base}", std::process::id()));
            let out = Command::new(script())
                .arg("start")
                .arg(&dir)
                .arg(base.to_string())
                .arg(replicas.to_string())
                .output()
                .expect("run scripts/redis-cluster");
            let c = RedisCluster { dir, base, servers };
            if out.status.success() {
                return Some(c);
            }
            // A port taken between the check and the start: try another base.
            eprintln!(
                "redis-cluster start failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        panic!("could not start a Redis Cluster");
    }

    pub fn ports(&self) -> Vec<u16> {
        (self.base..self.base + self.servers).collect()
    }

    pub fn urls(&self) -> Vec<String> {
        self.ports()
            .iter()
            .take(3)
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-p")
            .arg(port.to_string())
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Ports of the current masters.
    pub fn masters(&self) -> Vec<u16> {
        let mut out = Vec::new();
        for p in self.ports() {
            let role = self.cli(p, &["role"]);
            if role.starts_with("master") {
                out.push(p);
            }
        }
        out
    }

    /// The master that serves `key`.
    pub fn master_of(&self, key: &str) -> u16 {
        self.master_seen_by(self.base, key)
            .unwrap_or_else(|| panic!("no master serves {key}"))
    }

    /// The master that serves `key` as the server on `port` sees the cluster (None: none, or
    /// `port` does not answer).
    #[allow(dead_code)]
    pub fn master_seen_by(&self, port: u16, key: &str) -> Option<u16> {
        let slot: u16 = self
            .cli(port, &["cluster", "keyslot", key])
            .trim()
            .parse()
            .ok()?;
        let nodes = self.cli(port, &["cluster", "nodes"]);
        for line in nodes.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 9 || !f[2].contains("master") || f[2].contains("fail") {
                continue;
            }
            for range in &f[8..] {
                let (lo, hi) = match range.split_once('-') {
                    Some((a, b)) => (a.parse().unwrap_or(1), b.parse().unwrap_or(0)),
                    None => (range.parse().unwrap_or(1), range.parse().unwrap_or(0)),
                };
                if (lo..=hi).contains(&slot) {
                    return f[1].split(['@', ':']).nth(1)?.parse().ok();
                }
            }
        }
        None
    }

    pub fn pid(&self, port: u16) -> u32 {
        std::fs::read_to_string(self.dir.join(port.to_string()).join("redis.pid"))
            .expect("pidfile")
            .trim()
            .parse()
            .expect("pid")
    }

    /// kill -9 of one server, by its own pid.
    pub fn kill9(&self, port: u16) {
        let pid = self.pid(port);
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
    }

    /// Every token entry in the keyspace against every user hash: each token is held by exactly
    /// the device its entry names (the cluster version of `Registry::check_invariants`).
    pub fn check_token_invariant(&self) {
        let mut index: HashMap<String, String> = HashMap::new();
        let mut held: HashMap<String, Vec<String>> = HashMap::new();
        for port in self.masters() {
            let tokens = self.cli(
                port,
                &[
                    "--scan",
                    "--pattern",
                    pushgate::cluster::keys::TOKEN_PATTERN,
                ],
            );
            for key in tokens.lines().filter(|k| !k.is_empty()) {
                let o = self.cli(port, &["hget", key, "o"]);
                let t = self.cli(port, &["hget", key, "k"]);
                index.insert(t.trim_end().to_string(), o.trim_end().replace('\0', "/"));
            }
            let users = self.cli(port, &["--scan", "--pattern", "pg:{u:*}"]);
            for key in users
                .lines()
                .filter(|k| !k.is_empty() && !k.ends_with(":last"))
            {
                let user = key.trim_start_matches("pg:{u:").trim_end_matches('}');
                let raw = std::process::Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "--no-raw", "hkeys", key])
                    .output()
                    .unwrap();
                let fields = String::from_utf8_lossy(&raw.stdout).into_owned();
                for f in fields.lines() {
                    let f = f.split_once(") ").map_or(f, |x| x.1).trim_matches('"');
                    let Some(dev) = f.strip_prefix("d:") else {
                        continue;
                    };
                    let bytes = std::process::Command::new("redis-cli")
                        .args(["-p", &port.to_string(), "--raw", "hget", key, f])
                        .output()
                        .unwrap()
                        .stdout;
                    let body = &bytes[..bytes.len().saturating_sub(1)];
                    let d = pushgate::cluster::codec::StoredDevice::decode(body)
                        .unwrap_or_else(|e| panic!("record {key} {f}: {e}"));
                    if let Some(t) = d.token() {
                        held.entry(t.to_string())
                            .or_default()
                            .push(format!("{user}/{dev}"));
                    }
                }
            }
        }
        for (t, holders) in &held {
            assert_eq!(holders.len(), 1, "token {t} held by {holders:?}");
            assert_eq!(
                index.get(t),
                Some(&holders[0]),
                "token {t}: index and holder differ"
            );
        }
        let held_set: HashSet<&String> = held.keys().collect();
        for t in index.keys() {
            assert!(held_set.contains(t), "index entry {t} without a holder");
        }
    }

    /// Whether the master on `port` has a replica that finished its sync (strict WAIT can be
    /// met on its shard again).
    pub fn has_online_replica(&self, port: u16) -> bool {
        self.cli(port, &["info", "replication"])
            .lines()
            .any(|l| l.starts_with("slave") && l.contains("state=online"))
    }

    /// Restarts a killed server (it rejoins as a replica).
    pub fn restart(&self, port: u16) {
        let conf = self.dir.join(port.to_string()).join("redis.conf");
        let ok = Command::new("redis-server")
            .arg(conf)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "restart redis-server on {port}");
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.dir).status();
    }
}
