//! Turns one mapping of a task into image jobs: repository matching, path mapping, tag-set
//! expansion (SPEC §3.3, §3.4, §4). This happens once, here, for every relay.
//!
//! The planner asks the source for its tags through [`TagSource`] and knows nothing else of
//! HTTP; it produces `(source ref, target ref, platform)` jobs and the tags it dropped, so a
//! dry run can explain itself.

pub mod mapping;
pub mod pattern;
pub mod semver;
pub mod tags;

use std::fmt;

use crate::config::{Mapping, PlatformChoice};
use crate::registry::{Reference, RegistryHost, Repository, TagOrDigest};
use tags::{Dropped, TagRef};

/// Lists the tags of a source repository (the registry client in production).
pub trait TagSource {
    /// All tags of `repository`, or a message saying why they could not be listed.
    fn list_tags(
        &self,
        repository: &Repository,
    ) -> impl std::future::Future<Output = Result<Vec<String>, String>> + Send;
}

/// A registry string of the config split into the host and an optional path prefix
/// (`registry: host:5000/mirror` puts every repository under `mirror/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryLocation {
    pub host: RegistryHost,
    pub prefix: String,
}

impl RegistryLocation {
    /// Parses `[scheme://]host[:port][/prefix]`.
    pub fn parse(registry: &str) -> Result<RegistryLocation, String> {
        let trimmed = registry.trim();
        let (scheme, rest) = match trimmed.find("://") {
            Some(i) => (&trimmed[..i + 3], &trimmed[i + 3..]),
            None => ("", trimmed),
        };
        let (host, prefix) = match rest.split_once('/') {
            Some((host, prefix)) => (host, prefix.trim_matches('/')),
            None => (rest, ""),
        };
        let host = RegistryHost::parse(&format!("{scheme}{host}")).map_err(|e| e.to_string())?;
        Ok(RegistryLocation {
            host,
            prefix: prefix.to_string(),
        })
    }

    /// The repository for a mapped path (D13: joined with one `/`, the path's leading `/` dropped).
    pub fn repository(&self, path: &str) -> Result<Repository, String> {
        let path = path.strip_prefix('/').unwrap_or(path);
        let full = if self.prefix.is_empty() {
            path.to_string()
        } else {
            format!("{}/{path}", self.prefix)
        };
        Repository::on(&self.host, &full).map_err(|e| e.to_string())
    }
}

/// One image to bring from the source to the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageJob {
    pub source: Reference,
    pub target: Reference,
    pub platform: PlatformChoice,
}

impl fmt::Display for ImageJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.source, self.target)
    }
}

/// What one mapping expands to.
#[derive(Debug, Clone, Default)]
pub struct MappingPlan {
    pub jobs: Vec<ImageJob>,
    /// Tags the filters removed, with the filter that removed each.
    pub dropped: Vec<Dropped>,
    /// Tags that cannot form a reference (`""`, bad characters), each with the reason; every
    /// one fails as an image of its own, the other tags still sync.
    pub invalid: Vec<(String, String)>,
    /// Whether the source's tags were listed to build the plan.
    pub listed: bool,
}

/// Plans one mapping whose `from` is a plain path.
pub async fn plan_mapping(
    mapping: &Mapping,
    source: &RegistryLocation,
    target: &RegistryLocation,
    tags: &impl TagSource,
) -> Result<MappingPlan, String> {
    if mapping.rule.is_regex_from() {
        return Err(format!(
            "not supported yet: 'from: {}' needs a repository lister, which this version does not have; list the repositories as plain mappings",
            mapping.rule.from()
        ));
    }
    let source_path = mapping.rule.source_path(None);
    let target_path = mapping.rule.target_path(&source_path);
    let source_repo = source
        .repository(&source_path)
        .map_err(|e| format!("source path '{source_path}': {e}"))?;
    let target_repo = target
        .repository(&target_path)
        .map_err(|e| format!("target path '{target_path}' (mapped from '{source_path}'): {e}"))?;

    let listed_tags = if mapping.tags.needs_listing() {
        Some(
            tags.list_tags(&source_repo)
                .await
                .map_err(|e| format!("failed listing tags during tag set expansion: {e}"))?,
        )
    } else {
        None
    };
    let expansion = mapping.tags.expand(listed_tags.as_deref());
    let mut jobs = Vec::with_capacity(expansion.tags.len());
    let mut invalid = Vec::new();
    for tag in &expansion.tags {
        let (from, to) = match TagRef::parse(tag) {
            TagRef::Tag(t) => (t.clone(), t),
            TagRef::Digest(d) => (d.clone(), d),
            TagRef::TagAtDigest { tag, digest } => (digest, tag),
        };
        let (from, to) = match (TagOrDigest::parse(&from), TagOrDigest::parse(&to)) {
            (Ok(from), Ok(to)) => (from, to),
            (Err(e), _) | (_, Err(e)) => {
                invalid.push((tag.clone(), e.to_string()));
                continue;
            }
        };
        jobs.push(ImageJob {
            source: Reference {
                registry: source.host.clone(),
                repository: source_repo.clone(),
                target: from,
            },
            target: Reference {
                registry: target.host.clone(),
                repository: target_repo.clone(),
                target: to,
            },
            platform: mapping.platform.clone(),
        });
    }
    Ok(MappingPlan {
        jobs,
        dropped: expansion.dropped,
        invalid,
        listed: listed_tags.is_some(),
    })
}
