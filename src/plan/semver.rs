//! Semantic versions and version ranges, as the original's `semver:` tag filters and
//! `keep: latest n` understood them (blang/semver v4.0.0).
//!
//! Users have filters that work with the original, so the semantics are those of blang/semver,
//! quirks included (docs/behaviour.md#tag-filters): tags are parsed tolerantly, a suffix such as
//! `-musl` is a prerelease and sorts *below* the plain version, prereleases are not excluded from
//! ranges, range versions must be strict, space means AND, `||` means OR, and `x` wildcards are
//! expanded textually. The error texts are blang's, since they reach the user inside `'tags' uses
//! invalid format: <err>`.
//!
//! The one deliberate difference: blang expands `!=1.2.x` / `!1.2.x` to `<1.2.0 >=1.3.0` inside
//! one AND group, which can never match; we make it mean "outside 1.2.x".
//!
//! The `semver` crate is not used: its `VersionReq` has different semantics (caret defaults,
//! commas, prerelease exclusion).

use std::cmp::Ordering;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

/// One dot-separated prerelease identifier.
///
/// Numeric and alphanumeric identifiers compare differently (numbers numerically and below any
/// alphanumeric one), so the distinction is kept in the type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PreId {
    /// An identifier of ASCII digits only, without leading zeroes.
    Numeric(u64),
    /// An identifier of `[0-9A-Za-z-]` that is not all digits.
    Alpha(String),
}

impl Ord for PreId {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PreId::Numeric(a), PreId::Numeric(b)) => a.cmp(b),
            (PreId::Numeric(_), PreId::Alpha(_)) => Ordering::Less,
            (PreId::Alpha(_), PreId::Numeric(_)) => Ordering::Greater,
            (PreId::Alpha(a), PreId::Alpha(b)) => a.as_bytes().cmp(b.as_bytes()),
        }
    }
}

impl PartialOrd for PreId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for PreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PreId::Numeric(n) => write!(f, "{n}"),
            PreId::Alpha(s) => f.write_str(s),
        }
    }
}

/// A semantic version.
///
/// Equality and ordering follow semver precedence, which ignores build metadata: `1.0.0+a` and
/// `1.0.0+b` are equal, as they were for the original's range checks and `keep: latest n`.
#[derive(Debug, Clone, Default)]
pub struct Version {
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Patch number.
    pub patch: u64,
    /// Prerelease identifiers (the part after the first `-`); a tag suffix such as `-musl` lands
    /// here, which is why it sorts below the plain version.
    pub pre: Vec<PreId>,
    /// Build metadata (the part after the first `+`); kept for display, ignored in comparisons.
    pub build: Vec<String>,
}

impl Version {
    /// Parses a strict semantic version, as blang's `Parse` does.
    ///
    /// Range expressions use this, so `>=1.31` is rejected there even though the tag `1.31` is a
    /// version; the error texts are blang's.
    ///
    /// # Errors
    ///
    /// When `s` is not a strict semantic version; blang's error text.
    pub fn parse(s: &str) -> Result<Version, String> {
        if s.is_empty() {
            return Err("Version string empty".to_string());
        }
        let parts: Vec<&str> = s.splitn(3, '.').collect();
        let [major, minor, rest] = parts.as_slice() else {
            return Err("No Major.Minor.Patch elements found".to_string());
        };
        let major = parse_number(major, "major", "Major")?;
        let minor = parse_number(minor, "minor", "Minor")?;

        let mut patch_str = *rest;
        let mut build: Vec<&str> = Vec::new();
        let mut prerelease: Vec<&str> = Vec::new();
        if let Some((before, after)) = patch_str.split_once('+') {
            build = after.split('.').collect();
            patch_str = before;
        }
        if let Some((before, after)) = patch_str.split_once('-') {
            prerelease = after.split('.').collect();
            patch_str = before;
        }
        let patch = parse_number(patch_str, "patch", "Patch")?;

        let pre = prerelease
            .into_iter()
            .map(parse_pre_id)
            .collect::<Result<Vec<_>, _>>()?;
        let mut meta = Vec::with_capacity(build.len());
        for b in build {
            if b.is_empty() {
                return Err("Build meta data is empty".to_string());
            }
            if !b.chars().all(is_alphanum) {
                return Err(format!(
                    "Invalid character(s) found in build meta data {}",
                    go_quote(b)
                ));
            }
            meta.push(b.to_string());
        }
        Ok(Version {
            major,
            minor,
            patch,
            pre,
            build: meta,
        })
    }

