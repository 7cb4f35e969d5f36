//! The UserSig decoder and verifier (base64url variant, zlib, JSON document, HMAC).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pushgate::usersig::UserSigKey;

const KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";

fuzz_target!(|data: &[u8]| {
    let Ok(sig) = std::str::from_utf8(data) else {
        return;
    };
    let key = UserSigKey::new(1_400_000_000, KEY);
    let _ = key.verify(sig, "alice", 1_700_000_000);
});
