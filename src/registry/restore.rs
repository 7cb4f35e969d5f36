//! Start-up: the registry filled from the store's device records, on every core.
//!
//! Two phases. First the store reads its records on this thread (its iterator is sequential)
//! and hands them on in batches that never split a user; the other threads decode each batch
//! in place (no allocation but the device's token), hash its keys and sort its devices and
//! tokens by the table shard they go to. Then each shard of each table is filled by one thread
//! under one lock, sized first for exactly what it will hold, a user's devices in one
//! allocation. Decoding everything before filling anything is what gives the exact sizes: a
//! table grown on the way would hash all its entries again at each growth, and one sized from
//! an estimate would keep the estimate's slack for the life of the process.

use super::{Device, DeviceList, Registry, StateCounts, StoredRecord, TokenEntry, UserEntry};
use crate::store::{Store, StoreError, StoreOp, StoredDevices};
use compact_str::CompactString;
use hashbrown::hash_table::Entry;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

/// What a start-up's restore did.
#[derive(Debug)]
pub struct Restored {
    /// Devices read from the store.
    pub devices: usize,
    /// The devices whose record the restore changed, to be written back: a device stored
    /// `Online` comes back `PushOnline` since the start (or `Offline`), and the next restart
    /// must keep that retention clock instead of starting it again.
    pub rewrites: Vec<StoreOp>,
}

/// Fills `registry` (empty: this is the start-up) with every device `store` holds; `now` is
/// when the devices stored `Online` lost their connection.
///
/// A token two devices name (a store written before token moves within a user were
/// persisted) is indexed once, for the later device in key order, as [`Registry::restore`]
/// does.
pub fn from_store(
    registry: &Registry,
    store: &dyn Store,
    now: u64,
) -> Result<Restored, StoreError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, 16);
    let decoded = decode_all(registry, store, now, threads)?;
    Ok(fill(registry, decoded, threads))
}

/// A decoded device, for the user table's shard its user hashes to.
struct UserItem {
    hash: u64,
    name: CompactString,
    device: Device,
}

/// A decoded token, for the token index's shard it hashes to.
struct TokenItem {
    hash: u64,
    entry: TokenEntry,
}

/// One batch decoded: its devices and tokens by shard, in key order within each shard.
struct Decoded {
    /// The batch's place in the store's order.
    seq: usize,
    users: Vec<Vec<UserItem>>,
    /// By shard: the users whose devices are in this batch (a batch holds all of a user's).
    new_users: Vec<usize>,
    tokens: Vec<Vec<TokenItem>>,
    counts: StateCounts,
    devices: usize,
    rewrites: Vec<StoreOp>,
}