    /// Parses a tag leniently, as blang's `ParseTolerant` does.
    ///
    /// Image tags are rarely strict semver (`v1.2.3`, `1.31`, `01.02.03`); the original decided
    /// with this function which tags are versions, so `keep: latest n` and `semver:` filters
    /// select the same tags as before. It trims, strips one lowercase `v`, removes leading zeroes
    /// from each of the (at most three) dotted parts, and pads `1` / `1.31` with `.0`.
    ///
    /// # Errors
    ///
    /// When `s` is not a version even after the tolerant clean-up.
    pub fn parse_tolerant(s: &str) -> Result<Version, String> {
        let s = s.trim();
        let s = s.strip_prefix('v').unwrap_or(s);
        let mut parts: Vec<String> = s
            .splitn(3, '.')
            .map(|p| {
                if p.len() > 1 {
                    let stripped = p.trim_start_matches('0');
                    if stripped.as_bytes().first().is_some_and(u8::is_ascii_digit) {
                        stripped.to_string()
                    } else {
                        format!("0{stripped}")
                    }
                } else {
                    p.to_string()
                }
            })
            .collect();
        if parts.len() < 3 {
            if parts
                .last()
                .is_some_and(|p| p.contains('+') || p.contains('-'))
            {
                return Err("Short version cannot contain PreRelease/Build meta data".to_string());
            }
            while parts.len() < 3 {
                parts.push("0".to_string());
            }
        }
        Version::parse(&parts.join("."))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.major
            .cmp(&other.major)
            .then(self.minor.cmp(&other.minor))
            .then(self.patch.cmp(&other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                // A version without prerelease ranks above any of its prereleases.
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                // Element-wise, then more identifiers rank higher: exactly slice ordering.
                (false, false) => self.pre.cmp(&other.pre),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        for (i, p) in self.pre.iter().enumerate() {
            f.write_str(if i == 0 { "-" } else { "." })?;
            write!(f, "{p}")?;
        }
        for (i, b) in self.build.iter().enumerate() {
            f.write_str(if i == 0 { "+" } else { "." })?;
            f.write_str(b)?;
        }
        Ok(())
    }
}

/// Checks and converts a major, minor or patch number with blang's error texts.
fn parse_number(s: &str, lower: &str, title: &str) -> Result<u64, String> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "Invalid character(s) found in {lower} number {}",
            go_quote(s)
        ));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(format!(
            "{title} number must not contain leading zeroes {}",
            go_quote(s)
        ));
    }
    parse_uint(s)
}

/// One prerelease identifier, as blang's `NewPRVersion`.
fn parse_pre_id(s: &str) -> Result<PreId, String> {
    if s.is_empty() {
        return Err("Prerelease is empty".to_string());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        if s.len() > 1 && s.starts_with('0') {
            return Err(format!(
                "Numeric PreRelease version must not contain leading zeroes {}",
                go_quote(s)
            ));
        }
        return parse_uint(s).map(PreId::Numeric);
    }
    if s.chars().all(is_alphanum) {
        return Ok(PreId::Alpha(s.to_string()));
    }
    Err(format!(
        "Invalid character(s) found in prerelease {}",
        go_quote(s)
    ))
}

/// `strconv.ParseUint(s, 10, 64)` for a string already known to be ASCII digits, with Go's
/// error texts (only an empty string or an overflow can fail here).
fn parse_uint(s: &str) -> Result<u64, String> {
    if s.is_empty() {
        return Err(format!(
            "strconv.ParseUint: parsing {}: invalid syntax",
            go_quote(s)
        ));
    }
    s.parse::<u64>().map_err(|_| {
        format!(
            "strconv.ParseUint: parsing {}: value out of range",
            go_quote(s)
        )
    })
}

fn is_alphanum(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

/// Quotes a string like Go's `%q`, so error texts match the original's byte for byte.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            ' ' => out.push(' '),
            c if (c as u32) < 0x80 && (c.is_ascii_control()) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() || c.is_whitespace() || is_format_char(c) => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The common invisible format characters Go's `strconv.IsPrint` rejects (an approximation of
/// Unicode category Cf, which the standard library does not expose).
fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
    )
}

