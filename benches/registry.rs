//! The registry's hot path: the routing decision for one recipient among a million registered
//! devices, device insertion (login + token report) and lookups, plus the registry's memory per
//! registered device.
//!
//! Sizes come from the environment so a default run stays bounded:
//! - `PUSHGATE_BENCH_DEVICES` (default 1,000,000): devices registered for the timed benches.
//! - `PUSHGATE_BENCH_MEM_DEVICES` (default `1000000`; e.g. `1000000,10000000`): the sizes at
//!   which memory per device is measured and printed. 10M needs about 4 GB and a few minutes.
//!
//! Memory is counted by a global allocator that tracks live heap bytes (the registry alone, not
//! allocator slack), and cross-checked against the process RSS growth from /proc/self/status.
//! Every push device has had one notification (its last result is in its record), and the
//! bounded store of recent results' details is counted full, spread over the devices.
//! `registry_breakdown` splits the heap by part (`Registry::footprint`).
//! Targets (issues 2 and 13): ≥ 5M routing decisions/s per core; ≤ 256 bytes per device at 10M,
//! everything the gateway keeps per device included.
//!
//! `cargo bench --bench registry`; under `cargo test` it runs each bench once at small sizes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use compact_str::CompactString;
use criterion::{Criterion, Throughput};
use pushgate::domain::{DeviceEvent, MultiDevicePolicy, Platform};
use pushgate::providers::DeliveryClass;
use pushgate::push::outcomes::{LastNotification, Outcomes, RECENT_KEPT};
use pushgate::registry::{Registry, Route};

/// Counts live heap bytes so the registry's own footprint can be read exactly.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const RETENTION: u64 = 7 * 86_400;
const CERT: u64 = 1001;

fn user(i: usize) -> String {
    format!("u{i}")
}

fn device(i: usize) -> String {
    format!("a{i}")
}

/// A MiPush regId is 64 characters.
fn regid(i: usize) -> String {
    format!("lt{i:010}AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghijklmnop")
}

/// Registers device `i` as the gateway does: login, then (8 in 10) a token report, a
/// disconnect and one notification, leaving it `PushOnline` with a token and a last result;
/// 1 in 10 stays `Online`, 1 in 10 logs out.
fn register(r: &Registry, i: usize, now: u64) {
    let (u, d) = (user(i), device(i));
    let _ = r.login(&u, Platform::Android, &d, None, now);
    match i % 10 {
        0 => {}
        1 => {
            let _ = r.apply(&u, &d, DeviceEvent::Logout, None, now);
        }
        _ => {
            let _ = r.set_token(&u, &d, CERT, &regid(i));
            let _ = r.apply(&u, &d, DeviceEvent::Disconnect, None, now);
            r.note_push_result(&u, &d, DeliveryClass::Delivered, now);
        }
    }
}

/// Heap bytes of the bounded store of recent results' details when full (it does not grow
/// with the number of devices).
fn outcome_details_full(now: u64) -> usize {
    let heap0 = LIVE.load(Ordering::Relaxed);
    let o = Outcomes::default();
    let d = CompactString::from("a1234567");
    let trace: std::sync::Arc<str> = std::sync::Arc::from("trace-0123456789abcdef");
    for i in 0..2 * RECENT_KEPT {
        let n = LastNotification {
            at: now * 1000,
            message_id: i as u64 + 1,
            certificate_id: CERT,
            class: DeliveryClass::Delivered,
            vendor_code: Some(0),
            trace_id: Some(trace.clone()),
            msg_id: Some(std::sync::Arc::from(
                format!("sdm12345678901234567{i:08}").as_str(),
            )),
            detail: std::borrow::Cow::Borrowed("success"),
        };
        o.record(&CompactString::from(user(i)), &d, n);
    }
    let bytes = LIVE.load(Ordering::Relaxed).saturating_sub(heap0);
    black_box(o.details_kept());
    drop(o);
    bytes
}

fn build(n: usize, now: u64) -> Registry {
    let r = Registry::new(MultiDevicePolicy::PerPlatform, RETENTION);
    for i in 0..n {
        register(&r, i, now);
    }
    r
}

fn rss_bytes() -> Option<usize> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

// The bench's own size knob, not a gateway setting (.clippy.toml bans env reads elsewhere).
#[allow(clippy::disallowed_methods)]
fn env_list(key: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(key) {
        Ok(v) => v
            .split(',')
            .filter_map(|s| s.trim().replace('_', "").parse().ok())
            .collect(),
        Err(_) => default.to_vec(),
    }
}

