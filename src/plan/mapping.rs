//! A mapping's `from` / `to`: which source repositories it covers and where each one goes.
//!
//! The normalisation, the error texts and the `to` transform (Go's `ReplaceAllString`, applied to
//! the path with its leading `/`) are the original's, so existing configurations map to the same
//! paths. Two things differ by decision: `from: regex:` matches the whole repository name,
//! and a computed path is joined to its registry with exactly one `/` and must be a valid OCI
//! repository name instead of being glued on as text
//! (docs/behaviour.md#image-matching-and-repository-mapping).

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use regex::{CaptureLocations, Regex};

use super::pattern::{self, Pattern};
use super::tags::TagSet;

const REGEX_PREFIX: &str = "regex:";

/// The longest repository name the distribution spec allows.
const MAX_REPOSITORY_LEN: usize = 255;

/// The distribution spec's repository name grammar.
static REPOSITORY_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$")
        .expect("constant expression compiles")
});

/// What Go's template expansion accepts as a group name: letters, digits (any script) and `_`.
static GROUP_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[\p{L}\p{Nd}_]+").expect("constant expression compiles"));

/// A validated `from` / `to` pair of one mapping.
#[derive(Debug, Clone)]
pub struct MappingRule {
    from: String,
    to: String,
    from_pattern: Option<Pattern>,
    to_transform: Option<(Regex, String)>,
}

impl MappingRule {
    /// Validates and normalises `from` / `to` as the original's `Mapping.validate` did, with its
    /// error texts (the caller adds no prefix: the original's were not prefixed by the task).
    ///
    /// A `from` or `to` starting with `regex:` (case-sensitive, no leading space) is an
    /// expression; otherwise a missing leading `/` is added (an empty `to` stays empty, meaning
    /// "same path"). `to: regex:RE,replacement` is split at the first comma, so the replacement may
    /// contain commas but the expression cannot.
    ///
    /// # Errors
    ///
    /// When `from` is empty, or a `regex:` expression of either does not compile.
    pub fn parse(from: &str, to: &str) -> Result<MappingRule, String> {
        if from.is_empty() {
            return Err("mapping without 'From' path".to_string());
        }
        let (from, from_pattern) = match from.strip_prefix(REGEX_PREFIX) {
            Some(re) => {
                let p = Pattern::anchored(re)
                    .map_err(|e| format!("'from' uses invalid regular expression: {e}"))?;
                (from.to_string(), Some(p))
            }
            None => (normalize_path(from), None),
        };
        let (to, to_transform) = match to.strip_prefix(REGEX_PREFIX) {
            Some(rest) => {
                let Some((re, replacement)) = rest.split_once(',') else {
                    return Err("replacement expression missing in 'to'".to_string());
                };
                let compiled = pattern::compile(re)
                    .map_err(|e| format!("'to' uses invalid regular expression: {e}"))?;
                (to.to_string(), Some((compiled, replacement.to_string())))
            }
            None if to.is_empty() => (String::new(), None),
            None => (normalize_path(to), None),
        };
        Ok(MappingRule {
            from,
            to,
            from_pattern,
            to_transform,
        })
    }

    /// `from` as the original logs it: a path with a leading `/`, or `regex:…` unchanged.
    pub fn from(&self) -> &str {
        &self.from
    }

    /// `to` as the original logs it: empty, a path with a leading `/`, or `regex:…` unchanged.
    pub fn to(&self) -> &str {
        &self.to
    }

    /// Whether `from` selects repositories from the source's repository list, which then has to
    /// be fetched (and which is why a task may need a lister).
    pub fn is_regex_from(&self) -> bool {
        self.from_pattern.is_some()
    }

    /// Whether `to` is a search-and-replace over the source path rather than a fixed path.
    pub fn is_regex_to(&self) -> bool {
        self.to_transform.is_some()
    }

    /// Whether a repository name from the source's repository list belongs to this mapping.
    ///
    /// For a regex `from`, the name is matched as the lister returns it (without a leading `/`)
    /// against the whole expression. A plain `from` needs no list; a name then matches when it
    /// denotes the same path.
    pub fn matches_repository(&self, name: &str) -> bool {
        match &self.from_pattern {
            Some(p) => p.matches(name),
            None => normalize_path(name) == self.from,
        }
    }

