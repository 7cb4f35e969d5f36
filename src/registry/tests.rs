use super::*;
use crate::domain::{OfflineReason, Platform};
use proptest::prelude::*;

const R: u64 = 7 * 86_400;

fn reg() -> Registry {
    Registry::new(MultiDevicePolicy::PerPlatform, R)
}

#[test]
fn login_kicks_same_platform_by_default() {
    let r = reg();
    r.login("alice", Platform::Android, "d1", Some(7), 1)
        .unwrap();
    r.login("alice", Platform::Web, "w1", None, 1).unwrap();
    let out = r.login("alice", Platform::Android, "d2", None, 2).unwrap();
    assert_eq!(out.kicked.len(), 1);
    assert_eq!(out.kicked[0].device, "d1");
    assert_eq!(out.kicked[0].conn, Some(7));
    let devs = r.devices("alice");
    let d1 = devs.iter().find(|d| d.id == "d1").unwrap();
    assert_eq!(
        d1.state(),
        DeviceState::Offline {
            reason: OfflineReason::Kicked
        }
    );
    assert!(devs
        .iter()
        .find(|d| d.id == "w1")
        .unwrap()
        .state()
        .is_connected());
}

#[test]
fn routing_many_users_routes_each_device_once_and_counts_in_request_order() {
    let r = reg();
    let users: Vec<String> = (0..200).map(|i| format!("u{i}")).collect();
    for (i, u) in users.iter().enumerate() {
        // Every third user is never seen; every other known one has a second device.
        if i % 3 == 0 {
            continue;
        }
        r.login(u, Platform::Android, "a", None, 1).unwrap();
        r.set_token(u, "a", 9, &format!("tok-{u}")).unwrap();
        r.apply(u, "a", DeviceEvent::Disconnect, None, 1).unwrap();
        if i % 2 == 0 {
            r.login(u, Platform::Web, "w", None, 1).unwrap();
        }
    }
    let mut seen = Vec::new();
    let counts = r.route_many(&users, 2, |i, d, route| {
        seen.push((i, d.id.to_string(), route));
    });
    for (i, u) in users.iter().enumerate() {
        let want = match (i % 3, i % 2) {
            (0, _) => 0,
            (_, 0) => 2,
            _ => 1,
        };
        assert_eq!(counts[i], want, "{u}");
        // The same routes as one user at a time.
        let mut one = Vec::new();
        r.route_with(u, 2, |d, route| one.push((i, d.id.to_string(), route)));
        let mut many: Vec<_> = seen.iter().filter(|s| s.0 == i).cloned().collect();
        many.sort_by(|a, b| a.1.cmp(&b.1));
        one.sort_by(|a, b| a.1.cmp(&b.1));
        assert_eq!(many, one, "{u}");
    }
    assert_eq!(seen.len(), counts.iter().sum::<usize>());
}

#[test]
fn single_policy_kicks_everything() {
    let r = Registry::new(MultiDevicePolicy::Single, R);
    r.login("a", Platform::Android, "d1", None, 1).unwrap();
    r.login("a", Platform::Web, "w1", None, 1).unwrap();
    let out = r.login("a", Platform::Mac, "m1", None, 1).unwrap();
    assert_eq!(out.kicked.len(), 1);
    let logged_in: Vec<_> = r
        .devices("a")
        .into_iter()
        .filter(|d| d.state().is_logged_in())
        .map(|d| d.id)
        .collect();
    assert_eq!(logged_in, vec!["m1"]);
}

#[test]
fn token_before_login_is_refused() {
    let r = reg();
    assert_eq!(
        r.set_token("a", "d1", 1, "tok"),
        Err(RegistryError::Token(TokenError::NotLoggedIn))
    );
    r.login("a", Platform::Android, "d1", None, 1).unwrap();
    r.apply("a", "d1", DeviceEvent::Logout, None, 2).unwrap();
    assert_eq!(
        r.set_token("a", "d1", 1, "tok"),
        Err(RegistryError::Token(TokenError::NotLoggedIn))
    );
}