/// Phase one: the store's batches decoded on `threads` threads while this one reads, back in
/// the store's order.
fn decode_all(
    registry: &Registry,
    store: &dyn Store,
    now: u64,
    threads: usize,
) -> Result<Vec<Decoded>, StoreError> {
    // A few batches in flight per thread: reading never waits for a slow decoder, and the
    // raw bytes held at once stay a few MB.
    let (tx, rx) = mpsc::sync_channel::<(usize, StoredDevices)>(threads * 2);
    let rx = Mutex::new(rx);
    let stop = AtomicBool::new(false);
    let failed: Mutex<Option<StoreError>> = Mutex::new(None);
    let mut decoded = Vec::new();
    let read = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok((seq, batch)) = next else { break };
                        if stop.load(Ordering::Relaxed) {
                            continue; // drained, so the reader never blocks on a full channel
                        }
                        match decode(registry, seq, &batch, now) {
                            Ok(d) => done.push(d),
                            Err(e) => {
                                stop.store(true, Ordering::Relaxed);
                                failed
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .get_or_insert(e);
                            }
                        }
                    }
                    done
                })
            })
            .collect();
        let mut seq = 0;
        let read = store.load_devices(&mut |batch| {
            if stop.load(Ordering::Relaxed) || tx.send((seq, batch)).is_err() {
                return ControlFlow::Break(());
            }
            seq += 1;
            ControlFlow::Continue(())
        });
        drop(tx);
        for w in workers {
            decoded.extend(w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        read
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    read?;
    decoded.sort_unstable_by_key(|d| d.seq);
    Ok(decoded)
}

fn corrupt(user: &[u8], device: &[u8], reason: impl ToString) -> StoreError {
    let mut key = String::from_utf8_lossy(user).into_owned();
    key.push('\0');
    key.push_str(&String::from_utf8_lossy(device));
    StoreError::Corrupt {
        key,
        reason: reason.to_string(),
    }
}

/// One batch: each record decoded into its device, its keys hashed, sorted by shard.
fn decode(
    registry: &Registry,
    seq: usize,
    batch: &StoredDevices,
    now: u64,
) -> Result<Decoded, StoreError> {
    let (user_shards, token_shards) = (registry.users.shard_count(), registry.tokens.shard_count());
    // Room for a shard's share of the batch and some unevenness.
    let per_shard = batch.len() / user_shards + batch.len() / (4 * user_shards) + 8;
    let mut d = Decoded {
        seq,
        users: (0..user_shards)
            .map(|_| Vec::with_capacity(per_shard))
            .collect(),
        new_users: vec![0; user_shards],
        tokens: (0..token_shards)
            .map(|_| Vec::with_capacity(per_shard))
            .collect(),
        counts: StateCounts::default(),
        devices: batch.len(),
        rewrites: Vec::new(),
    };
    for (user_bytes, device_bytes, value) in batch.iter() {
        let bad = |reason: &dyn std::fmt::Display| corrupt(user_bytes, device_bytes, reason);
        let user = std::str::from_utf8(user_bytes).map_err(|e| bad(&e))?;
        let device = std::str::from_utf8(device_bytes).map_err(|e| bad(&e))?;
        let mut owned = None;
        let rec = StoredRecord::decode(value, &mut owned).map_err(|e| bad(&e))?;
        let token = rec.token.map(|(_, t)| Arc::<str>::from(t));
        let dev = Device::from_stored(device, &rec, token.clone(), now);
        if !dev.is_stored_as(&rec) {
            d.rewrites.push(StoreOp::PutDevice {
                user: user.to_string(),
                device: device.to_string(),
                record: dev.record(),
            });
        }
        d.counts.of(dev.state()).fetch_add(1, Ordering::Relaxed);
        let hash = registry.users.hash(user);
        let shard = registry.users.shard_index(hash);
        let items = &mut d.users[shard];
        if items.last().is_none_or(|last| last.name != user) {
            d.new_users[shard] += 1;
        }
        items.push(UserItem {
            hash,
            name: CompactString::from(user),
            device: dev,
        });
        if let Some(token) = token {
            let token_hash = registry.tokens.hash(&token);
            d.tokens[registry.tokens.shard_index(token_hash)].push(TokenItem {
                hash: token_hash,
                entry: TokenEntry {
                    token,
                    user_hash: hash,
                },
            });
        }
    }
    Ok(d)
}

/// Phase two's work: one shard of one table, with its items from every batch in order.
enum Shard {
    Users {
        index: usize,
        parts: Vec<Vec<UserItem>>,
        users: usize,
    },
    Tokens {
        index: usize,
        parts: Vec<Vec<TokenItem>>,
    },
}

/// Phase two: every shard of both tables filled, each by one of `threads` threads.
fn fill(registry: &Registry, decoded: Vec<Decoded>, threads: usize) -> Restored {
    let user_shards = registry.users.shard_count();
    let token_shards = registry.tokens.shard_count();
    let mut users: Vec<(Vec<Vec<UserItem>>, usize)> = (0..user_shards)
        .map(|_| (Vec::with_capacity(decoded.len()), 0))
        .collect();
    let mut tokens: Vec<Vec<Vec<TokenItem>>> = (0..token_shards)
        .map(|_| Vec::with_capacity(decoded.len()))
        .collect();
    let counts = &registry.counts;
    let mut restored = Restored {
        devices: 0,
        rewrites: Vec::new(),
    };
    for d in decoded {
        for (i, part) in d.users.into_iter().enumerate() {
            users[i].0.push(part);
            users[i].1 += d.new_users[i];
        }
        for (i, part) in d.tokens.into_iter().enumerate() {
            tokens[i].push(part);
        }
        for (total, batch) in [
            (&counts.online, &d.counts.online),
            (&counts.background, &d.counts.background),
            (&counts.push_online, &d.counts.push_online),
            (&counts.offline, &d.counts.offline),
        ] {
            total.fetch_add(batch.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        restored.devices += d.devices;
        restored.rewrites.extend(d.rewrites);
    }
    let work: Vec<Shard> = users
        .into_iter()
        .enumerate()
        .map(|(index, (parts, users))| Shard::Users {
            index,
            parts,
            users,
        })
        .chain(
            tokens
                .into_iter()
                .enumerate()
                .map(|(index, parts)| Shard::Tokens { index, parts }),
        )
        .collect();
    let work = Mutex::new(work);
    let indexed = AtomicI64::new(0);
    let fill_shards = || loop {
        let next = work.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match next {
            Some(Shard::Users {
                index,
                parts,
                users,
            }) => fill_users(registry, index, parts, users),
            Some(Shard::Tokens { index, parts }) => {
                indexed.fetch_add(fill_tokens(registry, index, parts), Ordering::Relaxed);
            }
            None => break,
        }
    };
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(fill_shards);
        }
        fill_shards();
    });
    counts
        .tokens
        .fetch_add(indexed.into_inner(), Ordering::Relaxed);
    restored
}