/// How one comparator relates a candidate version to its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    /// blang's `parseComparator`: every spelling it accepts, nothing else.
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "" | "=" | "==" => Op::Eq,
            "!" | "!=" => Op::Ne,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "<" => Op::Lt,
            "<=" => Op::Le,
            _ => return None,
        })
    }

    fn holds(self, ord: Ordering) -> bool {
        match self {
            Op::Eq => ord == Ordering::Equal,
            Op::Ne => ord != Ordering::Equal,
            Op::Gt => ord == Ordering::Greater,
            Op::Ge => ord != Ordering::Less,
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
        }
    }
}

/// One condition of an AND group.
#[derive(Debug, Clone)]
enum Comparator {
    Cmp(Op, Version),
    /// `v < below || v >= from`: our meaning of `!=1.2.x`.
    Outside {
        below: Version,
        from: Version,
    },
}

impl Comparator {
    fn matches(&self, v: &Version) -> bool {
        match self {
            Comparator::Cmp(op, bound) => op.holds(v.cmp(bound)),
            Comparator::Outside { below, from } => v < below || v >= from,
        }
    }
}

/// A parsed `semver:` filter: OR groups of AND-ed comparators.
///
/// Kept as data rather than closures (as blang does) so it can be printed and inspected when a
/// plan explains why a tag was selected.
#[derive(Debug, Clone)]
pub struct Range {
    source: String,
    groups: Vec<Vec<Comparator>>,
}

/// A comparator text after wildcard expansion, before it is parsed.
enum Expanded {
    Plain(String),
    /// The two halves blang would have AND-ed for `!=1.2.x`; we OR them.
    Outside(String, String),
}

impl Range {
    /// Parses a range expression exactly as blang's `ParseRange`, including its error texts.
    ///
    /// Comparators are `>`, `>=`, `<`, `<=`, `=`, `==`, `!`, `!=` or none (equal), each followed
    /// by a strict version; space separates AND-ed comparators (a space right after `>`, `<` or
    /// `=` is allowed), `||` separates OR groups, and `1.2.x` / `1.x` wildcards are expanded.
    ///
    /// # Errors
    ///
    /// When a comparator or its version is invalid; blang's error text.
    pub fn parse(s: &str) -> Result<Range, String> {
        let parts = split_and_trim(s);
        let or_parts = split_or_parts(&parts)?;
        // Like blang, expand every part before parsing any, so the first error reported is the
        // same as the original's (the expansion can fail on a part that contains an `x`).
        let mut expanded: Vec<Vec<Expanded>> = Vec::with_capacity(or_parts.len());
        for group in &or_parts {
            let mut parts = Vec::with_capacity(group.len());
            for p in group.iter() {
                parts.extend(expand_wildcard(p)?);
            }
            expanded.push(parts);
        }

        let mut groups = Vec::with_capacity(expanded.len());
        for group in expanded {
            let mut and = Vec::with_capacity(group.len());
            for part in group {
                match part {
                    Expanded::Plain(ap) => {
                        let (op, v) = build_comparator(&ap)?;
                        and.push(Comparator::Cmp(op, v));
                    }
                    Expanded::Outside(lo, hi) => {
                        let (_, below) = build_comparator(&lo)?;
                        let (_, from) = build_comparator(&hi)?;
                        and.push(Comparator::Outside { below, from });
                    }
                }
            }
            groups.push(and);
        }
        // `a || || b` parses in blang into a nil function that panics once a version reaches
        // it. Reject it, but only after every check blang makes, so its errors still come first.
        if groups.iter().any(Vec::is_empty) {
            return Err("Empty element in range between '||'".to_string());
        }
        Ok(Range {
            source: s.to_string(),
            groups,
        })
    }

    /// Whether `v` satisfies any OR group, i.e. every comparator of some group.
    pub fn matches(&self, v: &Version) -> bool {
        self.groups
            .iter()
            .any(|group| group.iter().all(|c| c.matches(v)))
    }