    /// The source path (with a leading `/`) for a repository this mapping covers.
    ///
    /// For a regex `from` it is the listed name (`None` is taken as an empty name); a plain
    /// `from` is its own path and the argument is ignored.
    pub fn source_path(&self, listed: Option<&str>) -> String {
        if self.is_regex_from() {
            normalize_path(listed.unwrap_or_default())
        } else {
            self.from.clone()
        }
    }

    /// The expression of a regex `to` (between `regex:` and the first comma), as written.
    pub fn to_expression(&self) -> Option<&str> {
        self.to_transform.as_ref().map(|(re, _)| re.as_str())
    }

    /// Whether `to` changes `source_path` by its own rule: always for a plain or no `to`; for a
    /// regex `to`, when the expression matches somewhere in the path. A path it does not match
    /// keeps its source path, as in the original (docs/behaviour.md#image-matching-and-repository-mapping).
    pub fn to_matches(&self, source_path: &str) -> bool {
        self.to_transform
            .as_ref()
            .is_none_or(|(re, _)| re.is_match(source_path))
    }

    /// What to tell a user whose regex `to` matched none of `source_paths`, when the leading
    /// `/` is the likely cause: the expression anchors a name without it (`^team/`), or it
    /// matches a path once the `/` is taken off. `None` when neither holds.
    pub fn leading_slash_hint(&self, source_paths: &[String]) -> Option<String> {
        let (re, _) = self.to_transform.as_ref()?;
        let expression = re.as_str();
        let seen = "a 'to' regex sees the path with its leading '/' (a 'from' regex sees the \
                    name without it)";
        if let Some(rest) = expression.strip_prefix('^')
            && !rest.is_empty()
            && !rest.starts_with('/')
        {
            return Some(format!("{seen}: did you mean '^/{rest}'?"));
        }
        let without_slash = source_paths
            .iter()
            .map(|p| p.strip_prefix('/').unwrap_or(p))
            .find(|p| re.is_match(p))?;
        Some(format!(
            "{seen}: it matches '{without_slash}' but is given '/{without_slash}'"
        ))
    }

    /// The target path for a source path (the original's `mapPath`).
    ///
    /// A regex `to` replaces every match in the source path *including* its leading `/`, with
    /// Go's `$1` / `${name}` / `$$` expansion; a plain `to` replaces a plain `from` and prefixes a
    /// listed repository; no `to` keeps the path. The result may lack a leading `/` or contain
    /// `//`: [`join_repository`] decides whether it is usable.
    pub fn target_path(&self, source_path: &str) -> String {
        if let Some((re, replacement)) = &self.to_transform {
            return go_replace_all(re, source_path, replacement);
        }
        if self.to.is_empty() {
            return source_path.to_string();
        }
        if self.is_regex_from() {
            format!("{}{source_path}", self.to)
        } else {
            self.to.clone()
        }
    }
}

/// Turns a mapped path into the repository name to append to `<registry>/`.
///
/// The original concatenated registry and path, so a path without a leading `/` was glued to the
/// registry name and `//` went through to the registry. We drop one leading `/` and require what
/// remains to be a valid OCI repository name, so a bad mapping fails for that image with an error
/// that names the path, instead of producing a broken reference.
///
/// # Errors
///
/// When what remains is not a valid OCI repository name; the message names the path.
pub fn join_repository(path: &str) -> Result<String, String> {
    let name = path.strip_prefix('/').unwrap_or(path);
    if name.len() > MAX_REPOSITORY_LEN {
        return Err(format!(
            "path '{path}' gives a repository name of {} characters, but at most \
             {MAX_REPOSITORY_LEN} are allowed",
            name.len()
        ));
    }
    if !REPOSITORY_NAME.is_match(name) {
        return Err(format!(
            "path '{path}' does not give a valid repository name: '{name}' must consist of \
             lowercase letters and digits, separated by '.', '_', '__' or '-' within a component \
             and by a single '/' between components"
        ));
    }
    Ok(name.to_string())
}

/// Up to five of `paths`, quoted, and how many more there are: enough to recognise which
/// repositories a message is about without printing a whole catalog.
pub fn some_paths(paths: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = paths
        .iter()
        .take(SHOWN)
        .map(|p| format!("'{p}'"))
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > SHOWN {
        text.push_str(&format!(" and {} more", paths.len() - SHOWN));
    }
    text
}