#[test]
fn token_moves_between_users_and_unbinds_in_one_step() {
    let r = reg();
    r.login("alice", Platform::Android, "d1", None, 1).unwrap();
    r.login("bob", Platform::Android, "d9", None, 1).unwrap();
    r.set_token("alice", "d1", 5, "tok-1").unwrap();
    let out = r.set_token("bob", "d9", 5, "tok-1").unwrap();
    assert_eq!(out.moved_from.as_ref().map(|m| m.0.as_str()), Some("alice"));
    assert_eq!(r.token_owner("tok-1"), Some(("bob".into(), "d9".into())));
    assert!(r.devices("alice")[0].token.is_none());
    r.check_invariants().unwrap();
    let (u, d, rec) = r.unbind_token("tok-1").unwrap();
    assert_eq!((u.as_str(), d.as_str()), ("bob", "d9"));
    assert_eq!(rec.token, None);
    assert_eq!(r.token_owner("tok-1"), None);
    r.check_invariants().unwrap();
}

#[test]
fn routing_follows_state() {
    let r = reg();
    r.login("a", Platform::Android, "d1", Some(3), 1).unwrap();
    let mut routes = vec![];
    r.route_with("a", 1, |_, rt| routes.push(rt));
    assert_eq!(routes, vec![Route::Online { conn: Some(3) }]);
    r.set_token("a", "d1", 9, "t").unwrap();
    r.apply("a", "d1", DeviceEvent::Disconnect, Some(3), 5)
        .unwrap();
    routes.clear();
    r.route_with("a", 5, |_, rt| routes.push(rt));
    assert!(matches!(&routes[0], Route::Push { cert: 9, .. }));
    routes.clear();
    r.route_with("a", 5 + R, |_, rt| routes.push(rt));
    assert_eq!(routes, vec![Route::Skip(SkipReason::Expired)]);
    assert_eq!(r.route_with("nobody", 1, |_, _| {}), 0);
}

#[test]
fn a_late_close_of_a_replaced_connection_changes_nothing() {
    let r = reg();
    r.login("a", Platform::Android, "d1", Some(1), 1).unwrap();
    let out = r.login("a", Platform::Android, "d1", Some(2), 2).unwrap();
    assert_eq!(out.replaced_conn, Some(1));
    assert_eq!(
        r.apply("a", "d1", DeviceEvent::Disconnect, Some(1), 3),
        Err(RegistryError::StaleConnection)
    );
    assert!(r.devices("a")[0].state().is_connected());
}

#[test]
fn restore_turns_online_into_push_online() {
    let r = reg();
    r.login("a", Platform::Android, "d1", None, 1).unwrap();
    r.set_token("a", "d1", 9, "t").unwrap();
    let rec = r.devices("a")[0].record();
    let r2 = reg();
    r2.restore("a", "d1", rec, 1_000);
    assert_eq!(
        r2.devices("a")[0].state(),
        DeviceState::PushOnline { since: 1_000 }
    );
    let mut routes = vec![];
    r2.route_with("a", 1_000, |_, rt| routes.push(rt));
    assert!(matches!(routes[0], Route::Push { .. }), "{routes:?}");
    assert_eq!(r2.token_owner("t"), Some(("a".into(), "d1".into())));
    r2.check_invariants().unwrap();
}

#[derive(Debug, Clone)]
enum Op {
    Login(u8, u8, u8),
    Event(u8, u8, u8),
    Token(u8, u8, u8),
    Unbind(u8),
    Sweep(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3u8, 0..3u8, 0..3u8).prop_map(|(u, d, p)| Op::Login(u, d, p)),
        (0..3u8, 0..3u8, 0..6u8).prop_map(|(u, d, e)| Op::Event(u, d, e)),
        (0..3u8, 0..3u8, 0..4u8).prop_map(|(u, d, t)| Op::Token(u, d, t)),
        (0..4u8).prop_map(Op::Unbind),
        (0..1000u16).prop_map(Op::Sweep),
    ]
}

