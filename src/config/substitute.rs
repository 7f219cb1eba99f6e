//! `${NAME}` and `${NAME:-default}` in config values: environment variables, so secrets and
//! per-deployment values need no `envsubst` (`docs/configuration.md`, "Environment
//! variables in values").
//!
//! The rule that keeps every config of the original working: a mapping's `from`, `to` and
//! `tags` are never substituted, because there `$1`, `${1}` and `${name}` are Go regular
//! expression replacement references (and `$` an anchor). Everywhere else, `${` starts a
//! reference: `NAME` is a variable name (letters, digits, `_`, not starting with a digit),
//! `${NAME:-default}` takes `default` when NAME is unset or empty, and `$${` writes a literal
//! `${`. A config without `${` is unchanged.
//!
//! Substitution works on the parsed YAML values, not on the text, so a variable's value
//! becomes (part of) one value and can never change the document's structure.

use super::yaml::{Node, NodeKind};

/// The keys of a mapping whose values are regular expressions or replacement templates.
const UNTOUCHED_MAPPING_KEYS: [&str; 3] = ["from", "to", "tags"];

/// Substitutes references in every scalar value of `root` outside a mapping's `from`, `to`
/// and `tags`, with `lookup` giving a variable's value.
///
/// # Errors
/// The line and a message for the first bad reference: a `${` without `}`, a name that is
/// not a variable name, or a variable that is not set and has no default.
pub fn apply(
    root: &mut Node,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (usize, String)> {
    walk(root, &mut Vec::new(), lookup)
}

fn walk(
    node: &mut Node,
    path: &mut Vec<String>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (usize, String)> {
    if is_untouched(path) {
        return Ok(());
    }
    let line = node.line;
    match &mut node.kind {
        NodeKind::Null => Ok(()),
        NodeKind::Scalar { text, plain } => {
            if !text.contains("${") {
                return Ok(());
            }
            let expanded = expand(text, lookup).map_err(|e| (line, e))?;
            if expanded.is_empty() && *plain {
                // As after envsubst: `auth: ${EMPTY}` reads as `auth:`.
                node.kind = NodeKind::Null;
            } else {
                *text = expanded;
            }
            Ok(())
        }
        NodeKind::Seq(items) => {
            path.push("[]".to_string());
            let result = items
                .iter_mut()
                .try_for_each(|item| walk(item, path, lookup));
            path.pop();
            result
        }
        NodeKind::Map(pairs) => {
            for (key, value) in pairs.iter_mut() {
                path.push(key.text().unwrap_or_default().to_string());
                let result = walk(value, path, lookup);
                path.pop();
                result?;
            }
            Ok(())
        }
    }
}

/// `tasks[].mappings[].{from,to,tags}`.
fn is_untouched(path: &[String]) -> bool {
    matches!(path, [tasks, _, mappings, _, key]
        if tasks == "tasks" && mappings == "mappings" && UNTOUCHED_MAPPING_KEYS.contains(&key.as_str()))
}

/// Expands the references of one value. Errors quote the reference, never the rest of the
/// value (which may be a secret written inline).
fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            // `$${` is a literal `${`.
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!(
                "'${{' without a closing '}}' in a value: write ${{NAME}}, or $${{ for a literal '${{' \
                 (after '{}')",
                shorten(&rest[at..])
            ));
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        if !is_variable_name(name) {
            return Err(format!(
                "'${{{}}}' is not an environment variable reference: write ${{NAME}} or \
                 ${{NAME:-default}} with NAME of letters, digits and '_', or $${{ for a literal '${{'",
                shorten(inner)
            ));
        }
        match (lookup(name), default) {
            (Some(value), Some(default)) if value.is_empty() => out.push_str(default),
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                return Err(format!(
                    "environment variable {name} is not set (used as '${{{name}}}'); set it, or \
                     give a default with '${{{name}:-value}}'"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn is_variable_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn shorten(text: &str) -> String {
    text.chars().take(24).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml;

    fn env(name: &str) -> Option<String> {
        match name {
            "REG" => Some("registry.example.com".into()),
            "EMPTY" => Some(String::new()),
            "REPO" => Some("substituted".into()),
            "name" => Some("substituted".into()),
            _ => None,
        }
    }

    fn expanded(text: &str) -> Result<String, String> {
        expand(text, &env)
    }

    #[test]
    fn references_defaults_and_escapes() {
        assert_eq!(
            expanded("${REG}:5000"),
            Ok("registry.example.com:5000".into())
        );
        assert_eq!(expanded("a${MISSING:-dflt}b"), Ok("adfltb".into()));
        assert_eq!(expanded("${EMPTY:-dflt}"), Ok("dflt".into()));
        assert_eq!(expanded("${EMPTY}"), Ok(String::new()));
        assert_eq!(expanded("${MISSING:-}"), Ok(String::new()));
        assert_eq!(expanded("$${REG} and $REG"), Ok("${REG} and $REG".into()));
        assert_eq!(expanded("no references"), Ok("no references".into()));
    }

    #[test]
    fn bad_references_are_clear_and_do_not_quote_the_value() {
        let err = expanded("s3cr3t${MISSING}").expect_err("unset");
        assert!(
            err.contains("MISSING is not set") && !err.contains("s3cr3t"),
            "{err}"
        );
        let err = expanded("s3cr3t${REG").expect_err("no brace");
        assert!(
            err.contains("without a closing '}'") && !err.contains("s3cr3t"),
            "{err}"
        );
        let err = expanded("${1}").expect_err("not a name");
        assert!(
            err.contains("not an environment variable reference"),
            "{err}"
        );
    }

    fn substituted(config: &str) -> Result<Node, (usize, String)> {
        let mut root = yaml::parse(config).expect("yaml").expect("document");
        apply(&mut root, &env).map(|()| root)
    }

    #[test]
    fn mapping_from_to_and_tags_are_never_touched() {
        let config = "tasks:\n- name: t\n  source: {registry: '${REG}'}\n  target: {registry: x}\n  mappings:\n  - from: '^(?P<name>.*)/(?P<REPO>.*)$'\n    to: 'mirror/${name}/${REPO}/${1}/${UNSET}'\n    tags: ['regex: ^${x', 'keep: ${UNSET}']\n";
        let root = substituted(config).expect("substituted");
        let text = format!("{root:?}");
        assert!(text.contains("registry.example.com"), "{text}");
        assert!(
            text.contains("mirror/${name}/${REPO}/${1}/${UNSET}"),
            "{text}"
        );
        assert!(
            text.contains("regex: ^${x") && text.contains("keep: ${UNSET}"),
            "{text}"
        );
    }

    #[test]
    fn errors_carry_the_line() {
        let err =
            substituted("tasks:\n- name: t\n  source:\n    auth: ${NOPE}\n").expect_err("unset");
        assert_eq!(err.0, 4);
        assert!(err.1.contains("NOPE"), "{}", err.1);
    }

    #[test]
    fn an_empty_plain_value_becomes_null() {
        let root = substituted("relay: ${EMPTY}\n").expect("ok");
        let NodeKind::Map(pairs) = root.kind else {
            panic!("map")
        };
        assert_eq!(pairs[0].1.kind, NodeKind::Null);
    }
}