/// The original's `normalizePath`: ensure exactly the leading `/`, nothing else.
fn normalize_path(p: &str) -> String {
    if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    }
}

/// Go's `Regexp.ReplaceAllString`, including its handling of empty matches (an empty match right
/// after a previous match is not replaced), so `to` transforms give the same paths as before.
fn go_replace_all(re: &Regex, src: &str, template: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut locs = re.capture_locations();
    let mut last_match_end = 0;
    let mut search_pos = 0;
    while search_pos <= src.len() {
        let Some(m) = re.captures_read_at(&mut locs, src, search_pos) else {
            break;
        };
        let (start, end) = (m.start(), m.end());
        out.push_str(src.get(last_match_end..start).unwrap_or_default());
        if end > last_match_end || start == 0 {
            go_expand(&mut out, template, src, re, &locs);
        }
        last_match_end = end;
        // Always advance by at least one character.
        let width = src
            .get(search_pos..)
            .and_then(|rest| rest.chars().next())
            .map_or(0, char::len_utf8);
        if search_pos + width > end {
            search_pos += width;
        } else if search_pos + 1 > end {
            search_pos += 1;
        } else {
            search_pos = end;
        }
    }
    out.push_str(src.get(last_match_end..).unwrap_or_default());
    out
}

/// Go's `Regexp.expand`: `$$` is `$`; `$name` / `${name}` insert a group, where the name is the
/// longest run of letters, digits and `_` (so `$1x` is the group named `1x`); an all-digit name
/// is a group number; an unknown or unmatched group inserts nothing; a malformed reference
/// (`$` followed by nothing usable, or an unclosed `${`) is kept as a literal `$`.
fn go_expand(out: &mut String, template: &str, src: &str, re: &Regex, locs: &CaptureLocations) {
    let mut template = template;
    while let Some((before, after)) = template.split_once('$') {
        out.push_str(before);
        template = after;
        if let Some(rest) = template.strip_prefix('$') {
            out.push('$');
            template = rest;
            continue;
        }
        let Some((name, number, rest)) = go_extract(template) else {
            out.push('$');
            continue;
        };
        template = rest;
        let group = number.or_else(|| re.capture_names().position(|n| n == Some(name)));
        if let Some((start, end)) = group.and_then(|g| locs.get(g)) {
            out.push_str(src.get(start..end).unwrap_or_default());
        }
    }
    out.push_str(template);
}

/// Go's `extract`: the name after a `$`, its group number if it is one, and the rest.
fn go_extract(s: &str) -> Option<(&str, Option<usize>, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let len = GROUP_NAME.find(body)?.end();
    let name = &body[..len];
    let rest = if braced {
        body[len..].strip_prefix('}')?
    } else {
        &body[len..]
    };
    let mut number: Option<usize> = Some(0);
    for b in name.bytes() {
        number = match number {
            Some(n) if b.is_ascii_digit() && n < 100_000_000 => {
                Some(n * 10 + usize::from(b - b'0'))
            }
            _ => None,
        };
    }
    if name.len() > 1 && name.starts_with('0') {
        number = None;
    }
    Some((name, number, rest))
}

/// One image mapping of a task.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// `from` and `to`, parsed and normalised.
    pub rule: MappingRule,
    /// The tag list as written, for messages.
    pub tag_entries: Vec<String>,
    /// The parsed tag filters.
    pub tags: TagSet,
    /// Which platform of a multi-platform source is copied.
    pub platform: PlatformChoice,
    /// Copy the referrers (signatures, SBOMs, attestations) of every copied manifest, and
    /// cosign's legacy `.sig`/`.att`/`.sbom` tags (`referrers`, from the mapping, else the
    /// task, else the top level; off by default: docs/configuration.md#referrers).
    pub referrers: bool,
    /// Leave out images built less than this long ago (`min-age`, inherited like `referrers`;
    /// `None` for no minimum: docs/configuration.md#min-age).
    pub min_age: Option<Duration>,
    /// Copy only images signed with this key (`verify`, from the mapping, else the task:
    /// docs/configuration.md#verify).
    pub verify: Option<Verify>,
    /// Where the mapping starts in the file.
    pub line: usize,
}

/// A signature check before mirroring: `verify: {cosign-key: PATH}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verify {
    /// The key file, as configured.
    pub key_file: PathBuf,
    /// The key it holds, read and checked when the config was loaded.
    pub key: crate::cosign::PublicKey,
}

