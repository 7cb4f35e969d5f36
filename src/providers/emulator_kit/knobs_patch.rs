//! `PUT /_emulator/knobs` for every emulator: the fields given replace the current ones, the
//! others stay, and each ratio must lie between 0 and 1.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Merges the JSON object `patch` into `current` and checks the result: an unknown field or a
/// wrong type is refused by `K`'s own deserializer, and each `(name, value)` that `ratios`
/// returns must be between 0 and 1. The error names what is wrong.
pub fn patch_knobs<K, R>(current: &K, patch: &[u8], ratios: R) -> Result<K, String>
where
    K: Serialize + DeserializeOwned,
    R: FnOnce(&K) -> Vec<(&'static str, f64)>,
{
    let patch = match serde_json::from_slice::<Value>(patch) {
        Ok(Value::Object(patch)) => patch,
        Ok(_) => return Err("knobs must be a JSON object".into()),
        Err(err) => return Err(format!("bad JSON: {err}")),
    };
    let mut merged = match serde_json::to_value(current) {
        Ok(Value::Object(current)) => current,
        _ => return Err("current knobs could not be read".into()),
    };
    merged.extend(patch);
    let knobs: K =
        serde_json::from_value(Value::Object(merged)).map_err(|e| format!("bad knobs: {e}"))?;
    // `contains` is false for NaN, so a NaN ratio is refused too.
    if let Some((name, _)) = ratios(&knobs)
        .into_iter()
        .find(|(_, ratio)| !(0.0..=1.0).contains(ratio))
    {
        return Err(format!("{name} must be between 0 and 1"));
    }
    Ok(knobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct K {
        qps: u32,
        error_5xx_ratio: f64,
    }

    fn ratios(k: &K) -> Vec<(&'static str, f64)> {
        vec![("error_5xx_ratio", k.error_5xx_ratio)]
    }

    #[test]
    fn given_fields_replace_and_others_stay() {
        let k = K {
            qps: 7,
            error_5xx_ratio: 0.5,
        };
        let k = patch_knobs(&k, br#"{"qps":9}"#, ratios).expect("ok");
        assert_eq!((k.qps, k.error_5xx_ratio), (9, 0.5));
    }

    #[test]
    fn bad_patches_name_what_is_wrong() {
        let k = K::default();
        let err = |p: &[u8]| patch_knobs(&k, p, ratios).err().expect("refused");
        assert_eq!(err(b"[]"), "knobs must be a JSON object");
        assert!(err(b"{").starts_with("bad JSON"));
        assert!(err(br#"{"nope":1}"#).contains("nope"));
        assert!(err(br#"{"qps":"x"}"#).starts_with("bad knobs"));
        assert_eq!(
            err(br#"{"error_5xx_ratio":1.5}"#),
            "error_5xx_ratio must be between 0 and 1"
        );
    }
}