    /// The expression as written, for logs and plan explanations.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// Parses one expanded comparator text (`splitComparatorVersion` + `buildVersionRange`).
fn build_comparator(ap: &str) -> Result<(Op, Version), String> {
    let (op_str, v_str) = split_comparator_version(ap)?;
    let joined = format!("{op_str}{v_str}");
    let Some(op) = Op::parse(op_str) else {
        return Err(format!(
            "Could not parse Range {}: Could not parse comparator {} in {}",
            go_quote(ap),
            go_quote(op_str),
            go_quote(&joined)
        ));
    };
    let v = Version::parse(v_str).map_err(|e| {
        format!(
            "Could not parse Range {}: Could not parse version {} in {}: {e}",
            go_quote(ap),
            go_quote(v_str),
            go_quote(&joined)
        )
    })?;
    Ok((op, v))
}

/// blang's `splitAndTrim`: splits on spaces, except a space that follows `>`, `<` or `=`.
///
/// Ported byte for byte, including its quirk that a one-character part is dropped (which is why
/// an empty expression reports `Last element in range is '||'`).
fn split_and_trim(s: &str) -> Vec<String> {
    let bytes = s.as_bytes();
    let mut result = Vec::new();
    let mut last = 0usize;
    let mut last_char = 0u8;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b' ' && !matches!(last_char, b'>' | b'<' | b'=') {
            if last + 1 < i {
                result.push(&s[last..i]);
            }
            last = i + 1;
        } else if b != b' ' {
            last_char = b;
        }
    }
    if last + 1 < bytes.len() {
        result.push(&s[last..]);
    }
    result.into_iter().map(|p| p.replace(' ', "")).collect()
}

/// blang's `splitORParts`, with its error texts.
fn split_or_parts(parts: &[String]) -> Result<Vec<&[String]>, String> {
    let mut groups = Vec::new();
    let mut last = 0;
    for (i, p) in parts.iter().enumerate() {
        if p == "||" {
            if i == 0 {
                return Err("First element in range is '||'".to_string());
            }
            groups.push(&parts[last..i]);
            last = i + 1;
        }
    }
    if last == parts.len() {
        return Err("Last element in range is '||'".to_string());
    }
    groups.push(&parts[last..]);
    Ok(groups)
}

/// Go's `unicode.IsDigit` (category Nd), which blang uses to find where the version starts.
static DIGIT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\p{Nd}").expect("constant expression compiles"));

/// blang's `splitComparatorVersion`: the comparator is everything before the first digit.
fn split_comparator_version(s: &str) -> Result<(&str, &str), String> {
    match DIGIT.find(s) {
        Some(m) => Ok((s[..m.start()].trim(), &s[m.start()..])),
        None => Err(format!(
            "Could not get version from string: {}",
            go_quote(s)
        )),
    }
}

/// blang's `expandWildcardVersion` (v4.0.0) for one comparator text.
///
/// Ported literally, including its oddities, except for `!=` / `!` (see the module
/// documentation): any `x` anywhere triggers the rewrite, so `1.x.x` becomes `>=1.0.0 <1.1.0`,
/// an unknown comparator in front of a wildcard is silently dropped (`~1.2.x` is `1.2.0`), and a
/// comparator that needs an increment but has no wildcard (`>1.0.0-linux`, `1.0.0+x86`) loses its
/// version and fails to parse, while `>=1.0.0-linux` works.
fn expand_wildcard(ap: &str) -> Result<Vec<Expanded>, String> {
    if !ap.contains('x') {
        return Ok(vec![Expanded::Plain(ap.to_string())]);
    }
    let (op_str, v_str) = split_comparator_version(ap)?;
    let wildcard = wildcard_type(v_str);
    let flat = version_from_wildcard(v_str);
    let incremented = || match wildcard {
        Wildcard::Patch => increment_part(&flat, 1),
        Wildcard::Minor => increment_part(&flat, 0),
        Wildcard::None | Wildcard::Major => String::new(),
    };
    Ok(match op_str {
        ">" => vec![Expanded::Plain(format!(">={}", incremented()))],
        ">=" => vec![Expanded::Plain(format!(">={flat}"))],
        "<" => vec![Expanded::Plain(format!("<{flat}"))],
        "<=" => vec![Expanded::Plain(format!("<{}", incremented()))],
        "" | "=" | "==" => vec![
            Expanded::Plain(format!(">={flat}")),
            Expanded::Plain(format!("<{}", incremented())),
        ],
        "!=" | "!" => vec![Expanded::Outside(
            format!("<{flat}"),
            format!(">={}", incremented()),
        )],
        _ => vec![Expanded::Plain(flat)],
    })
}