/// Which platform of a multi-platform source a mapping copies (docs/behaviour.md#platform-choice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformChoice {
    /// No `platform` key: the platform of the machine dregsy runs on.
    Host,
    /// `platform: all`: the whole index, byte for byte.
    All,
    /// `os[/arch[/variant]]`.
    Specific {
        /// The operating system as written, e.g. `linux` (for skopeo's and Docker's flags).
        os: String,
        /// The architecture as written, e.g. `arm64`; empty: not written.
        arch: String,
        /// The variant as written, e.g. `v8`; empty: not written.
        variant: String,
        /// The platform the registry engine selects: normalised, the host's architecture
        /// when none is written.
        platform: crate::registry::Platform,
    },
    /// `platform: [linux/amd64, linux/arm64]` (our extension): an index with only these
    /// platforms' manifests, rewritten (docs/behaviour.md#platform-choice).
    Subset(Vec<crate::registry::Platform>),
}

/// Architecture names (Go's `GOARCH` values images use, and the aliases [`Platform::parse`]
/// accepts): none is an operating system, so a platform starting with one is a typo.
///
/// [`Platform::parse`]: crate::registry::Platform::parse
const ARCHITECTURES: [&str; 22] = [
    "amd64", "arm64", "arm", "386", "ppc64le", "ppc64", "s390x", "riscv64", "mips64le", "mips64",
    "mipsle", "mips", "loong64", "wasm", "x86_64", "x86-64", "aarch64", "i386", "i686", "armhf",
    "armel", "armv7",
];

