//! The `tags` list of a mapping: which tags of a source repository get synced.
//!
//! Entries are classified as the original did: `semver:` ranges and `regex:` filters select from
//! the source's tag list, `keep:` regexes prune what was selected, `keep: latest n` limits the
//! count, and everything else is a verbatim tag. Where the original was non-deterministic or
//! synced a tag twice we are deterministic and de-duplicate, and regexes match the whole tag
//! (docs/behaviour.md#tag-filters).
//!
//! Expansion also records why each listed tag was left out, so a plan can explain itself.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::Regex;

use super::pattern::Pattern;
use super::semver::{Range, Version};

const SEMVER_PREFIX: &str = "semver:";
const REGEX_PREFIX: &str = "regex:";
const KEEP_PREFIX: &str = "keep:";

/// The filter words, for the hint on a misspelt prefix (`semvr:`).
const FILTER_WORDS: [&str; 3] = ["semver", "regex", "keep"];

/// Checks that an entry that is no filter can be copied: a tag, a digest or `tag@digest`
/// (docs/behaviour.md#tag-filters). The original took anything as a verbatim tag, so a
/// misspelt filter (`semvr: >=1.2.0`) only failed when it was copied; here it is refused when
/// the list is parsed, with the filter it probably meant.
///
/// # Errors
///
/// When the entry forms no reference: what it is not, and "did you mean" when its first word
/// is close to a filter prefix.
fn verbatim_reference(entry: &str) -> Result<(), String> {
    let Err(cause) = super::references_of(entry) else {
        return Ok(());
    };
    if entry.is_empty() {
        return Err("an empty entry is not a tag: remove it, or name the tag".into());
    }
    let hint = misspelt_prefix(entry)
        .map(|word| format!("; did you mean '{word}:'?"))
        .unwrap_or_default();
    // For what looks like a digest, the digest's own problem (wrong length, bad hex) is the
    // useful part; for anything else, what an entry may be.
    if hint.is_empty() && (entry.contains('@') || entry.starts_with("sha256:")) {
        return Err(format!("not a tag or digest: {cause}"));
    }
    Err(format!(
        "neither a tag (1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or \
         '-'), a digest ('sha256:<hex>', 'tag@sha256:<hex>') nor a filter ('semver: RANGE', \
         'regex: RE', 'keep: RE', 'keep: latest N'){hint}"
    ))
}

/// The filter word an entry's first word is probably a misspelling of: `semvr: …`,
/// `Semver: …`, `regx: …`, `keep …`. The first word is the leading run of letters.
fn misspelt_prefix(entry: &str) -> Option<&'static str> {
    let end = entry
        .find(|c: char| !c.is_alphabetic())
        .unwrap_or(entry.len());
    let word = entry[..end].to_lowercase();
    if word.len() < 2 {
        return None;
    }
    FILTER_WORDS
        .iter()
        .map(|w| (crate::spelling::edit_distance(&word, w), *w))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, w)| w)
}

/// The original's test for a keep-count entry; `[[:space:]]` and `[[:digit:]]` are ASCII classes
/// in both engines.
static KEEP_COUNT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^keep:[[:space:]]+latest[[:space:]]+[[:digit:]]+$")
        .expect("constant expression compiles")
});

/// The reason recorded for a listed tag that no `semver:` / `regex:` filter selected, when there
/// is more than one such filter (with a single one, its entry is named instead).
pub const NO_FILTER_MATCHED: &str = "no filter matched";

/// A parsed `tags` list.
///
/// Every filter keeps the entry text it came from, so an explanation can quote the user's own
/// words ("dropped by `keep: latest 3`").
#[derive(Debug, Clone, Default)]
pub struct TagSet {
    verbatim: Vec<String>,
    semver: Vec<(String, Range)>,
    regex: Vec<(String, Pattern)>,
    keep: Vec<(String, Pattern)>,
    /// The last `keep: latest n` entry and its `n`; `0` means no limit.
    keep_count: Option<(String, usize)>,
    /// Entries that are valid but probably not what their author meant, each with why.
    warnings: Vec<EntryWarning>,
}

/// An entry of a `tags` list that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError {
    /// Position in the list, from 0.
    pub index: usize,
    /// The entry as written (trimmed).
    pub entry: String,
    /// The bare cause, e.g. `invalid keep count: keep: latest\t3`.
    pub reason: String,
}

/// A valid entry that is read differently from how it looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryWarning {
    /// Position in the list, from 0.
    pub index: usize,
    /// How the entry is read, and what to write instead.
    pub message: String,
}

/// Every bad entry of a `tags` list, for one message that names them all.
pub fn describe_errors(errors: &[EntryError], lines: Option<&[usize]>) -> String {
    let parts: Vec<String> = errors
        .iter()
        .map(|e| {
            let line = lines
                .and_then(|l| l.get(e.index))
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default();
            format!(
                "entry #{} '{}'{line}: {}",
                e.index + 1,
                e.entry.escape_debug(),
                e.reason
            )
        })
        .collect();
    match parts.as_slice() {
        [one] => one.clone(),
        _ => format!("{} invalid entries: {}", parts.len(), parts.join("; ")),
    }
}

