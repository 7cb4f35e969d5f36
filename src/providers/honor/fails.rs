//! Honor's `failTokens` do not say why a token failed (spec §5: a bad format and a transient
//! failure look alike), so a token is unbound only after [`FAILS_BEFORE_UNBIND`] failures in a
//! row — a documented client default while Honor's codes are UNCONFIRMED.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use dashmap::DashMap;

use crate::domain::CertificateId;

/// A token in `failTokens` this many times in a row is unbound.
pub const FAILS_BEFORE_UNBIND: u8 = 3;

/// Failing tokens remembered at most; past it the memory starts over (a bound on memory, at
/// worst a token gets three more chances).
const MAX_TRACKED: usize = 100_000;

/// Failures in a row per (certificate, token).
#[derive(Debug, Default)]
pub struct FailStreaks {
    streaks: DashMap<(CertificateId, Arc<str>), u8>,
}

impl FailStreaks {
    /// Counts one answer for the request's `tokens`: those in `failed` add one to their streak,
    /// the others end theirs. Returns the streak of each failed token, this failure included.
    pub fn record<'a>(
        &self,
        cert: CertificateId,
        tokens: impl Iterator<Item = &'a Arc<str>>,
        failed: &[String],
    ) -> HashMap<String, u8> {
        let failed: HashSet<&str> = failed.iter().map(String::as_str).collect();
        if self.streaks.len() > MAX_TRACKED {
            self.streaks.clear();
        }
        let mut out = HashMap::new();
        for token in tokens {
            let key = (cert, token.clone());
            if failed.contains(&**token) {
                let mut n = self.streaks.entry(key).or_insert(0);
                *n = n.saturating_add(1);
                out.insert(token.to_string(), *n);
            } else if !self.streaks.is_empty() {
                self.streaks.remove(&key);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaks_count_failures_in_a_row() {
        let f = FailStreaks::default();
        let a: Arc<str> = Arc::from("a");
        let b: Arc<str> = Arc::from("b");
        let both = [a.clone(), b.clone()];
        let failed = vec!["a".to_owned()];
        assert_eq!(f.record(1, both.iter(), &failed)["a"], 1);
        assert_eq!(f.record(1, both.iter(), &failed)["a"], 2);
        // A success ends the streak.
        assert!(f.record(1, both.iter(), &[]).is_empty());
        assert_eq!(f.record(1, both.iter(), &failed)["a"], 1);
        // Certificates count apart.
        assert_eq!(f.record(2, both.iter(), &failed)["a"], 1);
        let r = f.record(1, both.iter(), &["a".into(), "b".into()]);
        assert_eq!((r["a"], r["b"]), (2, 1));
    }
}
