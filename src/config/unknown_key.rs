//! What an unknown config key gets (docs/configuration.md#value-types-and-how-errors-are-reported):
//! a warning with the closest known key as a suggestion, as the original ignored unknown keys;
//! or, when that suggestion is a key that guards what gets copied, a config error
//! (docs/compatibility.md), since ignoring `verfy:` would copy images unchecked.

use crate::spelling::edit_distance;

/// Keys that guard what gets copied, with what ignoring a misspelling of one would do.
const GUARD_KEYS: [(&str, &str); 3] = [
    (
        "verify",
        "would copy images without checking their signatures",
    ),
    (
        "cosign-key",
        "would copy images without checking their signatures",
    ),
    ("min-age", "would copy images however young they are"),
];

/// The warning for an unknown key, `shown` as `'<key>' <where> (line <n>)`.
pub(super) fn warning(shown: &str, suggestion: Option<&str>) -> String {
    let hint = suggestion
        .map(|s| format!("; did you mean '{s}'?"))
        .unwrap_or_default();
    format!("unknown config key {shown} is ignored{hint}")
}

/// The config error for an unknown key whose `suggestion` guards what gets copied; `None`
/// for any other key (a warning).
pub(super) fn guarded_message(shown: &str, suggestion: Option<&str>) -> Option<String> {
    let (guarded, ignored) = GUARD_KEYS
        .iter()
        .find(|(key, _)| Some(*key) == suggestion)?;
    Some(format!(
        "unknown config key {shown}: did you mean '{guarded}'? It is an error, not a warning, \
         because '{guarded}' guards what gets copied and ignoring it {ignored}; correct the key"
    ))
}

/// The known key closest to a misspelt one, when it is close enough to be a likely typo.
pub(super) fn suggest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = name.to_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&lower, &k.to_lowercase()), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}
