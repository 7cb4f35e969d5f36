//! JSON written by hand on hot paths, byte for byte what `serde_json` writes (callers test their
//! output against it): a 500-recipient answer or a group of device records without serde's
//! per-member machinery.

/// `s` as a JSON string: copied as is when nothing in it needs an escape (quote, backslash,
/// control character; the usual name or token), else through `serde_json`.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else if serde_json::to_writer(&mut *out, s).is_err() {
        // Writing to a Vec does not fail; keep the output well-formed regardless.
        out.extend_from_slice(b"\"\"");
    }
}

/// The decimal digits of `n`.
pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    #[test]
    fn strings_and_numbers_are_written_as_serde_json_writes_them() {
        for s in [
            "",
            "alice",
            "q\"b\\t\tn\n\u{0}\u{1f}\u{7f} é 中 🎉",
            "/</script>",
        ] {
            let mut out = Vec::new();
            super::push_str(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
        for n in [0, 7, 10, 1_764_460_800, u64::MAX] {
            let mut out = Vec::new();
            super::push_u64(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }
}