/// The outcome of expanding a tag set against a source repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The tags to sync, byte-sorted ascending and without duplicates.
    pub tags: Vec<String>,
    /// Every listed tag that is not in `tags`, byte-sorted by tag, with the reason.
    pub dropped: Vec<Dropped>,
    /// Where the result was decided by something the user may not expect: digit-only tags
    /// (`20240115`) read as huge versions by `semver:` or `keep: latest N`, as in the original.
    pub warnings: Vec<String>,
}

/// A listed tag that expansion left out, and the entry responsible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The tag as the source listed it.
    pub tag: String,
    /// The `tags` entry that dropped it as written (trimmed), e.g. `keep: latest 3` or
    /// `semver: >=1.2.0`, or [`NO_FILTER_MATCHED`] when several selecting filters all passed.
    pub by: String,
}

impl TagSet {
    /// Parses a mapping's `tags` entries in the original's rule order.
    ///
    /// Each entry is trimmed, then: `semver:` → range, `regex:` → filter, `keep: latest n`
    /// (whitespace-separated, see below) → count limit (the last one wins), other `keep:` → prune
    /// filter, anything else → verbatim tag (including `""` and wrong-case prefixes such as
    /// `Semver:`). The error is the bare cause; the caller adds `'tags' uses invalid format: `.
    ///
    /// A keep count is recognised with any ASCII whitespace but split on single spaces, as the
    /// original did, so tabs between `latest` and the number give `invalid keep count: <entry>`.
    ///
    /// # Errors
    ///
    /// When an entry is not a valid filter (a bad regex, semver range or keep count).
    pub fn parse(entries: &[String]) -> Result<TagSet, String> {
        TagSet::parse_entries(entries).map_err(|errors| describe_errors(&errors, None))
    }

    /// Like [`parse`](Self::parse), but reports every bad entry, each with its position, so
    /// the caller can point at each one.
    ///
    /// # Errors
    /// Every entry that cannot be used (a bad semver range or regex, an invalid keep count),
    /// in list order.
    pub fn parse_entries(entries: &[String]) -> Result<TagSet, Vec<EntryError>> {
        let mut set = TagSet::default();
        let mut errors = Vec::new();
        for (index, raw) in entries.iter().enumerate() {
            let entry = raw.trim();
            if let Err(reason) = set.add(index, entry) {
                errors.push(EntryError {
                    index,
                    entry: entry.to_string(),
                    reason,
                });
            }
        }
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(errors)
        }
    }

    /// Classifies one trimmed entry into the set.
    fn add(&mut self, index: usize, entry: &str) -> Result<(), String> {
        if let Some(rest) = entry.strip_prefix(SEMVER_PREFIX) {
            self.semver.push((entry.to_string(), Range::parse(rest)?));
        } else if let Some(rest) = entry.strip_prefix(REGEX_PREFIX) {
            self.regex.push((entry.to_string(), Pattern::new(rest)?));
        } else if let Some(rest) = entry.strip_prefix(KEEP_PREFIX) {
            if KEEP_COUNT.is_match(entry) {
                let count = entry
                    .split(' ')
                    .next_back()
                    .and_then(|n| n.parse::<i64>().ok())
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| format!("invalid keep count: {entry}"))?;
                self.keep_count = Some((entry.to_string(), count));
            } else {
                let pattern = Pattern::new(rest)?;
                if looks_like_keep_count(rest) {
                    self.warnings.push(EntryWarning {
                        index,
                        message: format!(
                            "'{entry}' is not a keep count (that is 'keep: latest N', with a \
                             space after 'keep:' and a whole number N): as in the original, it \
                             is read as a keep regex, so only a tag named exactly '{}' is kept \
                             and every other listed tag is dropped",
                            pattern.as_str()
                        ),
                    });
                }
                self.keep.push((entry.to_string(), pattern));
            }
        } else {
            verbatim_reference(entry)?;
            self.verbatim.push(entry.to_string());
        }
        Ok(())
    }

    /// Entries that are valid but read differently from how they look (`keep: latest x`).
    pub fn warnings(&self) -> &[EntryWarning] {
        &self.warnings
    }

    /// Whether expansion needs the source's tag list.
    ///
    /// True when there are filters to apply, or when nothing selects tags at all (an omitted
    /// list, or only `keep:` entries, means "all tags"). A list of verbatim tags alone is never
    /// checked against the source, as in the original.
    pub fn needs_listing(&self) -> bool {
        self.selects_nothing() || !self.semver.is_empty() || !self.regex.is_empty()
    }

    /// Computes the final tag list from the source's tags (`listed`, ignored unless
    /// [`needs_listing`](Self::needs_listing); `None` there counts as an empty listing).
    ///
    /// Listed tags are selected by any `semver:` / `regex:` filter (or all of them, if there is
    /// none), then pruned by every `keep:` regex; verbatim tags are added unpruned; then
    /// `keep: latest n` keeps all non-version tags plus the `n` highest versions (or, without any
    /// version, the `n` greatest strings). Equal versions are ranked longer tag first, then
    /// byte-greater, so the result does not depend on listing order.
    pub fn expand(&self, listed: Option<&[String]>) -> Expansion {
        let mut dropped: BTreeMap<String, String> = BTreeMap::new();
        let mut selected: BTreeSet<String> = BTreeSet::new();

        if self.needs_listing() {
            let filtering = !self.semver.is_empty() || !self.regex.is_empty();
            for tag in listed.unwrap_or_default() {
                if selected.contains(tag) || dropped.contains_key(tag) {
                    continue;
                }
                if filtering && !self.selects(tag) {
                    dropped.insert(tag.clone(), self.no_match_reason());
                } else if let Some((entry, _)) = self.keep.iter().find(|(_, k)| !k.matches(tag)) {
                    dropped.insert(tag.clone(), entry.clone());
                } else {
                    selected.insert(tag.clone());
                }
            }
        }

        for tag in &self.verbatim {
            dropped.remove(tag);
            selected.insert(tag.clone());
        }

        let mut warnings = Vec::new();
        if let Some(warning) = self.digit_only_selected(&selected) {
            warnings.push(warning);
        }
        let tags = match &self.keep_count {
            Some((entry, n)) if *n > 0 => {
                let (kept, cut) = keep_latest(selected, *n);
                if let Some(warning) = digit_only_kept(entry, &kept, &cut) {
                    warnings.push(warning);
                }
                for tag in cut {
                    dropped.insert(tag, entry.clone());
                }
                kept
            }
            _ => selected.into_iter().collect(),
        };

        Expansion {
            tags,
            dropped: dropped
                .into_iter()
                .map(|(tag, by)| Dropped { tag, by })
                .collect(),
            warnings,
        }
    }

    /// A warning when `semver:` ranges selected digit-only tags, which count as versions
    /// `N.0.0` (the original's tolerant parsing): `20240115` is "version 20240115.0.0" and
    /// passes `>=1.0.0`.
    fn digit_only_selected(&self, selected: &BTreeSet<String>) -> Option<String> {
        let mut by_entry: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for tag in selected.iter().filter(|t| is_digit_only(t)) {
            // A regex that selects the tag decides it, not the version reading.
            if self.regex.iter().any(|(_, p)| p.matches(tag)) {
                continue;
            }
            let Ok(version) = Version::parse_tolerant(tag) else {
                continue;
            };
            if let Some((entry, _)) = self.semver.iter().find(|(_, r)| r.matches(&version)) {
                by_entry.entry(entry).or_default().push(tag);
            }
        }
        if by_entry.is_empty() {
            return None;
        }
        let parts: Vec<String> = by_entry
            .iter()
            .map(|(entry, tags)| format!("'{entry}' selected {}", list_versions(tags)))
            .collect();
        Some(format!(
            "digit-only tags count as major versions under semver, as in the original: {}; \
             add a 'keep:' regex (e.g. 'keep: !\\d+') to leave them out",
            parts.join("; ")
        ))
    }

    /// The original's `IsEmpty`: keep filters do not count as selecting anything.
    fn selects_nothing(&self) -> bool {
        self.verbatim.is_empty() && self.semver.is_empty() && self.regex.is_empty()
    }

    /// Whether any `semver:` range or `regex:` filter selects `tag`.
    fn selects(&self, tag: &str) -> bool {
        let by_semver = !self.semver.is_empty()
            && Version::parse_tolerant(tag)
                .is_ok_and(|v| self.semver.iter().any(|(_, r)| r.matches(&v)));
        by_semver || self.regex.iter().any(|(_, p)| p.matches(tag))
    }

    fn no_match_reason(&self) -> String {
        let mut entries = self
            .semver
            .iter()
            .map(|(e, _)| e)
            .chain(self.regex.iter().map(|(e, _)| e));
        match (entries.next(), entries.next()) {
            (Some(only), None) => only.clone(),
            _ => NO_FILTER_MATCHED.to_string(),
        }
    }
}

