//! A sharded hash table of entries keyed by a string they carry, for the registry's two maps.
//!
//! DashMap stores a key beside each value; here the key is part of the entry (a user's name in
//! its user entry, a token in its index entry), and an entry can also be found by a hash the
//! caller kept plus a predicate. That is what lets the token index hold a user's hash (8 bytes)
//! instead of a copy of the user's name (24): the owner is the user with that hash who holds
//! the token.
//!
//! Each shard is a `hashbrown::HashTable` behind a std `RwLock`. Lock discipline is the same as
//! the DashMap it replaces: the closures below run under the shard's lock, so they never take
//! a lock on the same table and never `.await`.

use hashbrown::HashTable;
use std::hash::BuildHasher;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// An entry that carries its own key.
pub trait Keyed {
    fn key(&self) -> &str;
}

pub struct StrTable<T> {
    shards: Box<[RwLock<HashTable<T>>]>,
    /// Seeded per table (SipHash, as DashMap's default): keys come from the network.
    hasher: std::collections::hash_map::RandomState,
    /// `hash << 7 >> shift` picks the shard: the bits under hashbrown's 7-bit tag.
    shift: u32,
}

impl<T: Keyed> Default for StrTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Keyed> StrTable<T> {
    pub fn new() -> Self {
        // As DashMap: four shards per core, a power of two.
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let n = (cores * 4).next_power_of_two().max(2);
        StrTable {
            shards: (0..n).map(|_| RwLock::new(HashTable::new())).collect(),
            hasher: Default::default(),
            shift: usize::BITS - n.trailing_zeros(),
        }
    }

    pub fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    pub fn shard_index(&self, hash: u64) -> usize {
        ((hash as usize) << 7) >> self.shift
    }

    fn shard(&self, hash: u64) -> &RwLock<HashTable<T>> {
        &self.shards[self.shard_index(hash)]
    }

    fn read_shard(&self, hash: u64) -> RwLockReadGuard<'_, HashTable<T>> {
        // A poisoned lock only means another thread panicked mid-change; the table is usable.
        self.shard(hash).read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_shard(&self, hash: u64) -> RwLockWriteGuard<'_, HashTable<T>> {
        self.shard(hash).write().unwrap_or_else(|e| e.into_inner())
    }

    /// `f` on the entry with `key`, under its shard's read lock.
    pub fn read<R>(&self, key: &str, f: impl FnOnce(&T) -> R) -> Option<R> {
        let h = self.hash(key);
        self.read_shard(h).find(h, |t| t.key() == key).map(f)
    }

    /// `f` on the entries of `keys` that exist, one shard at a time under its read lock (one
    /// lock per shard touched, not one per key): `f` gets the found entries of a shard with
    /// the index of each one's key in `keys`. The keys of a shard are all looked up before
    /// `f` runs, so their cache misses overlap instead of following one another.
    pub fn read_many<K: AsRef<str>>(&self, keys: &[K], mut f: impl FnMut(&[(usize, &T)])) {
        // (shard, key index, hash), grouped by shard.
        let mut order: Vec<(usize, usize, u64)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let h = self.hash(k.as_ref());
                (self.shard_index(h), i, h)
            })
            .collect();
        order.sort_unstable_by_key(|&(shard, i, _)| (shard, i));
        for group in order.chunk_by(|a, b| a.0 == b.0) {
            let guard = self.shards[group[0].0]
                .read()
                .unwrap_or_else(|e| e.into_inner());
            let found: Vec<(usize, &T)> = group
                .iter()
                .filter_map(|&(_, i, h)| {
                    let key = keys[i].as_ref();
                    guard.find(h, |t| t.key() == key).map(|t| (i, t))
                })
                .collect();
            f(&found);
        }
    }

    /// `f` on the entry with `key`, under its shard's write lock.
    pub fn write<R>(&self, key: &str, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let h = self.hash(key);
        self.write_shard(h).find_mut(h, |t| t.key() == key).map(f)
    }

    /// `f` on the entry with `key`, made by `make` first when there is none.
    pub fn write_or_insert<R>(
        &self,
        key: &str,
        make: impl FnOnce() -> T,
        f: impl FnOnce(&mut T) -> R,
    ) -> R {
        let h = self.hash(key);
        let mut shard = self.write_shard(h);
        let entry = shard.entry(h, |t| t.key() == key, |t| self.hash(t.key()));
        f(entry.or_insert_with(make).into_mut())
    }

    /// `f` on the first entry hashed `hash` that `pred` accepts, under its shard's write lock.
    pub fn write_by_hash<R>(
        &self,
        hash: u64,
        pred: impl FnMut(&T) -> bool,
        f: impl FnOnce(&mut T) -> R,
    ) -> Option<R> {
        self.write_shard(hash).find_mut(hash, pred).map(f)
    }

    /// `f` on the first entry hashed `hash` that `pred` accepts, under its shard's read lock.
    pub fn read_by_hash<R>(
        &self,
        hash: u64,
        pred: impl FnMut(&T) -> bool,
        f: impl FnOnce(&T) -> R,
    ) -> Option<R> {
        self.read_shard(hash).find(hash, pred).map(f)
    }

    /// How many shards the table has; [`StrTable::shard_index`] names a hash's.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Shard `i` under its write lock: a start-up fills each shard under one lock (with hashes
    /// computed beforehand, on other threads), not one lock per entry.
    pub fn lock_shard(&self, i: usize) -> RwLockWriteGuard<'_, HashTable<T>> {
        self.shards[i].write().unwrap_or_else(|e| e.into_inner())
    }

    /// Inserts `t`, replacing the entry with the same key; returns the one replaced.
    pub fn insert(&self, t: T) -> Option<T> {
        let h = self.hash(t.key());
        let mut shard = self.write_shard(h);
        match shard.find_mut(h, |o| o.key() == t.key()) {
            Some(o) => Some(std::mem::replace(o, t)),
            None => {
                shard.insert_unique(h, t, |o| self.hash(o.key()));
                None
            }
        }
    }

    pub fn remove(&self, key: &str) -> Option<T> {
        let h = self.hash(key);
        let mut shard = self.write_shard(h);
        let found = shard.find_entry(h, |t| t.key() == key).ok()?;
        Some(found.remove().0)
    }

    pub fn len(&self) -> usize {
        (0..self.shards.len())
            .map(|i| {
                self.shards[i]
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .len()
            })
            .sum()
    }

    /// `f` on every entry, one shard at a time under its read lock.
    pub fn for_each(&self, mut f: impl FnMut(&T)) {
        for s in self.shards.iter() {
            s.read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .for_each(&mut f);
        }
    }

    /// `f` on every entry, one shard at a time under its write lock, until `f` says stop.
    pub fn for_each_mut(&self, mut f: impl FnMut(&mut T) -> std::ops::ControlFlow<()>) {
        for s in self.shards.iter() {
            let mut shard = s.write().unwrap_or_else(|e| e.into_inner());
            for t in shard.iter_mut() {
                if f(t).is_break() {
                    return;
                }
            }
        }
    }

    /// Bytes of the tables themselves (slots and control bytes, not what entries point to).
    pub fn table_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.read()
                    .unwrap_or_else(|e| e.into_inner())
                    .allocation_size()
            })
            .sum()
    }
}
