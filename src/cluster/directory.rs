//! The registry's Redis backend: one hash per user (`pg:{u:<user>}`) with the device records,
//! their location and a version, changed by one CAS script per user (§4), and token ownership in
//! `pg:t:{<h>}`, changed unbind-first-then-bind (§5) so a token is never bound twice.
//!
//! The transitions are the embedded registry's: the same `DeviceState::apply` and
//! `MultiDevicePolicy::kicks`, run on a fetched copy of the user's devices and written back with
//! a CAS on the version, retried on conflict.

use super::codec::StoredDevice;
use super::{eval, keys, scripts, Cluster, ClusterError};
use crate::domain::{
    token::check_token_shape, CertificateId, DeviceEvent, DeviceState, MultiDevicePolicy, Platform,
    TokenError,
};
use crate::registry::{ConnId, RegistryError, Route};
use std::collections::HashMap;
use std::sync::atomic::Ordering;

/// CAS attempts before an operation gives up with `Contention` (503).
const CAS_ATTEMPTS: usize = 5;

/// Where a live connection is: node incarnation and its ConnId there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub node: String,
    pub conn: ConnId,
}

/// A fetched copy of one user's hash.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserHash {
    /// The CAS version (0: the hash does not exist).
    pub version: u64,
    pub devices: Vec<(String, StoredDevice)>,
}

impl UserHash {
    pub fn get(&self, device: &str) -> Option<&StoredDevice> {
        self.devices
            .iter()
            .find(|(id, _)| id == device)
            .map(|(_, d)| d)
    }

    pub fn get_mut(&mut self, device: &str) -> Option<&mut StoredDevice> {
        self.devices
            .iter_mut()
            .find(|(id, _)| id == device)
            .map(|(_, d)| d)
    }

    /// The field changes that turn `before` into `self` (empty value: delete).
    fn diff(&self, before: &UserHash) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for (id, d) in &self.devices {
            if before.get(id) != Some(d) {
                out.push((keys::device_field(id), d.encode()));
            }
        }
        for (id, _) in &before.devices {
            if self.get(id).is_none() {
                out.push((keys::device_field(id), Vec::new()));
            }
        }
        out
    }
}

/// A device kicked by a newer login, with the connection it had.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterKicked {
    pub device: String,
    pub platform: Platform,
    pub at: Option<Location>,
    pub record: StoredDevice,
}

/// The result of a login.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterLogin {
    pub record: StoredDevice,
    pub kicked: Vec<ClusterKicked>,
    /// The connection this login replaced on the same device (maybe on another node).
    pub replaced: Option<Location>,
}

/// The result of a token report.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterTokenOutcome {
    pub record: StoredDevice,
    /// The (user, device) that held the token before.
    pub moved_from: Option<(String, String)>,
    /// The device's previous token, now unbound.
    pub replaced: Option<String>,
}

/// One device's routing decision in cluster mode.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutedDevice {
    pub device: String,
    /// The embedded decision (`conn` is always `None`: the connection is named by `at`).
    pub route: Route,
    /// The live connection, when the device is online on some node.
    pub at: Option<Location>,
    /// The holding node is dead in the membership view: `route` was recomputed as if the device
    /// were PushOnline (counted as `node_down`).
    pub node_down: bool,
}

pub(crate) fn location(d: &StoredDevice) -> Option<Location> {
    d.node.as_ref().map(|n| Location {
        node: n.clone(),
        conn: d.conn,
    })
}

impl Cluster {
    /// The user's hash. A record that does not decode is left out with a warning: one corrupt
    /// field must not make the user unreachable.
    pub async fn read_user(&self, user: &str) -> Result<UserHash, ClusterError> {
        let m: HashMap<String, Vec<u8>> = self
            .run(redis::cmd("HGETALL").arg(keys::user(user)))
            .await?;
        let mut h = UserHash::default();
        for (field, value) in m {
            if field == "v" {
                h.version = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            } else if let Some(id) = field.strip_prefix("d:") {
                match StoredDevice::decode(&value) {
                    Ok(d) => h.devices.push((id.to_string(), d)),
                    Err(e) => {
                        tracing::warn!(field = %field, error = %e, "undecodable device record")
                    }
                }
            }
        }
        h.devices.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(h)
    }