impl PlatformChoice {
    /// Parses a `platform` value; the error says what is accepted.
    ///
    /// # Errors
    ///
    /// When the value is not `all` or `os[/arch[/variant]]` of letters, digits, `_`, `-`, `.`.
    pub fn parse(value: &str) -> Result<PlatformChoice, String> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(PlatformChoice::Host);
        }
        if value == "all" {
            return Ok(PlatformChoice::All);
        }
        let parts: Vec<&str> = value.split('/').collect();
        let valid_part = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        };
        if parts.len() > 3 || !parts.iter().all(|p| valid_part(p)) {
            return Err(format!(
                "invalid platform '{value}': expected 'os', 'os/arch', 'os/arch/variant' or 'all'"
            ));
        }
        // `[linux/amd64, arm64]`: an architecture where the os belongs matches nothing, and
        // the copy would only warn that no such platform exists.
        if ARCHITECTURES.contains(&parts[0].to_ascii_lowercase().as_str()) {
            return Err(format!(
                "invalid platform '{value}': '{}' is an architecture, not an operating system; \
                 a platform starts with the os: did you mean 'linux/{value}'?",
                parts[0]
            ));
        }
        let platform = crate::registry::Platform::parse(value).map_err(|e| e.to_string())?;
        Ok(PlatformChoice::Specific {
            os: parts[0].to_string(),
            arch: parts.get(1).unwrap_or(&"").to_string(),
            variant: parts.get(2).unwrap_or(&"").to_string(),
            platform,
        })
    }

    /// Parses a `platform` list. A list of one `all` is `all`.
    ///
    /// # Errors
    ///
    /// An empty list, `all` beside platforms, a malformed or repeated platform.
    pub fn parse_list(values: &[String]) -> Result<PlatformChoice, String> {
        if values.is_empty() {
            return Err(
                "'platform' is an empty list: name the platforms to copy, e.g. [linux/amd64, linux/arm64], or remove the key for the host's platform"
                    .into(),
            );
        }
        if values.iter().any(|v| v.trim() == "all") {
            return if values.len() == 1 {
                Ok(PlatformChoice::All)
            } else {
                Err("'platform' lists 'all' beside other platforms: write 'platform: all' for every platform, or list only the platforms to copy".into())
            };
        }
        let mut platforms: Vec<crate::registry::Platform> = Vec::with_capacity(values.len());
        for value in values {
            // The same spelling rules as a single platform, in the engine's normal form.
            let PlatformChoice::Specific { platform, .. } = PlatformChoice::parse(value)? else {
                return Err("'platform' lists an empty platform".into());
            };
            if platforms.iter().any(|p| p.matches(&platform)) {
                return Err(format!("'platform' lists {platform} twice"));
            }
            platforms.push(platform);
        }
        Ok(PlatformChoice::Subset(platforms))
    }

    /// The value as a user writes it, for logs (`""` for the host default, as the original logs it).
    pub fn as_config_text(&self) -> String {
        match self {
            PlatformChoice::Host => String::new(),
            PlatformChoice::All => "all".into(),
            PlatformChoice::Subset(platforms) => format!(
                "[{}]",
                platforms
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            PlatformChoice::Specific {
                os, arch, variant, ..
            } => [os, arch, variant]
                .into_iter()
                .filter(|p| !p.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join("/"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(from: &str, to: &str) -> MappingRule {
        MappingRule::parse(from, to).unwrap_or_else(|e| panic!("{from} → {to}: {e}"))
    }

    /// The original's mapping examples (docs/behaviour.md#image-matching-and-repository-mapping):
    /// (from, to, lister name, source path, target path, joined repository).
    #[test]
    fn spec_examples() {
        type Joined = Result<&'static str, ()>;
        type Example = (
            &'static str,
            &'static str,
            Option<&'static str>,
            &'static str,
            &'static str,
            Joined,
        );
        #[rustfmt::skip]
        let cases: &[Example] = &[
            ("library/busybox", "", None, "/library/busybox", "/library/busybox", Ok("library/busybox")),
            ("/library/busybox", "mirror/busybox", None, "/library/busybox", "/mirror/busybox", Ok("mirror/busybox")),
            ("library/busybox", "regex:library/,mirror/", None, "/library/busybox", "/mirror/busybox", Ok("mirror/busybox")),
            // No match: the path the transform sees starts with '/'.
            ("library/busybox", "regex:^library/,mirror/", None, "/library/busybox", "/library/busybox", Ok("library/busybox")),
            ("library/busybox", "regex:^/library/,/mirror/", None, "/library/busybox", "/mirror/busybox", Ok("mirror/busybox")),
            ("regex:myproject/.*", "", Some("myproject/webui"), "/myproject/webui", "/myproject/webui", Ok("myproject/webui")),
            ("regex:myproject/.*", "ecr", Some("myproject/webui"), "/myproject/webui", "/ecr/myproject/webui", Ok("ecr/myproject/webui")),
            // The original pushed to `<registry>/ecr//myproject/webui`; we make it an error.
            ("regex:myproject/.*", "/ecr/", Some("myproject/webui"), "/myproject/webui", "/ecr//myproject/webui", Err(())),
            ("regex:myproject/.*", "regex:my(.+)/,from-dh/your$1/", Some("myproject/webui"), "/myproject/webui", "/from-dh/yourproject/webui", Ok("from-dh/yourproject/webui")),
            // The original glued this to the registry (`<registry>myproject/webui`); we add a `/`.
            ("regex:myproject.*", "regex:^/(.*),$1", Some("myproject/webui"), "/myproject/webui", "myproject/webui", Ok("myproject/webui")),
            // `<registry>_other_thing` in the original; not a valid repository name.
            ("regex:.*", "regex:/,_", Some("other/thing"), "/other/thing", "_other_thing", Err(())),
        ];
        for &(from, to, listed, src, trgt, joined) in cases {
            let r = rule(from, to);
            if let Some(name) = listed {
                assert!(r.matches_repository(name), "{from} should match {name}");
            }
            assert_eq!(r.source_path(listed), src, "{from} → {to}");
            assert_eq!(r.target_path(src), trgt, "{from} → {to}");
            match joined {
                Ok(name) => assert_eq!(join_repository(trgt).as_deref(), Ok(name), "{trgt}"),
                Err(()) => assert!(join_repository(trgt).is_err(), "{trgt} should be rejected"),
            }
        }
        assert!(!rule("regex:my", "").matches_repository("myproject/webui"));
    }

    #[test]
    fn validation_errors() {
        let cases = [
            ("", "", "mapping without 'From' path"),
            ("", "regex:(", "mapping without 'From' path"),
            (
                "regex:(",
                "",
                "'from' uses invalid regular expression: error parsing regexp: missing closing ): `(`",
            ),
            (
                "regex:a|b)",
                "",
                "'from' uses invalid regular expression: error parsing regexp: unexpected ): `a|b)`",
            ),
            (
                "library/busybox",
                "regex:library",
                "replacement expression missing in 'to'",
            ),
            (
                "library/busybox",
                "regex:",
                "replacement expression missing in 'to'",
            ),
            // The replacement check comes before the expression is compiled.
            (
                "library/busybox",
                "regex:(",
                "replacement expression missing in 'to'",
            ),
            (
                "library/busybox",
                "regex:(,x",
                "'to' uses invalid regular expression: error parsing regexp: missing closing ): `(`",
            ),
            // `from` is checked first.
            (
                "regex:[",
                "regex:(",
                "'from' uses invalid regular expression: error parsing regexp: missing closing ]: `[`",
            ),
        ];
        for (from, to, want) in cases {
            assert_eq!(
                MappingRule::parse(from, to).expect_err(want),
                want,
                "{from} → {to}"
            );
        }
    }

    #[test]
    fn normalisation_and_accessors() {
        let r = rule("library/busybox", "mirror/busybox/");
        assert_eq!(r.from(), "/library/busybox");
        assert_eq!(r.to(), "/mirror/busybox/");
        assert!(!r.is_regex_from());
        assert!(!r.is_regex_to());
        let r = rule("//double//", "");
        assert_eq!(r.from(), "//double//");
        assert_eq!(r.to(), "");
        let r = rule("regex:a/.*", "regex:^/a,/b");
        assert_eq!(r.from(), "regex:a/.*");
        assert_eq!(r.to(), "regex:^/a,/b");
        assert!(r.is_regex_from());
        assert!(r.is_regex_to());
        // The prefix is case-sensitive and must start the value.
        let r = rule("Regex:a", " regex:b");
        assert!(!r.is_regex_from());
        assert_eq!(r.from(), "/Regex:a");
        assert_eq!(r.to(), "/ regex:b");
    }

    #[test]
    fn regex_from_matches_whole_names_as_listed() {
        let r = rule("regex:myproject/.*", "");
        assert!(r.matches_repository("myproject/webui"));
        assert!(!r.matches_repository("myproject"));
        assert!(!r.matches_repository("/myproject/webui"));
        assert!(!r.matches_repository("other/myproject/webui"));
        // Alternations are fully anchored (whole-name matching).
        let r = rule("regex:a/x|b/y", "");
        assert!(r.matches_repository("a/x"));
        assert!(r.matches_repository("b/y"));
        assert!(!r.matches_repository("a/xz"));
        assert!(!r.matches_repository("zb/y"));
        // No trimming and no inversion for `from`, as in the original.
        assert!(!rule("regex: a", "").matches_repository("a"));
        assert!(!rule("regex:!a", "").matches_repository("b"));
        // A plain `from` matches its own path only.
        let r = rule("library/busybox", "");
        assert!(r.matches_repository("library/busybox"));
        assert!(r.matches_repository("/library/busybox"));
        assert!(!r.matches_repository("library/busybox2"));
    }

    #[test]
    fn plain_to_with_plain_and_regex_from() {
        let r = rule("a/b", "c");
        assert_eq!(r.source_path(Some("ignored")), "/a/b");
        assert_eq!(r.target_path("/a/b"), "/c");
        let r = rule("regex:.*", "c");
        assert_eq!(r.source_path(Some("x/y")), "/x/y");
        assert_eq!(r.source_path(None), "/");
        assert_eq!(r.target_path("/x/y"), "/c/x/y");
    }

    #[test]
    fn replacement_expansion_like_go() {
        let src = "/myproject/webui";
        let cases = [
            ("regex:/(my)(project),$2-$1", "project-my/webui"),
            ("regex:/(my)(project),${2}x", "projectx/webui"),
            // `$2x` is the group named `2x`, which does not exist.
            ("regex:/(my)(project),$2x", "/webui"),
            ("regex:/(?P<org>my)(project),${org}-$org.", "my-my./webui"),
            ("regex:/(?P<org>my),$org_x", "project/webui"),
            ("regex:/my,$$1", "$1project/webui"),
            ("regex:/my,$", "$project/webui"),
            ("regex:/my,${", "${project/webui"),
            ("regex:/my,${1", "${1project/webui"),
            ("regex:/my,$-", "$-project/webui"),
            ("regex:/my,$0$0", "/my/myproject/webui"),
            ("regex:/(my),$01", "project/webui"),
            ("regex:/(my),$9", "project/webui"),
            ("regex:/(my)|(x),[$2]", "[]project/webui"),
            ("regex:/(my),a$1,b", "amy,bproject/webui"),
            ("regex:/(my),$1€x", "my€xproject/webui"),
            ("regex:/(my),$1é", "project/webui"),
            ("regex:o,0", "/mypr0ject/webui"),
            ("regex:/,_", "_myproject_webui"),
            ("regex:x*,-", "-/-m-y-p-r-o-j-e-c-t-/-w-e-b-u-i-"),
            ("regex:e*,-", "-/-m-y-p-r-o-j-c-t-/-w-b-u-i-"),
        ];
        for (to, want) in cases {
            assert_eq!(rule("a", to).target_path(src), want, "{to}");
        }
    }

    #[test]
    fn empty_matches_follow_go() {
        let re = Regex::new("a*").expect("valid");
        assert_eq!(go_replace_all(&re, "baaab", "X"), "XbXbX");
        assert_eq!(go_replace_all(&re, "", "X"), "X");
        let re = Regex::new("").expect("valid");
        assert_eq!(go_replace_all(&re, "é", "-"), "-é-");
        let re = Regex::new("b|").expect("valid");
        assert_eq!(go_replace_all(&re, "abc", "X"), "XaXcX");
    }

    #[test]
    fn to_regex_matching_and_the_leading_slash_hint() {
        let paths = vec!["/team/api".to_string(), "/team/web".to_string()];
        let r = rule("regex:team/.*", "regex:^team/(.*),mirror2/$1");
        assert_eq!(r.to_expression(), Some("^team/(.*)"));
        assert!(!r.to_matches("/team/api"));
        let hint = r.leading_slash_hint(&paths).expect("hint");
        assert!(hint.ends_with("did you mean '^/team/(.*)'?"), "{hint}");
        // `^/` already: no hint, whatever else is wrong.
        let r = rule("regex:team/.*", "regex:^/staff/,/x/");
        assert!(!r.to_matches("/team/api"));
        assert_eq!(r.leading_slash_hint(&paths), None);
        // No `^`: the hint only when the paths without their `/` would match.
        let r = rule("regex:team/.*", r"regex:\Ateam/,x/");
        let hint = r.leading_slash_hint(&paths).expect("hint");
        assert!(
            hint.ends_with("it matches 'team/api' but is given '/team/api'"),
            "{hint}"
        );
        assert_eq!(rule("a", "regex:zzz,x").leading_slash_hint(&paths), None);
        // A plain or no `to` maps every path; it has no expression.
        for r in [rule("a", ""), rule("a", "b")] {
            assert!(r.to_matches("/anything"));
            assert_eq!(r.to_expression(), None);
            assert_eq!(r.leading_slash_hint(&paths), None);
        }
    }

    #[test]
    fn some_paths_names_five_and_counts_the_rest() {
        let paths: Vec<String> = (1..=7).map(|i| format!("/p{i}")).collect();
        assert_eq!(some_paths(&paths[..1]), "'/p1'");
        assert_eq!(
            some_paths(&paths),
            "'/p1', '/p2', '/p3', '/p4', '/p5' and 2 more"
        );
    }

    #[test]
    fn join_repository_rules() {
        let ok = [
            ("/library/busybox", "library/busybox"),
            ("busybox", "busybox"),
            ("/a.b/c_d/e__f/g-h/i---j", "a.b/c_d/e__f/g-h/i---j"),
            ("/0/9", "0/9"),
        ];
        for (path, want) in ok {
            assert_eq!(join_repository(path).as_deref(), Ok(want), "{path}");
        }
        for path in [
            "", "/", "//a", "/a//b", "/a/", "/A", "/a b", "/_a", "/a_", "/a___b", "/a..b", "/a.-b",
            "/a:b", "/é",
        ] {
            assert!(
                join_repository(path).is_err(),
                "{path:?} should be rejected"
            );
        }
        let err = join_repository("/ecr//x").expect_err("bad");
        assert!(
            err.starts_with("path '/ecr//x' does not give a valid repository name: 'ecr//x'"),
            "{err}"
        );

        let longest = format!("/{}", "a".repeat(255));
        assert!(join_repository(&longest).is_ok());
        let too_long = format!("/{}", "a".repeat(256));
        let err = join_repository(&too_long).expect_err("too long");
        assert!(err.contains("256 characters, but at most 255"), "{err}");
    }
}