enum Wildcard {
    None,
    Major,
    Minor,
    Patch,
}

/// blang's `getWildcardType`: which part the trailing `x` stands for, by the number of parts.
fn wildcard_type(v: &str) -> Wildcard {
    let parts: Vec<&str> = v.split('.').collect();
    if parts.last() != Some(&"x") {
        return Wildcard::None;
    }
    match parts.len() {
        1 => Wildcard::Major,
        2 => Wildcard::Minor,
        3 => Wildcard::Patch,
        _ => Wildcard::None,
    }
}

/// blang's `createVersionFromWildcard`: textual `x` → `0` replacement and padding.
fn version_from_wildcard(v: &str) -> String {
    let v = v.replacen(".x.x", ".x", 1).replacen(".x", ".0", 1);
    if v.split('.').count() == 2 {
        format!("{v}.0")
    } else {
        v
    }
}

/// blang's `incrementMajorVersion` / `incrementMinorVersion`: bumps part `index` textually.
/// Like blang, an unparsable part yields an empty string, which then fails to parse as a range.
fn increment_part(v: &str, index: usize) -> String {
    let mut parts: Vec<String> = v.split('.').map(str::to_string).collect();
    let Some(n) = parts.get(index).and_then(|p| go_atoi(p)) else {
        return String::new();
    };
    parts[index] = n.wrapping_add(1).to_string();
    parts.join(".")
}