/// Fills shard `index` of the user table: each user with all its devices in one allocation.
fn fill_users(registry: &Registry, index: usize, parts: Vec<Vec<UserItem>>, users: usize) {
    let table = &registry.users;
    let mut shard = table.lock_shard(index);
    shard.reserve(users, |u| table.hash(&u.name));
    for part in parts {
        let mut items = part.into_iter().peekable();
        while let Some(first) = items.next() {
            let mut devices = Vec::with_capacity(1);
            devices.push(first.device);
            while let Some(next) = items.next_if(|n| n.name == first.name) {
                devices.push(next.device);
            }
            match shard.entry(
                first.hash,
                |u| u.name == first.name,
                |u| table.hash(&u.name),
            ) {
                Entry::Occupied(mut user) => {
                    for d in devices {
                        user.get_mut().devices.upsert(d);
                    }
                }
                Entry::Vacant(slot) => {
                    slot.insert(UserEntry {
                        name: first.name,
                        devices: DeviceList::from(devices),
                    });
                }
            }
        }
    }
}

/// Fills shard `index` of the token index; returns the tokens it added.
fn fill_tokens(registry: &Registry, index: usize, parts: Vec<Vec<TokenItem>>) -> i64 {
    let table = &registry.tokens;
    let mut shard = table.lock_shard(index);
    shard.reserve(parts.iter().map(Vec::len).sum(), |e| table.hash(&e.token));
    let mut added = 0;
    for item in parts.into_iter().flatten() {
        match shard.entry(
            item.hash,
            |e| e.token == item.entry.token,
            |e| table.hash(&e.token),
        ) {
            Entry::Occupied(mut e) => *e.get_mut() = item.entry,
            Entry::Vacant(slot) => {
                slot.insert(item.entry);
                added += 1;
            }
        }
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DeviceState, MultiDevicePolicy, OfflineReason, Platform};
    use crate::registry::DeviceRecord;
    use crate::store::FjallStore;

    const RETENTION: u64 = 7 * 86_400;

    fn record(state: &str, since: u64, token: Option<(u64, &str)>) -> DeviceRecord {
        DeviceRecord {
            platform: Platform::Android,
            state: state.into(),
            background: false,
            offline_reason: (state == "Offline").then_some(OfflineReason::LoggedOut),
            since,
            token: token.map(|(c, t)| (c, t.to_string())),
        }
    }

    /// Users `u{i}`: more than a batch of them, every fifth with three devices (so some users
    /// straddle where a batch would end by count), tokens on most, one with JSON escapes in
    /// it, every seventh device stored `Online`, two devices of one user naming one token.
    fn stored_devices() -> Vec<(String, String, DeviceRecord)> {
        let mut out = Vec::new();
        for i in 0..2 * StoredDevices::TARGET_LEN + 300 {
            let devices = if i % 5 == 0 { 3 } else { 1 };
            for d in 0..devices {
                let n = out.len();
                let token = format!("tok-{i}-{d}");
                let rec = match n % 7 {
                    0 => record("Online", 0, Some((1001, &token))),
                    1 => record("Offline", 0, None),
                    2 => record("PushOnline", 5_000, None),
                    _ => record("PushOnline", 5_000, Some((1002, &token))),
                };
                out.push((format!("u{i}"), format!("d{d}"), rec));
            }
        }
        out.push((
            "quoted".into(),
            "d0".into(),
            record("PushOnline", 5_000, Some((1001, "a\"b\\c\u{1}é"))),
        ));
        out.push((
            "twice".into(),
            "d0".into(),
            record("PushOnline", 5_000, Some((1001, "shared"))),
        ));
        out.push((
            "twice".into(),
            "d1".into(),
            record("PushOnline", 5_000, Some((1001, "shared"))),
        ));
        out
    }

    fn store_with(devices: &[(String, String, DeviceRecord)]) -> (tempfile::TempDir, FjallStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = FjallStore::open(dir.path()).unwrap();
        let ops: Vec<StoreOp> = devices
            .iter()
            .map(|(user, device, record)| StoreOp::PutDevice {
                user: user.clone(),
                device: device.clone(),
                record: record.clone(),
            })
            .collect();
        store.apply(&ops).unwrap();
        (dir, store)
    }

    fn registry() -> Registry {
        Registry::new(MultiDevicePolicy::PerPlatform, RETENTION)
    }

    #[test]
    fn a_restore_on_every_core_gives_the_registry_one_device_at_a_time_gives() {
        let devices = stored_devices();
        let (_dir, store) = store_with(&devices);
        let now = 9_000;

        // The reference: in key order (the store's), one `Registry::restore` each.
        let mut sorted = devices.clone();
        sorted.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let one_by_one = registry();
        let mut expected_rewrites = Vec::new();
        for (user, device, rec) in sorted {
            if let Some(r) = one_by_one.restore(&user, &device, rec, now) {
                expected_rewrites.push((user, device, r));
            }
        }

        let parallel = registry();
        let restored = from_store(&parallel, &store, now).unwrap();
        assert_eq!(restored.devices, devices.len());
        let mut rewrites: Vec<_> = restored
            .rewrites
            .into_iter()
            .map(|op| match op {
                StoreOp::PutDevice {
                    user,
                    device,
                    record,
                } => (user, device, record),
                other => panic!("not a device write: {other:?}"),
            })
            .collect();
        rewrites.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        expected_rewrites.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        assert!(!rewrites.is_empty());
        assert_eq!(rewrites, expected_rewrites);
        // Each stored `Online` device is among them, `PushOnline` since the start.
        assert!(rewrites
            .iter()
            .all(|(_, _, r)| r.state == "PushOnline" && r.since == now));

        assert_eq!(parallel.user_count(), one_by_one.user_count());
        assert_eq!(parallel.token_count(), one_by_one.token_count());
        let counts = |r: &Registry| {
            let c = r.counts();
            [
                &c.online,
                &c.background,
                &c.push_online,
                &c.offline,
                &c.tokens,
            ]
            .map(|a| a.load(Ordering::Relaxed))
        };
        assert_eq!(counts(&parallel), counts(&one_by_one));
        for (user, _, rec) in &devices {
            // Same devices, in the same order, with the same state and token.
            assert_eq!(parallel.devices(user), one_by_one.devices(user), "{user}");
            if let Some((_, token)) = &rec.token {
                assert_eq!(
                    parallel.token_owner(token),
                    one_by_one.token_owner(token),
                    "{token}"
                );
            }
        }
        assert_eq!(
            parallel.devices("quoted")[0].token.as_deref(),
            Some("a\"b\\c\u{1}é")
        );
        assert_eq!(
            parallel.devices("u0")[0].state(),
            DeviceState::PushOnline { since: now }
        );
        // (check_invariants would refuse "twice": one token on two devices, as such an old
        // store leaves it, one-by-one restore included.)
        assert_eq!(
            parallel.token_owner("shared"),
            one_by_one.token_owner("shared")
        );
    }

    #[test]
    fn a_corrupt_record_stops_the_start_naming_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = FjallStore::open(dir.path()).unwrap();
        let mut ops: Vec<StoreOp> = (0..3 * StoredDevices::TARGET_LEN)
            .map(|i| StoreOp::PutDevice {
                user: format!("u{i:05}"),
                device: "d".into(),
                record: record("PushOnline", 1, None),
            })
            .collect();
        // A record whose state is a number: neither form of the record reads it.
        ops.push(StoreOp::PutDevice {
            user: "u05000x".into(),
            device: "d".into(),
            record: record("PushOnline", 1, None),
        });
        store.apply(&ops).unwrap();
        drop(store);
        {
            let db = fjall::Database::builder(dir.path()).open().unwrap();
            let devices = db
                .keyspace("devices", fjall::KeyspaceCreateOptions::default)
                .unwrap();
            devices
                .insert(b"u05000x\0d", br#"{"platform":"Android","state":7}"#)
                .unwrap();
            db.persist(fjall::PersistMode::SyncAll).unwrap();
        }
        let store = FjallStore::open(dir.path()).unwrap();
        let err = from_store(&registry(), &store, 1).unwrap_err();
        match err {
            StoreError::Corrupt { key, reason } => {
                assert_eq!(key, "u05000x\0d");
                assert!(
                    reason.contains("state") || reason.contains("invalid type"),
                    "{reason}"
                );
            }
            other => panic!("not a corrupt record: {other}"),
        }
    }
}
