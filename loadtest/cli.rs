//! What the load tools share: their flag reader and `preload`'s regIds. Each tool includes this
//! file (`#[path = "cli.rs"] mod cli;`) and uses a part of it.
#![allow(dead_code)]

/// The value after `name` on the command line, or `default` when it is absent or does not parse.
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == name {
            if let Some(v) = args.next().and_then(|v| v.parse().ok()) {
                return v;
            }
        }
    }
    default
}

/// The regId `preload` reports for device `i` (the same string the gateway then sends).
pub fn regid(i: usize) -> String {
    format!("lt{i:010}AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghijklmnop")
}