proptest! {
    #[test]
    fn random_sequences_keep_the_invariants(ops in proptest::collection::vec(op(), 1..80)) {
        let r = Registry::new(MultiDevicePolicy::PerPlatform, 100);
        let plats = [Platform::Android, Platform::IPhone, Platform::Web];
        let mut now = 1u64;
        let mut conn = 1u64;
        for o in ops {
            now += 7;
            match o {
                Op::Login(u, d, p) => {
                    conn += 1;
                    // The platform of an existing device never changes; mismatches are refused.
                    let _ = r.login(&format!("u{u}"), plats[p as usize], &format!("d{d}"), Some(conn), now);
                }
                Op::Event(u, d, e) => {
                    let ev = [DeviceEvent::Logout, DeviceEvent::Disconnect, DeviceEvent::Kicked,
                              DeviceEvent::Background, DeviceEvent::Foreground, DeviceEvent::Expire][e as usize];
                    let _ = r.apply(&format!("u{u}"), &format!("d{d}"), ev, None, now);
                }
                Op::Token(u, d, t) => { let _ = r.set_token(&format!("u{u}"), &format!("d{d}"), 1, &format!("tok{t}")); }
                Op::Unbind(t) => { let _ = r.unbind_token(&format!("tok{t}")); }
                Op::Sweep(dt) => { now += u64::from(dt); r.sweep_expired(now); }
            }
            prop_assert_eq!(r.check_invariants(), Ok(()));
            // No impossible state: background only while connected, desktop never PushOnline.
            let mut bad = None;
            r.for_each_device(|u, d| {
                if let DeviceState::PushOnline { .. } = d.state() {
                    if !d.platform.is_mobile() { bad = Some(format!("{u}/{} desktop PushOnline", d.id)); }
                }
            });
            prop_assert_eq!(bad, None);
            let c = r.counts();
            let total = c.online.load(Ordering::Relaxed) + c.background.load(Ordering::Relaxed)
                + c.push_online.load(Ordering::Relaxed) + c.offline.load(Ordering::Relaxed);
            let mut n = 0i64;
            r.for_each_device(|_, _| n += 1);
            prop_assert_eq!(total, n);
            prop_assert_eq!(c.tokens.load(Ordering::Relaxed), r.token_count() as i64);
        }
    }
}

#[test]
fn skip_reason_table_is_in_declaration_order() {
    for (i, r) in SkipReason::ALL.iter().enumerate() {
        assert_eq!(*r as usize, i, "{r:?}");
    }
}

/// `Device::is_stored_as` (start-up's check, without building a record) says exactly whether
/// `record()` would differ from the stored record, for every kind of stored record.
#[test]
fn is_stored_as_agrees_with_comparing_records() {
    let platforms = [Platform::Android, Platform::IPhone, Platform::Web];
    let states = ["Online", "PushOnline", "Offline", "Unknown"];
    let reasons = [
        None,
        Some(OfflineReason::LoggedOut),
        Some(OfflineReason::Kicked),
    ];
    let tokens = [
        None,
        Some((7, "t1".to_string())),
        Some((8, "a\"b".to_string())),
    ];
    let mut checked = 0;
    for platform in platforms {
        for state in states {
            for background in [false, true] {
                for offline_reason in reasons {
                    for since in [0, 1_000] {
                        for token in &tokens {
                            let rec = DeviceRecord {
                                platform,
                                state: state.to_string(),
                                background,
                                offline_reason,
                                since,
                                token: token.clone(),
                            };
                            let t = rec
                                .token
                                .as_ref()
                                .map(|(_, t)| Arc::<str>::from(t.as_str()));
                            let d = Device::from_record("d", &rec, t, 2_000);
                            assert_eq!(d.is_stored_as(&rec.view()), d.record() == rec, "{rec:?}");
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(checked, 3 * 4 * 2 * 3 * 2 * 3);
}

/// A stored record reads in place, and one whose strings have JSON escapes reads as well.
#[test]
fn stored_records_decode_in_place_or_through_an_owned_copy() {
    let rec = DeviceRecord {
        platform: Platform::IPhone,
        state: "PushOnline".into(),
        background: false,
        offline_reason: None,
        since: 5,
        token: Some((1001, "plain".into())),
    };
    let json = serde_json::to_vec(&rec).unwrap();
    let mut owned = None;
    assert_eq!(StoredRecord::decode(&json, &mut owned).unwrap(), rec.view());
    assert!(owned.is_none(), "read in place");

    let escaped = DeviceRecord {
        token: Some((1001, "quote\" slash\\ nl\n".into())),
        ..rec
    };
    let json = serde_json::to_vec(&escaped).unwrap();
    let mut owned = None;
    assert_eq!(
        StoredRecord::decode(&json, &mut owned).unwrap(),
        escaped.view()
    );

    // An old record without the optional fields.
    let old = br#"{"platform":"Android","state":"Offline"}"#;
    let mut owned = None;
    let r = StoredRecord::decode(old, &mut owned).unwrap();
    assert_eq!((r.since, r.token, r.offline_reason), (0, None, None));
    assert!(StoredRecord::decode(br#"{"platform":"Android"}"#, &mut None).is_err());
}