/// Prints the registry's memory per registered device at each size.
fn memory_report(sizes: &[usize], now: u64) {
    println!(
        "registry_layout size_of Device={} DeviceList={} CompactString={} Arc<str>={} \
         (a 64-char token is one {}-byte Arc allocation)",
        std::mem::size_of::<pushgate::registry::Device>(),
        std::mem::size_of::<pushgate::registry::DeviceList>(),
        std::mem::size_of::<compact_str::CompactString>(),
        std::mem::size_of::<std::sync::Arc<str>>(),
        16 + 64,
    );
    let details = outcome_details_full(now);
    println!(
        "outcome_details kept<={RECENT_KEPT} devices heap_bytes_when_full={details} \
         (fixed: the same at any number of devices)"
    );
    for &n in sizes {
        let (heap0, rss0) = (LIVE.load(Ordering::Relaxed), rss_bytes());
        let started = Instant::now();
        let r = build(n, now);
        let took = started.elapsed().as_secs_f64();
        let (heap1, rss1) = (LIVE.load(Ordering::Relaxed), rss_bytes());
        let heap = (heap1.saturating_sub(heap0) + details) as f64 / n as f64;
        let rss = match (rss0, rss1) {
            (Some(a), Some(b)) => format!("{:.0}", b.saturating_sub(a) as f64 / n as f64),
            _ => "n/a".into(),
        };
        println!(
            "registry_memory devices={n} heap_bytes_per_device={heap:.0} \
             rss_growth_bytes_per_device={rss} tokens={} build_secs={took:.1} \
             inserts_per_sec={:.0} (target <= 256 bytes/device at 10M)",
            r.token_count(),
            n as f64 / took,
        );
        let f = r.footprint();
        let per = |b: usize| b as f64 / n as f64;
        println!(
            "registry_breakdown devices={n} bytes_per_device: users_table={:.1} \
             device_records={:.1} (last result inline) tokens={:.1} token_index={:.1} \
             outcome_details={:.1} total={:.1}",
            per(f.users_table),
            per(f.devices),
            per(f.tokens),
            per(f.token_index),
            per(details),
            per(f.total() + details),
        );
        drop(r);
    }
}

fn benches(c: &mut Criterion, n: usize, now: u64) {
    let r = build(n, now);
    // Recipients picked across the whole map so lookups miss the cache as in production.
    let names: Vec<String> = (0..4096).map(|k| user((k * 7919 + 13) % n)).collect();
    let tokens: Vec<String> = (0..4096)
        .map(|k| regid(((k * 7919 + 13) % n) / 10 * 10 + 2).to_string())
        .filter(|_| n > 2)
        .collect();

    let mut g = c.benchmark_group(format!("registry_{n}_devices"));
    g.throughput(Throughput::Elements(1));
    let mut k = 0usize;
    g.bench_function("route_one_recipient", |b| {
        b.iter(|| {
            k = (k + 1) & 4095;
            let mut pushes = 0u32;
            let devices = r.route_with(black_box(&names[k]), now, |_, route| {
                if matches!(route, Route::Push { .. }) {
                    pushes += 1;
                }
            });
            black_box((devices, pushes))
        })
    });
    let mut k = 0usize;
    g.bench_function("token_owner_lookup", |b| {
        b.iter(|| {
            k = (k + 1) % tokens.len().max(1);
            black_box(tokens.get(k).and_then(|t| r.token_owner(t)))
        })
    });
    let mut k = 0usize;
    g.bench_function("devices_copy_for_status", |b| {
        b.iter(|| {
            k = (k + 1) & 4095;
            black_box(r.devices(&names[k]))
        })
    });
    // New devices beyond the preloaded ones: login + token report + disconnect, as `register`.
    let mut next = n;
    g.bench_function("insert_login_token_disconnect", |b| {
        b.iter(|| {
            next += 1;
            // i % 10 == 2: a push device (login, token report, disconnect).
            register(&r, black_box(next * 10 + 2), now);
        })
    });
    g.finish();
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not: run small then.
    let full = std::env::args().any(|a| a == "--bench");
    let now = pushgate::domain::now_secs();
    let (n, mem) = if full {
        (
            env_list("PUSHGATE_BENCH_DEVICES", &[1_000_000])
                .first()
                .copied()
                .unwrap_or(1_000_000)
                .max(10),
            env_list("PUSHGATE_BENCH_MEM_DEVICES", &[1_000_000]),
        )
    } else {
        (10_000, vec![10_000])
    };
    memory_report(&mem, now);
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, n, now);
    c.final_summary();
}
