//! Logs through `tracing`: human-readable by default, JSON lines with a setting.

use crate::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls (tests) are ignored.
///
/// `level` is `log_level` / `PUSHGATE_LOG`; see [`filter_directives`] for how it is read.
pub fn init(format: LogFormat, level: &str) {
    let directives = filter_directives(level);
    let (filter, bad) = match EnvFilter::try_new(&directives) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new(filter_directives("info")), Some(e)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let (Ok(()), Some(e)) = (installed, bad) {
        tracing::warn!(log_level = %level, error = %e, "log_level is not a valid filter; logging at info");
    }
}

/// The `EnvFilter` directives for a `log_level` setting.
///
/// A bare level (`info`, `debug`, …) sets pushgate's own level and keeps the dependencies
/// (fjall/lsm_tree, actix, hyper, h2, reqwest, …) at `warn`: their `info` lines are internal
/// bookkeeping (`lsm_tree::tree::ingest: Finished ingestion writer`) that a user cannot act on.
/// `error` and `off` apply to everything. Anything else is a full filter in `EnvFilter` syntax,
/// used as given, for when a dependency's own lines are wanted: `debug,h2=info`.
pub fn filter_directives(level: &str) -> String {
    let level = level.trim();
    match level.to_ascii_lowercase().as_str() {
        "" => "warn,pushgate=info".to_owned(),
        l @ ("trace" | "debug" | "info" | "warn") => format!("warn,pushgate={l}"),
        _ => level.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_level_is_pushgates_and_dependencies_stay_at_warn() {
        assert_eq!(filter_directives("info"), "warn,pushgate=info");
        assert_eq!(filter_directives(" DEBUG "), "warn,pushgate=debug");
        assert_eq!(filter_directives(""), "warn,pushgate=info");
        assert_eq!(filter_directives("error"), "error");
        assert_eq!(filter_directives("off"), "off");
    }

    #[test]
    fn a_full_filter_is_used_as_given() {
        assert_eq!(filter_directives("debug,h2=info"), "debug,h2=info");
        assert_eq!(filter_directives("fjall=info"), "fjall=info");
        for level in ["info", "debug", "debug,h2=info", "warn,pushgate=trace"] {
            assert!(
                EnvFilter::try_new(filter_directives(level)).is_ok(),
                "{level}"
            );
        }
    }
}
