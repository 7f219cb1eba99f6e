//! What an unknown config key gets (docs/configuration.md#value-types-and-how-errors-are-reported):
//! a warning with the closest known key as a suggestion, as the original ignored unknown keys;
//! or, when that suggestion is a key that guards what gets copied, a config error
//! (docs/compatibility.md), since ignoring `verfy:` would copy images unchecked. A key of a
//! section below written where it is not valid (a mapping's `to:` at a task's level) is a
//! config error too, naming where it belongs.

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

/// The config error for a key written where it is not valid, `shown` as
/// `'<key>' <where> (line <n>)`, that belongs under `home`, a section below.
pub(super) fn misplaced_message(shown: &str, home: &str) -> String {
    format!(
        "config key {shown} belongs under {home}; indent it there. It is an error, not a \
         warning, because ignoring it would sync something other than what the file says"
    )
}

/// An unknown key that looks like a misspelling of a known key of its section.
pub struct Misspelt {
    /// The section's path: `""` for the top level, `tasks[0]` for a task.
    pub path: String,
    /// The key as written (shortened).
    pub key: String,
    /// The known key it is close to.
    pub meant: &'static str,
    pub line: usize,
}

/// Where a key belongs that is not valid where it is written, but is in a section below:
/// a mapping's key (`to`, `tags`, …) or a source's or target's key (`registry`, `auth`, …)
/// written at a task's level, or any of those or a task's key written at the top level. `path`
/// is the section's (`""` for the top level, `tasks[0]` for a task);
/// `[task_keys, mapping_keys, location_keys]` are the keys of those sections. `None` for any
/// other key, and at any other level.
///
/// Mis-indenting such a key is easy, and ignoring it would sync something other than what the
/// file says (every tag, to the same path), so it is an error (docs/compatibility.md).
pub(super) fn misplaced_home(
    path: &str,
    name: &str,
    [task_keys, mapping_keys, location_keys]: &[Vec<&str>; 3],
) -> Option<&'static str> {
    let at_task = path.starts_with("tasks[") && !path.contains('.');
    if path.is_empty() && task_keys.contains(&name) {
        Some("a task: tasks: - name: …")
    } else if at_task && mapping_keys.contains(&name) {
        Some("a mapping: - from: … in the task's 'mappings:' list")
    } else if path.is_empty() && mapping_keys.contains(&name) {
        Some("a mapping: tasks: - mappings: - from: …")
    } else if at_task && location_keys.contains(&name) {
        Some("the task's 'source:' or 'target:'")
    } else if path.is_empty() && location_keys.contains(&name) {
        Some("a task's 'source:' or 'target:': tasks: - source: …")
    } else {
        None
    }
}