    /// Reads the user, lets `f` change a copy, and writes the difference with one CAS on the
    /// version, retried on conflict. `durable`: the write is acknowledged only after WAIT.
    pub async fn update_user<T>(
        &self,
        user: &str,
        durable: bool,
        mut f: impl FnMut(&mut UserHash) -> Result<T, RegistryError>,
    ) -> Result<T, ClusterError> {
        let key = keys::user(user);
        for _ in 0..CAS_ATTEMPTS {
            let before = self.read_user(user).await?;
            let mut after = before.clone();
            let out = f(&mut after)?;
            let changes = after.diff(&before);
            if changes.is_empty() {
                return Ok(out);
            }
            let mut c = eval(scripts::CAS_USER, &[&key]);
            c.arg(before.version);
            for (field, value) in &changes {
                c.arg(field).arg(value.as_slice());
            }
            let r: Vec<i64> = if durable {
                self.durable(c).await?
            } else {
                self.run(&c).await?
            };
            if r.first() == Some(&1) {
                return Ok(out);
            }
            self.stats.cas_conflicts.fetch_add(1, Ordering::Relaxed);
        }
        Err(ClusterError::Contention)
    }

    /// A login of `device` on connection `at` (None: the IM cluster holds the connection).
    /// Applies the multi-device policy; the devices it kicks go `Offline`.
    pub async fn login(
        &self,
        user: &str,
        platform: Platform,
        device: &str,
        at: Option<Location>,
        now: u64,
    ) -> Result<ClusterLogin, ClusterError> {
        let (policy, retention) = (self.policy, self.retention);
        self.update_user(user, true, |h| {
            login_on(h, platform, device, at.clone(), policy, retention, now)
        })
        .await
    }

    /// A non-login event. With `at`, it applies only while that connection is still the
    /// device's (a late close of a replaced socket must not disconnect the new one).
    /// Background/foreground are written without WAIT (§7.2): losing one is harmless.
    pub async fn apply(
        &self,
        user: &str,
        device: &str,
        event: DeviceEvent,
        at: Option<&Location>,
        now: u64,
    ) -> Result<(DeviceState, StoredDevice), ClusterError> {
        let retention = self.retention;
        let durable = !matches!(event, DeviceEvent::Background | DeviceEvent::Foreground);
        self.update_user(user, durable, |h| {
            let d = h
                .get_mut(device)
                .ok_or_else(|| RegistryError::UnknownDevice {
                    user: user.to_string(),
                    device: device.to_string(),
                })?;
            if let Some(l) = at {
                if !d.is_at(&l.node, l.conn) {
                    return Err(RegistryError::StaleConnection);
                }
            }
            let new = d.state().apply(event, d.platform, now, retention)?;
            d.set_state(new);
            Ok((new, d.clone()))
        })
        .await
    }

    /// The reaper's disconnect: applies only if the device is still at (node, conn). `None`
    /// when it is not (it reconnected elsewhere, or logged out).
    pub async fn disconnect_if_at(
        &self,
        user: &str,
        device: &str,
        at: &Location,
        now: u64,
    ) -> Result<Option<(DeviceState, StoredDevice)>, ClusterError> {
        let retention = self.retention;
        self.update_user(user, true, |h| {
            let Some(d) = h.get_mut(device) else {
                return Ok(None);
            };
            if !d.is_at(&at.node, at.conn) || !d.state().is_connected() {
                return Ok(None);
            }
            let new = d
                .state()
                .apply(DeviceEvent::Disconnect, d.platform, now, retention)?;
            d.set_state(new);
            Ok(Some((new, d.clone())))
        })
        .await
    }

    /// A fenced node's session, re-asserted under the node's new incarnation: Online at `to`
    /// only if the login generation is unchanged (nobody logged the device in since). `false`:
    /// the session must be kicked.
    pub async fn reassert(
        &self,
        user: &str,
        device: &str,
        gen: u64,
        to: &Location,
    ) -> Result<bool, ClusterError> {
        self.update_user(user, true, |h| {
            let Some(d) = h.get_mut(device) else {
                return Ok(false);
            };
            if d.gen != gen || !d.state().is_logged_in() {
                return Ok(false);
            }
            if !d.state().is_connected() {
                d.set_state(DeviceState::Online { background: false });
            }
            d.node = Some(to.node.clone());
            d.conn = to.conn;
            Ok(true)
        })
        .await
    }

    /// The user's devices.
    pub async fn devices(&self, user: &str) -> Result<Vec<(String, StoredDevice)>, ClusterError> {
        Ok(self.read_user(user).await?.devices)
    }