/// Whether a tag is all ASCII digits: a date or a build number, which semver reads as a
/// (huge) major version.
fn is_digit_only(tag: &str) -> bool {
    !tag.is_empty() && tag.bytes().all(|b| b.is_ascii_digit())
}

/// `20240115 (as 20240115.0.0), …`
fn list_versions(tags: &[&str]) -> String {
    tags.iter()
        .map(|t| match Version::parse_tolerant(t) {
            Ok(v) => format!("{t} (as version {v})"),
            Err(_) => t.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A warning when `keep: latest N` kept a digit-only tag while it cut a real version: the
/// digit-only tag won only because it reads as a huge major version.
fn digit_only_kept(entry: &str, kept: &[String], cut: &[String]) -> Option<String> {
    let kept_digits: Vec<&str> = kept
        .iter()
        .map(String::as_str)
        .filter(|t| is_digit_only(t) && Version::parse_tolerant(t).is_ok())
        .collect();
    let mut cut_versions: Vec<&str> = cut
        .iter()
        .map(String::as_str)
        .filter(|t| !is_digit_only(t) && Version::parse_tolerant(t).is_ok())
        .collect();
    if kept_digits.is_empty() || cut_versions.is_empty() {
        return None;
    }
    cut_versions.sort_unstable();
    Some(format!(
        "'{entry}' kept digit-only tags {} as the highest versions and dropped {}: digit-only \
         tags count as major versions, as in the original; add a 'keep:' regex (e.g. \
         'keep: !\\d+') to leave them out",
        list_versions(&kept_digits),
        cut_versions.join(", ")
    ))
}

/// Whether the text after `keep:` reads like a keep count that is not one (`latest x`,
/// `latest 3` without the space after the colon).
fn looks_like_keep_count(rest: &str) -> bool {
    rest.trim()
        .strip_prefix("latest")
        .is_some_and(|after| after.starts_with(char::is_whitespace))
}

/// `keep: latest n` (the original's `reduce`), with deterministic ties: longer tag, then
/// byte-greater (docs/behaviour.md#tag-filters).
///
/// Returns the kept tags byte-sorted ascending, and the cut ones.
fn keep_latest(tags: BTreeSet<String>, n: usize) -> (Vec<String>, Vec<String>) {
    let total = tags.len();
    let mut versions: Vec<(Version, String)> = Vec::new();
    let mut others: Vec<String> = Vec::new();
    for tag in tags {
        match Version::parse_tolerant(&tag) {
            Ok(v) => versions.push((v, tag)),
            Err(_) => others.push(tag),
        }
    }

    let mut cut = Vec::new();
    if !versions.is_empty() && others.len().saturating_add(n) < total {
        versions.sort_by(|(va, ta), (vb, tb)| {
            vb.cmp(va)
                .then(tb.len().cmp(&ta.len()))
                .then(tb.as_bytes().cmp(ta.as_bytes()))
        });
        cut.extend(versions.split_off(n).into_iter().map(|(_, t)| t));
    } else if versions.is_empty() && n < total {
        // `others` is still in ascending byte order: keep the n greatest strings.
        let rest = others.split_off(total - n);
        cut = std::mem::replace(&mut others, rest);
    }

    let mut kept: Vec<String> = others
        .into_iter()
        .chain(versions.into_iter().map(|(_, t)| t))
        .collect();
    kept.sort();
    (kept, cut)
}

/// One entry of an expanded tag list, split into what is pulled and what is pushed.
///
/// A tag may pin a digest (`1.0@sha256:…`): then the digest is pulled, so the copy is exactly
/// that image, and the name is pushed, so the target gets a readable tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagRef {
    /// A plain tag, also `""` (which gives the broken refs `src:` / `trgt:`, as in the original).
    Tag(String),
    /// A bare digest, pulled and pushed by digest (the target image stays untagged).
    Digest(String),
    /// A tag pinned to a digest.
    TagAtDigest {
        /// Pushed to the target.
        tag: String,
        /// Pulled from the source.
        digest: String,
    },
}

impl TagRef {
    /// Splits an expanded tag as the original's `util.SplitTag` did.
    ///
    /// A leading `:` is dropped; without `@`, the value is a digest if it starts with `sha256:`
    /// (no further format check) and a tag otherwise; with `@`, the part before is the tag and
    /// the part after (up to any further `@`) the digest, whatever its form. An empty side falls
    /// back to the other form.
    pub fn parse(s: &str) -> TagRef {
        let s = s.strip_prefix(':').unwrap_or(s);
        let mut parts = s.split('@');
        let name = parts.next().unwrap_or_default();
        match parts.next() {
            None if name.starts_with("sha256:") => TagRef::Digest(name.to_string()),
            None | Some("") => TagRef::Tag(name.to_string()),
            Some(digest) if name.is_empty() => TagRef::Digest(digest.to_string()),
            Some(digest) => TagRef::TagAtDigest {
                tag: name.to_string(),
                digest: digest.to_string(),
            },
        }
    }

    /// What to append to the source repository reference: `:tag`, or `@digest` whenever a
    /// digest is known.
    pub fn source_suffix(&self) -> String {
        match self {
            TagRef::Tag(tag) => format!(":{tag}"),
            TagRef::Digest(digest) | TagRef::TagAtDigest { digest, .. } => format!("@{digest}"),
        }
    }

    /// What to append to the target repository reference: `:tag` whenever a tag is known,
    /// `@digest` for a bare digest.
    pub fn target_suffix(&self) -> String {
        match self {
            TagRef::Tag(tag) | TagRef::TagAtDigest { tag, .. } => format!(":{tag}"),
            TagRef::Digest(digest) => format!("@{digest}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The source tag list **L** of the original's tag-filter table (rows 1-25 below), one tag
    /// a line (the end-to-end scenarios of tests/tag_sets.rs read it too).
    fn spec_list() -> Vec<&'static str> {
        include_str!("../../tests/fixtures/tags/spec-4.4-list.txt")
            .lines()
            .collect()
    }

    const D1: &str = "sha256:1d8a0000000000000000000000000000000000000000000000000000000073ea";
    const D2: &str =
        "1.35.0-uclibc@sha256:ff4a000000000000000000000000000000000000000000000000000000009289";

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn tag_set(filters: &[&str]) -> TagSet {
        TagSet::parse(&strings(filters)).unwrap_or_else(|e| panic!("{filters:?}: {e}"))
    }

    /// Expands `filters` against `source`; also returns whether the source was listed.
    fn expand(source: &[&str], filters: &[&str]) -> (Vec<String>, bool) {
        let set = tag_set(filters);
        let listed = strings(source);
        (set.expand(Some(&listed)).tags, set.needs_listing())
    }

    fn sorted(mut v: Vec<&str>) -> Vec<&str> {
        v.sort();
        v
    }

    const R3: &[&str] = &[
        "1.31",
        "1.31.0",
        "1.31.1",
        "1.31.1-glibc",
        "1.31.1-musl",
        "1.31.1-uclibc",
    ];

    /// (row number, source tags, `tags` entries, whether the source is listed, output).
    type Row<'a> = (u32, &'a [&'a str], Vec<&'a str>, bool, Vec<&'a str>);

    #[test]
    fn spec_table_rows_1_to_25() {
        let list = spec_list();
        let l = list.as_slice();
        let row4: Vec<&str> = R3.iter().copied().chain(["latest"]).collect();
        let row22: Vec<&str> = sorted(
            l.iter()
                .copied()
                .filter(|t| {
                    !(t.ends_with("-musl") || t.ends_with("-glibc") || t.ends_with("-uclibc"))
                })
                .collect(),
        );
        assert_eq!(row22.len(), 19);
        let row1 = vec![
            "01.02.03",
            "1",
            "1.0.0+build5",
            "1.2.3.4",
            "1.26.1-glibc",
            "1.26.1-musl",
            "1.26.1-uclibc",
            "1.31",
            "1.31.0",
            "1.31.0-glibc",
            "1.31.0-musl",
            "1.31.1",
            "1.31.1-glibc",
            "1.31.1-musl",
            "1.31.1-uclibc",
            "1.32.0",
            "1.36",
            "1.36.0",
            "1.36.0-glibc",
            "1.36.0-musl",
            "1.36.0-uclibc",
            "1.36.1",
            "2.1.0-buster",
            "V3.0.0",
            "glibc",
            "latest",
            "musl",
            "stable",
            "v2.0.0",
            "v2.1.0-alpine",
        ];
        assert_eq!(row1.len(), 30);

        #[rustfmt::skip]
        let rows: Vec<Row> = vec![
            (1, l, vec![], true, row1),
            (2, l, vec!["1.29.4", "latest"], false, vec!["1.29.4", "latest"]),
            (3, l, vec!["semver: >=1.31.0 <1.31.9"], true, R3.to_vec()),
            (4, l, vec!["semver: >=1.31.0 <1.31.9", "latest"], true, row4),
            (5, l, vec!["semver: >=1.31.0 <1.31.9", "keep: .+(glibc|musl)"], true,
                vec!["1.31.1-glibc", "1.31.1-musl"]),
            (6, l, vec![r"regex: 1\.26\.1-(glibc|uclibc|musl)"], true,
                vec!["1.26.1-glibc", "1.26.1-musl", "1.26.1-uclibc"]),
            (7, &["1.26.1-musl", "1.26.1-glibc", "1.26.1-uclibc"], vec!["regex: !.+(glibc|musl)"], true,
                vec!["1.26.1-uclibc"]),
            (8, l, vec![r"regex: 1\.36"], true, vec!["1.36"]),
            (9, l, vec!["semver: >=2.0.0"], true, vec!["2.1.0-buster", "v2.0.0", "v2.1.0-alpine"]),
            (10, l, vec!["semver: 1.31.x"], true, R3.to_vec()),
            (11, l, vec!["semver: <1.0.0 || >=1.36.1"], true,
                vec!["1.36.1", "2.1.0-buster", "v2.0.0", "v2.1.0-alpine"]),
            // Rows 12 and 13 are parse errors: see `spec_table_error_rows`.
            (14, l, vec!["keep: latest 3"], true,
                vec!["1.2.3.4", "2.1.0-buster", "V3.0.0", "glibc", "latest", "musl", "stable", "v2.0.0", "v2.1.0-alpine"]),
            (15, l, vec!["glibc", "semver: >=1.33.0 <=1.36.0", "keep: latest 5"], true,
                vec!["1.36", "1.36.0", "1.36.0-glibc", "1.36.0-musl", "1.36.0-uclibc", "glibc"]),
            (16, l, vec!["3.0.0", "1.0.0", "2.0.0", "keep: latest 2"], false, vec!["2.0.0", "3.0.0"]),
            (17, l, vec!["stable", "testing", "qa", "keep: latest 2"], false, vec!["stable", "testing"]),
            // The original gave `latest latest`; we remove the duplicate.
            (18, l, vec!["latest", "regex: lat.*"], true, vec!["latest"]),
            (19, l, vec![D1, D2, "keep: all.+"], false, vec![D2, D1]),
            (20, l, vec!["keep: .*-musl"], true,
                vec!["1.26.1-musl", "1.31.0-musl", "1.31.1-musl", "1.36.0-musl"]),
            (21, l, vec!["latest", "keep: .*-musl"], false, vec!["latest"]),
            (22, l, vec!["regex: .*", "keep: !.*-(musl|glibc|uclibc)"], true, row22),
            // The original's half-anchored `^glibc|musl$` also took the *-musl tags; we do not.
            (23, l, vec!["regex: glibc|musl"], true, vec!["glibc", "musl"]),
            (24, l, vec!["keep: latest 0", r"regex: 1\.31.*"], true,
                vec!["1.31", "1.31.0", "1.31.0-glibc", "1.31.0-musl", "1.31.1", "1.31.1-glibc", "1.31.1-musl", "1.31.1-uclibc"]),
            (25, l, vec!["keep:  latest  2", r"regex: 1\.31.*"], true, vec!["1.31.1", "1.31.1-uclibc"]),
        ];
        for (row, source, filters, listed, want) in rows {
            let (got, was_listed) = expand(source, &filters);
            assert_eq!(got, want, "row {row}");
            assert_eq!(was_listed, listed, "row {row} listing");
        }
    }

    #[test]
    fn spec_table_error_rows() {
        let err = TagSet::parse(&strings(&["semver: >=1.31"])).expect_err("row 12");
        assert_eq!(
            err,
            r#"entry #1 'semver: >=1.31': Could not parse Range ">=1.31": Could not parse version "1.31" in ">=1.31": No Major.Minor.Patch elements found"#
        );
        let err = TagSet::parse(&strings(&["semver: >=v1.0.0"])).expect_err("row 13");
        assert_eq!(
            err,
            r#"entry #1 'semver: >=v1.0.0': Could not parse Range ">=v1.0.0": Could not parse comparator ">=v" in ">=v1.0.0""#
        );
    }

    #[test]
    fn parse_errors() {
        let cases: &[(&[&str], &str)] = &[
            (&["semver:"], "Last element in range is '||'"),
            (&["semver:   "], "Last element in range is '||'"),
            (
                &["regex: (abc"],
                "error parsing regexp: missing closing ): `(abc`",
            ),
            (
                &["regex: !(abc"],
                "error parsing regexp: missing closing ): `(abc`",
            ),
            (
                &["keep: [x"],
                "error parsing regexp: missing closing ]: `[x`",
            ),
            (
                &["keep:\tlatest\t3"],
                "invalid keep count: keep:\tlatest\t3",
            ),
            (&["keep: latest\t3"], "invalid keep count: keep: latest\t3"),
            (
                &["keep: latest 99999999999999999999"],
                "invalid keep count: keep: latest 99999999999999999999",
            ),
        ];
        for (filters, want) in cases {
            let errors = TagSet::parse_entries(&strings(filters)).expect_err(want);
            assert_eq!(errors.len(), 1, "{filters:?}");
            assert_eq!(errors[0].reason, *want, "{filters:?}");
        }
        // Every bad entry is reported, each with its position.
        let errors = TagSet::parse_entries(&strings(&["latest", "regex: (", "semver: >=1.31"]))
            .expect_err("two bad entries");
        assert_eq!(errors.iter().map(|e| e.index).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(
            describe_errors(&errors, Some(&[3, 4, 5])),
            "2 invalid entries: entry #2 'regex: (' (line 4): error parsing regexp: missing \
             closing ): `(`; entry #3 'semver: >=1.31' (line 5): Could not parse Range \
             \">=1.31\": Could not parse version \"1.31\" in \">=1.31\": No Major.Minor.Patch \
             elements found"
        );
    }

    #[test]
    fn keep_count_separators() {
        // A tab before `latest` is fine: the split on ' ' still ends with the number.
        let (got, _) = expand(&["1.0.0", "2.0.0", "3.0.0"], &["keep:\tlatest 2"]);
        assert_eq!(got, ["2.0.0", "3.0.0"]);
        let (got, _) = expand(&["1.0.0", "2.0.0", "3.0.0"], &["keep:   latest   0001"]);
        assert_eq!(got, ["3.0.0"]);
    }

    #[test]
    fn keep_without_space_is_a_prune_regex() {
        let set = tag_set(&["keep:latest 3"]);
        let listed = strings(&["latest", "1.0.0", "latest 3"]);
        let out = set.expand(Some(&listed));
        assert_eq!(out.tags, ["latest 3"]);
        assert_eq!(
            out.dropped,
            [
                Dropped {
                    tag: "1.0.0".into(),
                    by: "keep:latest 3".into()
                },
                Dropped {
                    tag: "latest".into(),
                    by: "keep:latest 3".into()
                },
            ]
        );
        // With a real tag list (no tag contains a space) everything is pruned.
        assert!(set.expand(Some(&strings(&spec_list()))).tags.is_empty());
    }

    /// An entry that is no filter must be a tag, a digest or `tag@digest`; the original took
    /// anything and failed only when copying it (docs/compatibility.md).
    #[test]
    fn entries_that_are_no_filter_and_no_reference_are_refused() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let tag_at_digest = format!("1.0@{digest}");
        let long_tag = "a".repeat(128);
        let set = tag_set(&[
            "latest",
            "_x.1-2",
            ":v1",
            &digest,
            &tag_at_digest,
            &long_tag,
        ]);
        assert!(!set.needs_listing());
        assert_eq!(set.expand(None).tags.len(), 6);

        let hint = |entry: &str| {
            let errors = TagSet::parse_entries(&strings(&[entry])).expect_err(entry);
            errors[0].reason.clone()
        };
        for (entry, word) in [
            ("semvr: >=1.2.0", "semver"),
            ("Semver: >=1.0.0", "semver"),
            ("semver >=1.0.0", "semver"),
            ("sever:>=1.0.0", "semver"),
            ("REGEX: .*", "regex"),
            ("regx: 1\\..*", "regex"),
            ("Keep: latest 1", "keep"),
            ("kep: latest 3", "keep"),
        ] {
            let reason = hint(entry);
            assert!(
                reason.starts_with("neither a tag (1 to 128 letters")
                    && reason.ends_with(&format!("; did you mean '{word}:'?")),
                "{entry}: {reason}"
            );
        }
        // No likely filter: what an entry may be, without a guess.
        for entry in [
            "x semver:",
            "1.0 beta",
            ".hidden",
            "-x",
            &"a".repeat(129),
            "a/b",
        ] {
            let reason = hint(entry);
            assert!(
                reason.starts_with("neither a tag") && !reason.contains("did you mean"),
                "{entry}: {reason}"
            );
        }
        // A digest gone wrong gets the digest's own problem.
        let reason = hint("sha256:abc");
        assert!(
            reason.starts_with("not a tag or digest: invalid digest"),
            "{reason}"
        );
        let reason = hint("1.0@sha256:abc");
        assert!(
            reason.starts_with("not a tag or digest: invalid digest"),
            "{reason}"
        );
    }

    #[test]
    fn empty_entries_are_refused() {
        let errors = TagSet::parse_entries(&strings(&["latest", "", "   "])).expect_err("empty");
        assert_eq!(errors.iter().map(|e| e.index).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(
            errors[0].reason,
            "an empty entry is not a tag: remove it, or name the tag"
        );
    }

    #[test]
    fn entries_are_trimmed_before_classification() {
        let (got, listed) = expand(&spec_list(), &["  semver: >=1.36.1 ", "\tlatest  "]);
        assert!(listed);
        assert_eq!(
            got,
            [
                "1.36.1",
                "2.1.0-buster",
                "latest",
                "v2.0.0",
                "v2.1.0-alpine"
            ]
        );
        let (got, _) = expand(&spec_list(), &[r"regex:   1\.36   "]);
        assert_eq!(got, ["1.36"]);
    }

    #[test]
    fn empty_regex_matches_only_the_empty_tag() {
        let (got, _) = expand(&["", "a"], &["regex:"]);
        assert_eq!(got, [""]);
        let (got, _) = expand(&["", "a"], &["regex: !"]);
        assert_eq!(got, ["a"]);
    }

    #[test]
    fn keep_only_lists_list_everything() {
        let set = tag_set(&["keep: latest 2"]);
        assert!(set.needs_listing());
        let (got, _) = expand(&["a", "1.0.0", "b", "2.0.0", "3.0.0"], &["keep: latest 2"]);
        assert_eq!(got, ["2.0.0", "3.0.0", "a", "b"]);
        let (got, _) = expand(&["b", "a", "c"], &["keep: latest 2"]);
        assert_eq!(got, ["b", "c"]);
        let (got, listed) = expand(&["x-1", "y-1", "x-2"], &["keep: x-.*"]);
        assert!(listed);
        assert_eq!(got, ["x-1", "x-2"]);
    }

    #[test]
    fn last_keep_count_wins() {
        let source = ["1.0.0", "2.0.0", "3.0.0", "4.0.0"];
        let (got, _) = expand(&source, &["keep: latest 1", "keep: latest 3"]);
        assert_eq!(got, ["2.0.0", "3.0.0", "4.0.0"]);
        let (got, _) = expand(&source, &["keep: latest 3", "keep: latest 1"]);
        assert_eq!(got, ["4.0.0"]);
        let (got, _) = expand(&source, &["keep: latest 1", "keep: latest 0"]);
        assert_eq!(got, source);
    }

    #[test]
    fn keep_count_keeps_all_when_the_limit_is_not_exceeded() {
        // 2 non-versions + 2 = 4 = total: nothing is cut, as in the original.
        let (got, _) = expand(&["a", "b", "1.0.0", "2.0.0"], &["keep: latest 2"]);
        assert_eq!(got, ["1.0.0", "2.0.0", "a", "b"]);
        let (got, _) = expand(&["a", "b"], &["keep: latest 5"]);
        assert_eq!(got, ["a", "b"]);
        let (got, _) = expand(&[], &["keep: latest 5"]);
        assert!(got.is_empty());
    }

    #[test]
    fn equal_versions_prefer_longer_then_byte_greater_tags() {
        let source = ["1.36", "v1.36.0", "1.36.0", "1.0.0"];
        let (got, _) = expand(&source, &["keep: latest 1"]);
        assert_eq!(got, ["v1.36.0"]);
        let (got, _) = expand(&source, &["keep: latest 2"]);
        assert_eq!(got, ["1.36.0", "v1.36.0"]);
        // Build metadata is ignored for precedence; same length, so the byte-greater wins.
        let (got, _) = expand(&["1.0.0+b", "1.0.0+a", "0.9.0"], &["keep: latest 1"]);
        assert_eq!(got, ["1.0.0+b"]);
        // The result does not depend on listing order.
        let reversed: Vec<&str> = source.iter().rev().copied().collect();
        let (again, _) = expand(&reversed, &["keep: latest 2"]);
        assert_eq!(again, ["1.36.0", "v1.36.0"]);
    }

    #[test]
    fn duplicates_are_removed() {
        let (got, _) = expand(&["a", "a", "b"], &[]);
        assert_eq!(got, ["a", "b"]);
        let (got, _) = expand(&["1.0.0"], &["1.0.0", "1.0.0", "semver: >=1.0.0"]);
        assert_eq!(got, ["1.0.0"]);
        // De-duplication happens before counting.
        let (got, _) = expand(
            &["2.0.0", "1.0.0"],
            &["2.0.0", "semver: >=0.0.0", "keep: latest 1"],
        );
        assert_eq!(got, ["2.0.0"]);
    }

    #[test]
    fn verbatim_tags_are_not_pruned_but_are_counted() {
        let (got, listed) = expand(&spec_list(), &["1.0.0-musl", "regex: x", "keep: nothing"]);
        assert!(listed);
        assert_eq!(got, ["1.0.0-musl"]);
        let (got, _) = expand(
            &["4.0.0"],
            &["1.0.0", "2.0.0", "semver: >=3.0.0", "keep: latest 2"],
        );
        assert_eq!(got, ["2.0.0", "4.0.0"]);
    }

    #[test]
    fn filters_are_ored_and_keeps_anded() {
        let source = ["1.0.0", "2.0.0", "alpha", "beta", "2.0.0-alpha"];
        let (got, _) = expand(&source, &["semver: >=2.0.0", "regex: alpha"]);
        assert_eq!(got, ["2.0.0", "alpha"]);
        let (got, _) = expand(&source, &["keep: .*a.*", "regex: .*", "keep: !beta"]);
        assert_eq!(got, ["2.0.0-alpha", "alpha"]);
    }

    #[test]
    fn semver_filters_use_tolerant_tag_parsing() {
        let source = [
            "v1.5",
            "1.5.0-rc.1",
            "01.05.00",
            "V1.5.0",
            "1.5.0.1",
            "1.5-rc",
        ];
        let (got, _) = expand(&source, &["semver: 1.5.x"]);
        assert_eq!(got, ["01.05.00", "v1.5"]);
        let (got, _) = expand(&source, &["semver: >=1.5.0-0 <1.6.0"]);
        assert_eq!(got, ["01.05.00", "1.5.0-rc.1", "v1.5"]);
    }

    #[test]
    fn dropped_tags_name_the_responsible_entry() {
        let set = tag_set(&["semver: >=2.0.0", "keep: !.*-alpine", "keep: latest 1"]);
        let listed = strings(&["1.0.0", "2.0.0", "3.0.0", "3.0.0-alpine", "latest", "3.0.0"]);
        let out = set.expand(Some(&listed));
        assert_eq!(out.tags, ["3.0.0"]);
        let reasons: Vec<(&str, &str)> = out
            .dropped
            .iter()
            .map(|d| (d.tag.as_str(), d.by.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                ("1.0.0", "semver: >=2.0.0"),
                ("2.0.0", "keep: latest 1"),
                ("3.0.0-alpine", "keep: !.*-alpine"),
                ("latest", "semver: >=2.0.0"),
            ]
        );

        let set = tag_set(&["semver: >=2.0.0", "regex: a.*"]);
        let out = set.expand(Some(&strings(&["1.0.0", "abc"])));
        assert_eq!(out.tags, ["abc"]);
        assert_eq!(
            out.dropped,
            [Dropped {
                tag: "1.0.0".into(),
                by: NO_FILTER_MATCHED.into()
            }]
        );

        // The first keep filter that rejects a tag is named.
        let set = tag_set(&["keep: a.*", "keep: .*z"]);
        let out = set.expand(Some(&strings(&["bz", "ab", "az"])));
        assert_eq!(out.tags, ["az"]);
        let reasons: Vec<(&str, &str)> = out
            .dropped
            .iter()
            .map(|d| (d.tag.as_str(), d.by.as_str()))
            .collect();
        assert_eq!(reasons, [("ab", "keep: .*z"), ("bz", "keep: a.*")]);
    }

    #[test]
    fn a_verbatim_tag_is_never_reported_as_dropped() {
        let set = tag_set(&["latest", "semver: >=2.0.0"]);
        let out = set.expand(Some(&strings(&["latest", "1.0.0"])));
        assert_eq!(out.tags, ["latest"]);
        assert_eq!(
            out.dropped,
            [Dropped {
                tag: "1.0.0".into(),
                by: "semver: >=2.0.0".into()
            }]
        );
    }

    #[test]
    fn listing_is_ignored_when_not_needed_and_missing_counts_as_empty() {
        let set = tag_set(&["a"]);
        assert_eq!(set.expand(Some(&strings(&["b"]))).tags, ["a"]);
        let set = tag_set(&[]);
        assert!(set.needs_listing());
        assert_eq!(set.expand(None), Expansion::default());
    }

    #[test]
    fn tag_refs() {
        let cases = [
            ("latest", TagRef::Tag("latest".into()), ":latest", ":latest"),
            (
                "sha256:abc",
                TagRef::Digest("sha256:abc".into()),
                "@sha256:abc",
                "@sha256:abc",
            ),
            (
                "1.0@sha256:abc",
                TagRef::TagAtDigest {
                    tag: "1.0".into(),
                    digest: "sha256:abc".into(),
                },
                "@sha256:abc",
                ":1.0",
            ),
            ("", TagRef::Tag(String::new()), ":", ":"),
            (
                ":latest",
                TagRef::Tag("latest".into()),
                ":latest",
                ":latest",
            ),
            (":", TagRef::Tag(String::new()), ":", ":"),
            (
                "@sha256:abc",
                TagRef::Digest("sha256:abc".into()),
                "@sha256:abc",
                "@sha256:abc",
            ),
            ("1.0@", TagRef::Tag("1.0".into()), ":1.0", ":1.0"),
            // With '@', the digest part is taken as is; a third part is ignored.
            (
                "1.0@md5:x@y",
                TagRef::TagAtDigest {
                    tag: "1.0".into(),
                    digest: "md5:x".into(),
                },
                "@md5:x",
                ":1.0",
            ),
            (
                "SHA256:abc",
                TagRef::Tag("SHA256:abc".into()),
                ":SHA256:abc",
                ":SHA256:abc",
            ),
        ];
        for (input, want, src, trgt) in cases {
            let r = TagRef::parse(input);
            assert_eq!(r, want, "{input}");
            assert_eq!(r.source_suffix(), src, "{input}");
            assert_eq!(r.target_suffix(), trgt, "{input}");
        }
    }
}