/// Go's `strconv.Atoi`: optional sign, ASCII digits, 64-bit range.
fn go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn strict_parse_accepts() {
        let cases = [
            ("1.2.3", "1.2.3"),
            ("0.0.0", "0.0.0"),
            ("1.2.3-alpha.1", "1.2.3-alpha.1"),
            ("1.2.3-0.beta", "1.2.3-0.beta"),
            ("1.2.3+build.5", "1.2.3+build.5"),
            ("1.2.3-rc-1+b-2", "1.2.3-rc-1+b-2"),
            ("1.2.3+a-b", "1.2.3+a-b"),
            ("18446744073709551615.0.0", "18446744073709551615.0.0"),
        ];
        for (input, shown) in cases {
            assert_eq!(v(input).to_string(), shown, "{input}");
        }
        let plus_first = v("1.2.3+a-b");
        assert!(plus_first.pre.is_empty());
        assert_eq!(plus_first.build, ["a-b"]);
    }

    #[test]
    fn strict_parse_errors() {
        let cases = [
            ("", "Version string empty"),
            ("1.31", "No Major.Minor.Patch elements found"),
            ("1", "No Major.Minor.Patch elements found"),
            (
                "v1.0.0",
                r#"Invalid character(s) found in major number "v1""#,
            ),
            (
                "01.0.0",
                r#"Major number must not contain leading zeroes "01""#,
            ),
            ("1.a.0", r#"Invalid character(s) found in minor number "a""#),
            (
                "1.01.0",
                r#"Minor number must not contain leading zeroes "01""#,
            ),
            (
                "1.2.3.4",
                r#"Invalid character(s) found in patch number "3.4""#,
            ),
            (
                "1.2.3_x",
                r#"Invalid character(s) found in patch number "3_x""#,
            ),
            (
                "1.2.03",
                r#"Patch number must not contain leading zeroes "03""#,
            ),
            ("1.2.", r#"strconv.ParseUint: parsing "": invalid syntax"#),
            ("..1", r#"strconv.ParseUint: parsing "": invalid syntax"#),
            (
                "18446744073709551616.0.0",
                r#"strconv.ParseUint: parsing "18446744073709551616": value out of range"#,
            ),
            ("1.2.3-", "Prerelease is empty"),
            ("1.2.3-a..b", "Prerelease is empty"),
            (
                "1.2.3-01",
                r#"Numeric PreRelease version must not contain leading zeroes "01""#,
            ),
            (
                "1.2.3-a_b",
                r#"Invalid character(s) found in prerelease "a_b""#,
            ),
            ("1.2.3+", "Build meta data is empty"),
            (
                "1.2.3+a_b",
                r#"Invalid character(s) found in build meta data "a_b""#,
            ),
            (
                "1.2.3-\t",
                r#"Invalid character(s) found in prerelease "\t""#,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(Version::parse(input).expect_err(input), want, "{input}");
        }
    }

    #[test]
    fn tolerant_parse() {
        let ok = [
            ("1.31", "1.31.0"),
            ("1", "1.0.0"),
            ("v1.2.3", "1.2.3"),
            ("  v2.0.0 ", "2.0.0"),
            ("01.02.03", "1.2.3"),
            ("00.00.00", "0.0.0"),
            ("1.0.00-rc", "1.0.0-rc"),
            ("1.2.00-rc", "1.2.0-rc"),
            ("1.31.1-musl", "1.31.1-musl"),
            ("v2.1.0-alpine", "2.1.0-alpine"),
            ("1.0.0+build5", "1.0.0+build5"),
            ("0", "0.0.0"),
        ];
        for (input, want) in ok {
            let got = Version::parse_tolerant(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.to_string(), want, "{input}");
        }
        let errors = [
            // A part that does not start with a digit after zero-stripping gets a "0" in front.
            (
                "V3.0.0",
                r#"Invalid character(s) found in major number "0V3""#,
            ),
            (
                "vv1.0.0",
                r#"Invalid character(s) found in major number "0v1""#,
            ),
            (
                "1.2.3.4",
                r#"Invalid character(s) found in patch number "3.4""#,
            ),
            (
                "1.31-musl",
                "Short version cannot contain PreRelease/Build meta data",
            ),
            (
                "1+b",
                "Short version cannot contain PreRelease/Build meta data",
            ),
            (
                "latest",
                r#"Invalid character(s) found in major number "0latest""#,
            ),
            ("x", r#"Invalid character(s) found in major number "x""#),
            ("", r#"strconv.ParseUint: parsing "": invalid syntax"#),
            (
                "1.2.3_x",
                r#"Invalid character(s) found in patch number "3_x""#,
            ),
        ];
        for (input, want) in errors {
            assert_eq!(
                Version::parse_tolerant(input).expect_err(input),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn precedence() {
        // Each is strictly below the next (semver.org's example plus dregsy's tag shapes).
        let ascending = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.31.0-glibc",
            "1.31.0-musl",
            "1.31.0",
            "1.31.1-uclibc",
            "1.31.1",
            "2.0.0",
            "10.0.0",
        ];
        for pair in ascending.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(v("1.0.0+a"), v("1.0.0+b"));
        assert_eq!(v("1.0.0+a").cmp(&v("1.0.0")), Ordering::Equal);
        assert!(v("1.0.0-2") < v("1.0.0-10"));
        assert!(v("1.0.0-10") < v("1.0.0-9a"));
        assert!(v("1.0.0-B") < v("1.0.0-a"));
    }

    /// (range, version, expected) for ranges that parse.
    const MATCHES: &[(&str, &str, bool)] = &[
        (">=1.31.0 <1.31.9", "1.31.0", true),
        (">=1.31.0 <1.31.9", "1.31.0-musl", false),
        (">=1.31.0 <1.31.9", "1.31.1-musl", true),
        (">=1.31.0 <1.31.9", "1.31.9", false),
        ("1.0.0", "1.0.0", true),
        ("1.0.0", "1.0.0+b", true),
        ("=1.0.0", "1.0.0", true),
        ("==1.0.0", "1.0.1", false),
        ("!1.0.0", "1.0.0", false),
        ("!=1.0.0", "1.0.1", true),
        (">1.0.0", "1.0.0", false),
        (">1.0.0", "1.0.1-0", true),
        ("<1.0.0", "1.0.0-rc", true),
        ("<=1.0.0", "1.0.0", true),
        ("> 1.0.0", "1.0.1", true),
        (">=  1.0.0", "1.0.0", true),
        ("  >=1.0.0   <2.0.0  ", "1.5.0", true),
        ("<1.0.0 || >=1.36.1", "0.9.0", true),
        ("<1.0.0 || >=1.36.1", "1.36.0", false),
        ("<1.0.0 || >=1.36.1", "2.0.0", true),
        (">1.0.0 <2.0.0 || >3.0.0 !4.2.1", "1.2.3", true),
        (">1.0.0 <2.0.0 || >3.0.0 !4.2.1", "4.2.1", false),
        (">1.0.0 <2.0.0 || >3.0.0 !4.2.1", "2.1.1", false),
        (">1.0.0 <2.0.0 || >3.0.0 !4.2.1", "3.1.1", true),
        (">=1.36.0-0", "1.36.0-musl", true),
        (">=1.36.0-0", "1.35.9", false),
        // Prereleases are not excluded (unlike npm / the semver crate).
        (">=1.0.0 <2.0.0", "1.5.0-alpha", true),
        // Wildcards.
        ("1.2.x", "1.2.0", true),
        ("1.2.x", "1.2.99", true),
        ("1.2.x", "1.3.0", false),
        ("1.2.x", "1.2.0-rc", false),
        ("=1.2.x", "1.2.5", true),
        ("==1.2.x", "1.3.0", false),
        (">1.2.x", "1.3.0", true),
        (">1.2.x", "1.2.9", false),
        (">=1.2.x", "1.2.0", true),
        ("<1.2.x", "1.1.9", true),
        ("<1.2.x", "1.2.0", false),
        ("<=1.2.x", "1.2.9", true),
        ("<=1.2.x", "1.3.0", false),
        ("1.x", "1.9.9", true),
        ("1.x", "2.0.0", false),
        (">1.x", "2.0.0", true),
        (">1.x", "1.9.0", false),
        ("<=1.x", "1.99.0", true),
        ("<=1.x", "2.0.0", false),
        // blang quirk: `1.x.x` is treated as a patch wildcard of `1.0`.
        ("1.x.x", "1.0.5", true),
        ("1.x.x", "1.1.0", false),
        // blang quirk: an unknown comparator before a wildcard is dropped (`~1.2.x` = `1.2.0`).
        ("~1.2.x", "1.2.0", true),
        ("~1.2.x", "1.2.1", false),
        // blang v4.0.0 quirk: an `x` that is not a wildcard only survives where no increment is
        // needed.
        (">=1.0.0-linux", "1.0.0-musl", true),
        (">=1.0.0-linux", "1.0.0-glibc", false),
        ("<1.0.0-linux", "1.0.0-glibc", true),
        // Our one deviation: `!=1.2.x` means outside 1.2.x (blang: never matches).
        ("!=1.2.x", "1.1.9", true),
        ("!=1.2.x", "1.2.0", false),
        ("!=1.2.x", "1.2.9", false),
        ("!=1.2.x", "1.3.0", true),
        ("!1.2.x", "2.0.0", true),
        ("!1.x", "1.5.0", false),
        ("!1.x", "0.9.0", true),
        ("!1.x", "2.0.0", true),
        ("!=1.2.x >=1.0.0", "0.9.0", false),
        ("!=1.2.x >=1.0.0", "1.1.0", true),
    ];

    #[test]
    fn range_matching_table() {
        for &(range, version, want) in MATCHES {
            let r = Range::parse(range).unwrap_or_else(|e| panic!("{range}: {e}"));
            assert_eq!(r.matches(&v(version)), want, "{range} vs {version}");
        }
    }

    #[test]
    fn range_errors() {
        let cases = [
            (
                ">=1.31",
                r#"Could not parse Range ">=1.31": Could not parse version "1.31" in ">=1.31": No Major.Minor.Patch elements found"#,
            ),
            (
                ">=v1.0.0",
                r#"Could not parse Range ">=v1.0.0": Could not parse comparator ">=v" in ">=v1.0.0""#,
            ),
            (
                ">=1.0.0 >=1.31",
                r#"Could not parse Range ">=1.31": Could not parse version "1.31" in ">=1.31": No Major.Minor.Patch elements found"#,
            ),
            (
                "~1.0.0",
                r#"Could not parse Range "~1.0.0": Could not parse comparator "~" in "~1.0.0""#,
            ),
            (
                "^1.0.0",
                r#"Could not parse Range "^1.0.0": Could not parse comparator "^" in "^1.0.0""#,
            ),
            (
                "=>1.0.0",
                r#"Could not parse Range "=>1.0.0": Could not parse comparator "=>" in "=>1.0.0""#,
            ),
            (
                "1.0.0,2.0.0",
                r#"Could not parse Range "1.0.0,2.0.0": Could not parse version "1.0.0,2.0.0" in "1.0.0,2.0.0": Invalid character(s) found in patch number "0,2.0.0""#,
            ),
            (
                ">=1.0.0\t<2.0.0",
                r#"Could not parse Range ">=1.0.0\t<2.0.0": Could not parse version "1.0.0\t<2.0.0" in ">=1.0.0\t<2.0.0": Invalid character(s) found in patch number "0\t<2.0.0""#,
            ),
            ("", "Last element in range is '||'"),
            ("   ", "Last element in range is '||'"),
            ("1", "Last element in range is '||'"),
            (">=1.0.0 ||", "Last element in range is '||'"),
            ("|| >=1.0.0", "First element in range is '||'"),
            (
                ">=1.0.0 || || <2.0.0",
                "Empty element in range between '||'",
            ),
            // blang's own errors take precedence over the empty group.
            ("<=1.0.0 || || 1", "Last element in range is '||'"),
            (
                "v1.0.0 || || 1.0.0",
                r#"Could not parse Range "v1.0.0": Could not parse comparator "v" in "v1.0.0""#,
            ),
            ("latest", r#"Could not get version from string: "latest""#),
            // Only parts containing an `x` are looked at before parsing starts.
            (
                ">=1.31 abc",
                r#"Could not parse Range ">=1.31": Could not parse version "1.31" in ">=1.31": No Major.Minor.Patch elements found"#,
            ),
            (">=1.31 xyz", r#"Could not get version from string: "xyz""#),
            // Any `x` triggers the wildcard rewrite; without a wildcard part nothing is
            // incremented and the version is lost.
            (">1.0.0-linux", r#"Could not get version from string: ">=""#),
            ("1.0.0+x86", r#"Could not get version from string: "<""#),
            (
                "<=1.0.0-xenial",
                r#"Could not get version from string: "<""#,
            ),
            (
                "!=1.0.0-linux",
                r#"Could not get version from string: ">=""#,
            ),
            // The minor part `2-x` cannot be incremented; blang's empty result then fails.
            (">1.2-x.x", r#"Could not get version from string: ">=""#),
            (
                "1.2.3.x",
                r#"Could not parse Range ">=1.2.3.0": Could not parse version "1.2.3.0" in ">=1.2.3.0": Invalid character(s) found in patch number "3.0""#,
            ),
            (
                "!=1.x.y",
                r#"Could not parse Range "<1.0.y": Could not parse version "1.0.y" in "<1.0.y": Invalid character(s) found in patch number "y""#,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(Range::parse(input).expect_err(input), want, "{input}");
        }
    }

    #[test]
    fn split_and_trim_port() {
        assert_eq!(split_and_trim(">=1.0.0 <2.0.0"), [">=1.0.0", "<2.0.0"]);
        assert_eq!(split_and_trim("> 1.0.0"), [">1.0.0"]);
        assert_eq!(split_and_trim("  a  bb  "), ["bb"]);
        assert_eq!(split_and_trim("1.0.0 || 2.0.0"), ["1.0.0", "||", "2.0.0"]);
        assert!(split_and_trim("").is_empty());
    }

    #[test]
    fn non_ascii_digits_start_the_version_as_in_go() {
        // unicode.IsDigit accepts U+0663; the version part then fails strict parsing.
        assert_eq!(
            Range::parse(">=\u{663}").expect_err("bad"),
            "Could not parse Range \">=\u{663}\": Could not parse version \"\u{663}\" in \">=\u{663}\": No Major.Minor.Patch elements found"
        );
    }

    #[test]
    fn go_quote_escapes() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\u{1}\u{7f}"), r#""\x01\x7f""#);
        assert_eq!(go_quote("\u{a0}é"), "\"\\u00a0é\"");
    }

    #[test]
    fn go_atoi_port() {
        assert_eq!(go_atoi("12"), Some(12));
        assert_eq!(go_atoi("+3"), Some(3));
        assert_eq!(go_atoi("-3"), Some(-3));
        assert_eq!(go_atoi("-"), None);
        assert_eq!(go_atoi("1-a"), None);
        assert_eq!(go_atoi("99999999999999999999"), None);
        assert_eq!(increment_part("1.2.0", 1), "1.3.0");
        assert_eq!(
            increment_part("9223372036854775807.0.0", 0),
            "-9223372036854775808.0.0"
        );
    }
}