    /// The routing decision for each device of `user`; `alive` says whether a node incarnation
    /// is alive in this node's membership view.
    pub async fn route_user(
        &self,
        user: &str,
        now: u64,
        alive: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Vec<RoutedDevice>, ClusterError> {
        let h = self.read_user(user).await?;
        Ok(route_hash(&h, now, self.retention, alive))
    }

    /// Binds `token` of certificate `cert` to the device, unbinding it from any other device
    /// first (§5). A crash between the steps leaves the token bound nowhere, never twice.
    pub async fn set_token(
        &self,
        user: &str,
        device: &str,
        cert: CertificateId,
        token: &str,
    ) -> Result<ClusterTokenOutcome, ClusterError> {
        check_token_shape(token).map_err(RegistryError::from)?;
        let not_logged_in = || ClusterError::Registry(TokenError::NotLoggedIn.into());
        let h = self.read_user(user).await?;
        if !h.get(device).is_some_and(|d| d.state().is_logged_in()) {
            return Err(not_logged_in());
        }
        let tkey = keys::token(token);
        let me = keys::owner_value(user, device);
        let mut moved_from = None;
        let mut owned = false;
        for _ in 0..CAS_ATTEMPTS {
            // 1. The current owner.
            let o0: Option<String> = self.run(redis::cmd("HGET").arg(&tkey).arg("o")).await?;
            if o0.as_deref() == Some(me.as_str()) {
                owned = true;
                break;
            }
            // 2. Unbind it from the other device, if that device still holds it.
            if let Some((u2, d2)) = o0.as_deref().and_then(keys::split_owner) {
                let had = self.clear_if_holds(u2, d2, token).await?;
                if had {
                    moved_from = Some((u2.to_string(), d2.to_string()));
                }
            }
            // 3. Take the index entry only if nobody else took it meanwhile.
            let mut c = eval(scripts::CAS_OWNER, &[&tkey]);
            c.arg(o0.as_deref().unwrap_or(""))
                .arg(&me)
                .arg(cert)
                .arg(token);
            let r: i64 = self.durable(c).await?;
            if r == 1 {
                // 3b. The previous owner may have bound the token between step 2 and step 3 (its
                // own report still in flight). Its step 5 cannot see us if its bind came first,
                // so clear it once more now that the index names us.
                if let Some((u2, d2)) = o0.as_deref().and_then(keys::split_owner) {
                    if self.clear_if_holds(u2, d2, token).await? {
                        moved_from = Some((u2.to_string(), d2.to_string()));
                    }
                }
                owned = true;
                break;
            }
            self.stats.cas_conflicts.fetch_add(1, Ordering::Relaxed);
        }
        if !owned {
            return Err(ClusterError::Contention);
        }
        // 4. Bind on my user record; other devices of mine lose the token.
        let bound = self
            .update_user(user, true, |h| {
                let d = h.get_mut(device).ok_or(TokenError::NotLoggedIn)?;
                if !d.state().is_logged_in() {
                    return Err(TokenError::NotLoggedIn.into());
                }
                let previous = d
                    .tok
                    .replace((cert, token.to_string()))
                    .map(|(_, t)| t)
                    .filter(|t| t != token);
                let record = d.clone();
                for (id, other) in h.devices.iter_mut() {
                    if id != device && other.token() == Some(token) {
                        other.tok = None;
                    }
                }
                Ok((record, previous))
            })
            .await;
        let (record, replaced) = match bound {
            Ok(b) => b,
            Err(e) => {
                // Logged out meanwhile: give the index entry back.
                self.cas_owner(token, &me, "", cert).await?;
                return Err(e);
            }
        };
        if let Some(old) = &replaced {
            self.cas_owner(old, &me, "", cert).await?;
        }
        // 5. A concurrent report that won the index after step 3 makes mine void.
        let o: Option<String> = self.run(redis::cmd("HGET").arg(&tkey).arg("o")).await?;
        if o.as_deref() != Some(me.as_str()) {
            self.clear_if_holds(user, device, token).await?;
            let record = self
                .read_user(user)
                .await?
                .get(device)
                .cloned()
                .unwrap_or(record);
            return Ok(ClusterTokenOutcome {
                record,
                moved_from,
                replaced,
            });
        }
        Ok(ClusterTokenOutcome {
            record,
            moved_from,
            replaced,
        })
    }

    /// Clears `token` from (user, device) if that device holds it. Whether it did.
    async fn clear_if_holds(
        &self,
        user: &str,
        device: &str,
        token: &str,
    ) -> Result<bool, ClusterError> {
        self.update_user(user, true, |h| {
            Ok(match h.get_mut(device) {
                Some(d) if d.token() == Some(token) => {
                    d.tok = None;
                    true
                }
                _ => false,
            })
        })
        .await
    }

    /// Sets the token's owner from `from` to `to` ("" = none); whether it was `from`.
    async fn cas_owner(
        &self,
        token: &str,
        from: &str,
        to: &str,
        cert: CertificateId,
    ) -> Result<bool, ClusterError> {
        let mut c = eval(scripts::CAS_OWNER, &[&keys::token(token)]);
        c.arg(from).arg(to).arg(cert).arg(token);
        Ok(self.durable::<i64>(c).await? == 1)
    }

    /// Unbinds a token wherever it is (a vendor said it is invalid): the holder first, then the
    /// index entry if its owner is unchanged. With `cert`, only a token bound under that
    /// certificate (a receipt speaks for its own certificate; the same token bound under another
    /// one stays). Returns the user, device and new record.
    pub async fn unbind_token(
        &self,
        token: &str,
        cert: Option<CertificateId>,
    ) -> Result<Option<(String, String, StoredDevice)>, ClusterError> {
        let tkey = keys::token(token);
        let Some(o) = self
            .run::<Option<String>>(redis::cmd("HGET").arg(&tkey).arg("o"))
            .await?
        else {
            return Ok(None);
        };
        let Some((u, d)) = keys::split_owner(&o) else {
            return Ok(None);
        };
        let mut other_cert = false;
        let record = self
            .update_user(u, true, |h| {
                other_cert = false;
                Ok(match h.get_mut(d) {
                    Some(rec) if rec.token() == Some(token) => {
                        if cert.is_some_and(|c| rec.tok.as_ref().map(|t| t.0) != Some(c)) {
                            other_cert = true;
                            return Ok(None);
                        }
                        rec.tok = None;
                        Some(rec.clone())
                    }
                    _ => None,
                })
            })
            .await?;
        if other_cert {
            return Ok(None);
        }
        self.cas_owner(token, &o, "", 0).await?;
        Ok(record.map(|r| (u.to_string(), d.to_string(), r)))
    }

    /// Unbinds the device's token (push disabled, or logged out for good).
    pub async fn clear_token(
        &self,
        user: &str,
        device: &str,
    ) -> Result<Option<StoredDevice>, ClusterError> {
        let taken = self
            .update_user(user, true, |h| {
                Ok(h.get_mut(device).and_then(|d| {
                    let t = d.tok.take()?;
                    Some((d.clone(), t))
                }))
            })
            .await?;
        let Some((record, (cert, token))) = taken else {
            return Ok(None);
        };
        self.cas_owner(&token, &keys::owner_value(user, device), "", cert)
            .await?;
        Ok(Some(record))
    }

    /// Who holds `token` now, per the index.
    pub async fn token_owner(&self, token: &str) -> Result<Option<(String, String)>, ClusterError> {
        let o: Option<String> = self
            .run(redis::cmd("HGET").arg(keys::token(token)).arg("o"))
            .await?;
        Ok(o.and_then(|o| keys::split_owner(&o).map(|(u, d)| (u.to_string(), d.to_string()))))
    }
}

/// The login transition on a fetched copy: the embedded registry's rules (platform check,
/// multi-device policy, Login event), plus the location and the login generation.
pub fn login_on(
    h: &mut UserHash,
    platform: Platform,
    device: &str,
    at: Option<Location>,
    policy: MultiDevicePolicy,
    retention: u64,
    now: u64,
) -> Result<ClusterLogin, RegistryError> {
    if let Some(d) = h.get(device) {
        if d.platform != platform {
            return Err(RegistryError::PlatformMismatch {
                device: device.to_string(),
                actual: d.platform,
                given: platform,
            });
        }
    }
    let mut kicked = Vec::new();
    for (id, d) in h.devices.iter_mut() {
        if id != device && d.state().is_logged_in() && policy.kicks(platform, d.platform) {
            let at = location(d);
            let new = d
                .state()
                .apply(DeviceEvent::Kicked, d.platform, now, retention)?;
            d.set_state(new);
            kicked.push(ClusterKicked {
                device: id.clone(),
                platform: d.platform,
                at,
                record: d.clone(),
            });
        }
    }
    let (d, replaced) = match h.get_mut(device) {
        Some(d) => {
            let replaced = location(d);
            let new = d
                .state()
                .apply(DeviceEvent::Login, platform, now, retention)?;
            d.set_state(new);
            (d, replaced)
        }
        None => {
            h.devices
                .push((device.to_string(), StoredDevice::new(platform)));
            let i = h.devices.len() - 1;
            let d = &mut h.devices[i].1;
            d.set_state(DeviceState::Online { background: false });
            (d, None)
        }
    };
    d.node = at.as_ref().map(|l| l.node.clone());
    d.conn = at.as_ref().map_or(0, |l| l.conn);
    d.gen += 1;
    Ok(ClusterLogin {
        record: d.clone(),
        kicked,
        replaced,
    })
}

/// The routing decision of every device in `h` (pure; `Device::route` shared with embedded).
pub fn route_hash(
    h: &UserHash,
    now: u64,
    retention: u64,
    alive: &(dyn Fn(&str) -> bool + Sync),
) -> Vec<RoutedDevice> {
    h.devices
        .iter()
        .map(|(id, d)| {
            let at = location(d);
            let node_down = at.as_ref().is_some_and(|l| !alive(&l.node));
            let route = if node_down {
                let mut as_killed = d.clone();
                as_killed.set_state(DeviceState::PushOnline { since: now });
                as_killed.to_device(id, None).route(now, retention)
            } else {
                d.to_device(id, None).route(now, retention)
            };
            RoutedDevice {
                device: id.clone(),
                route,
                at,
                node_down,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: u64 = 7 * 86_400;

    fn at(node: &str, conn: ConnId) -> Option<Location> {
        Some(Location {
            node: node.into(),
            conn,
        })
    }

    #[test]
    fn login_kicks_per_platform_and_names_the_connections_to_close() {
        let mut h = UserHash::default();
        let p = MultiDevicePolicy::PerPlatform;
        let first = login_on(&mut h, Platform::Android, "a1", at("gw-2#1", 5), p, R, 1).unwrap();
        assert_eq!(first.record.gen, 1);
        login_on(&mut h, Platform::Web, "w1", at("gw-1#1", 9), p, R, 1).unwrap();
        let second = login_on(&mut h, Platform::Android, "a2", at("gw-3#1", 7), p, R, 2).unwrap();
        assert_eq!(second.kicked.len(), 1, "only the other Android device");
        assert_eq!(second.kicked[0].device, "a1");
        assert_eq!(second.kicked[0].at, at("gw-2#1", 5));
        assert_eq!(h.get("a1").unwrap().state().tim_name(), "Offline");
        assert_eq!(h.get("a1").unwrap().node, None);
        assert_eq!(h.get("w1").unwrap().state().tim_name(), "Online");
        // The same device again on another node replaces its connection there.
        let again = login_on(&mut h, Platform::Android, "a2", at("gw-1#1", 3), p, R, 3).unwrap();
        assert_eq!(again.replaced, at("gw-3#1", 7));
        assert_eq!(again.record.gen, 2);
        let e = login_on(&mut h, Platform::IPhone, "a2", None, p, R, 4).unwrap_err();
        assert!(matches!(e, RegistryError::PlatformMismatch { .. }));
    }

    #[test]
    fn a_device_on_a_dead_node_routes_as_push_online() {
        let mut h = UserHash::default();
        login_on(
            &mut h,
            Platform::Android,
            "a1",
            at("gw-2#1", 5),
            MultiDevicePolicy::Multi,
            R,
            1,
        )
        .unwrap();
        h.get_mut("a1").unwrap().tok = Some((1001, "t".into()));
        let live = route_hash(&h, 2, R, &|_| true);
        assert_eq!(live[0].route, Route::Online { conn: None });
        assert_eq!(live[0].at, at("gw-2#1", 5));
        let dead = route_hash(&h, 2, R, &|n| n != "gw-2#1");
        assert!(dead[0].node_down);
        assert!(matches!(dead[0].route, Route::Push { cert: 1001, .. }));
    }

    #[test]
    fn diff_writes_only_changed_devices() {
        let mut before = UserHash::default();
        login_on(
            &mut before,
            Platform::Android,
            "a",
            None,
            MultiDevicePolicy::Multi,
            R,
            1,
        )
        .unwrap();
        login_on(
            &mut before,
            Platform::Web,
            "b",
            None,
            MultiDevicePolicy::Multi,
            R,
            1,
        )
        .unwrap();
        let mut after = before.clone();
        after
            .get_mut("b")
            .unwrap()
            .set_state(DeviceState::NEVER_LOGGED_IN);
        let d = after.diff(&before);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].0, "d:b");
    }
}
