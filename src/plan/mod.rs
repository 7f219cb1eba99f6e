//! Turns one mapping of a task into image jobs: repository matching, path mapping, tag-set
//! expansion (docs/behaviour.md#image-matching-and-repository-mapping, #tag-filters). This
//! happens once, here, for every relay.
//!
//! The planner asks the source for its repositories through [`RepositorySource`] (a lister) and
//! for their tags through [`TagSource`], and knows nothing else of HTTP; it produces
//! `(source ref, target ref, platform)` jobs per repository, with the tags it dropped and the
//! reasons, so a dry run (`dregsy plan`) can explain itself.

pub mod mapping;
pub mod pattern;
pub mod semver;
pub mod tags;

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use futures_util::StreamExt;

use crate::failure::Failure;
use crate::registry::{Reference, RegistryHost, Repository, TagOrDigest};
use mapping::{Mapping, PlatformChoice, Verify};
use tags::{Dropped, TagRef};

/// Lists the tags of a source repository (the registry client in production).
pub trait TagSource {
    /// All tags of `repository`, or why they could not be listed (the registry client's
    /// error, with its kind, when a request failed).
    fn list_tags(
        &self,
        repository: &Repository,
    ) -> impl std::future::Future<Output = Result<Vec<String>, Failure>> + Send;

    /// The digests of images `repository` holds that no tag names (an OCI layout's entries
    /// without a reference name), for the warning that a tag listing does not select them.
    /// Registries have no such list: empty, the default.
    fn untagged_digests(
        &self,
        repository: &Repository,
    ) -> impl std::future::Future<Output = Vec<String>> + Send {
        let _ = repository;
        async { Vec::new() }
    }
}

/// Lists the repositories of a source registry (a lister in production), for `from: regex:`.
pub trait RepositorySource {
    /// The repository names, or why they could not be listed.
    fn list_repositories(
        &self,
    ) -> impl std::future::Future<Output = Result<std::sync::Arc<RepositoryList>, Failure>> + Send;
}

/// The repositories a lister returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepositoryList {
    /// Names as the registry lists them, without a leading `/`.
    pub names: Vec<String>,
    /// `Some(n)` when the list stopped at `lister.maxItems` = n although the registry has more.
    pub cut_at: Option<usize>,
}

/// A registry string of the config split into the host and an optional path prefix
/// (`registry: host:5000/mirror` puts every repository under `mirror/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryLocation {
    /// The registry host, with its port and scheme.
    pub host: RegistryHost,
    /// The path prefix without slashes at either end; empty: none.
    pub prefix: String,
}

impl RegistryLocation {
    /// Parses `[scheme://]host[:port][/prefix]`.
    ///
    /// # Errors
    ///
    /// When the host part is not a valid registry host.
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

    /// The repository for a mapped path: joined with one `/`, the path's leading `/` dropped
    /// (docs/behaviour.md#image-matching-and-repository-mapping).
    ///
    /// # Errors
    ///
    /// When the joined path is not a valid repository name.
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
    /// The image to copy.
    pub source: Reference,
    /// Where it goes.
    pub target: Reference,
    /// The mapping's platform choice.
    pub platform: PlatformChoice,
    /// The mapping's `referrers`: copy the referrers of what is copied.
    pub referrers: bool,
    /// The mapping's `min-age`: leave the image out while it is younger.
    pub min_age: Option<std::time::Duration>,
    /// The mapping's `verify`: copy only when signed with this key.
    pub verify: Option<Verify>,
    /// The source repository's tags as the planner listed them, kept for `referrers: true`
    /// (cosign's legacy tags and fallback tags are found in it, so the copy does not list the
    /// repository again; docs/behaviour.md#referrers); `None` when the tags were not listed
    /// (the mapping names them) or referrers do not travel.
    pub listed_tags: Option<ListedTags>,
}

impl fmt::Display for ImageJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.source, self.target)
    }
}

/// A source repository's tags as the planner listed them, shared by the repository's jobs.
#[derive(Clone, PartialEq, Eq)]
pub struct ListedTags(Arc<HashSet<String>>);

impl ListedTags {
    /// The set of `tags`.
    pub fn new(tags: &[String]) -> ListedTags {
        ListedTags(Arc::new(tags.iter().cloned().collect()))
    }

    /// The tags, shared.
    pub fn set(&self) -> &Arc<HashSet<String>> {
        &self.0
    }
}

impl fmt::Debug for ListedTags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ListedTags({} tags)", self.0.len())
    }
}

/// What one mapping expands to: one entry per source repository it covers.
#[derive(Debug, Clone, Default)]
pub struct MappingPlan {
    /// One entry per source repository, in the order they are synced.
    pub repositories: Vec<RepositoryPlan>,
    /// Things the user should know that are not failures: a `from` regex that matched
    /// nothing, a repository list cut at `maxItems`.
    pub warnings: Vec<String>,
    /// For `from: regex:`: how many repositories the lister returned.
    pub listed_repositories: Option<usize>,
    /// The source paths a regex `to` does not match, which keep their path. When that is every
    /// source path, nothing is planned (`repositories` is empty) and the mapping fails
    /// (docs/behaviour.md#image-matching-and-repository-mapping).
    pub unmapped: Vec<String>,
}

impl MappingPlan {
    /// Whether a regex `to` matched none of the mapping's source paths, so nothing was planned.
    pub fn to_matched_none(&self) -> bool {
        self.repositories.is_empty() && !self.unmapped.is_empty()
    }
}

impl MappingPlan {
    /// Every image job of the mapping, repository by repository.
    pub fn jobs(&self) -> impl Iterator<Item = &ImageJob> {
        self.repositories.iter().flat_map(|r| r.jobs.iter())
    }
}

/// What one source repository of a mapping expands to.
#[derive(Debug, Clone, Default)]
pub struct RepositoryPlan {
    /// The source path with a leading `/` (the listed name, for a regex `from`).
    pub source_path: String,
    /// The mapped target path (`to` applied), as the mapping computed it.
    pub target_path: String,
    /// The source repository, once both paths turned out valid.
    pub source: Option<Repository>,
    /// The target repository, once both paths turned out valid.
    pub target: Option<Repository>,
    /// The expanded tag list, in the order the jobs are made.
    pub tags: Vec<String>,
    /// One job per expanded tag (or digest), in `tags` order.
    pub jobs: Vec<ImageJob>,
    /// Tags the filters removed, with the filter that removed each.
    pub dropped: Vec<Dropped>,
    /// Tags that cannot form a reference (`""`, bad characters), each with the reason; every
    /// one fails as an image of its own, the other tags still sync.
    pub invalid: Vec<(String, String)>,
    /// Whether the source's tags were listed to build the plan.
    pub listed: bool,
    /// What the user should know about how the tags were chosen (digit-only tags read as
    /// versions), for the log and `dregsy plan`.
    pub warnings: Vec<String>,
    /// Why this repository could not be planned (invalid path, tag listing failed); the
    /// mapping's other repositories are still planned.
    pub error: Option<Failure>,
}

impl RepositoryPlan {
    /// The target repository's name on its registry (e.g. `mirror/app`): what decides which
    /// shard owns it (docs/behaviour.md#sharding). For a target path that is not a
    /// valid repository, the mapped path without its leading `/`.
    pub fn target_name(&self) -> &str {
        match &self.target {
            Some(repository) => repository.as_str(),
            None => self.target_path.trim_start_matches('/'),
        }
    }
}

/// Why a listed tag in the referrers tag schema is not selected (`referrers: true`).
pub const REFERRER_TAG: &str = "referrers: true (a referrer tag: it travels with its subject)";

/// How many repositories of one mapping have their tags listed at the same time.
const PARALLEL_TAG_LISTINGS: usize = 4;

/// Plans one mapping: the repositories it covers (listed through `repositories` for a
/// regex `from`), each with its tags and image jobs.
///
/// An error means the whole mapping could not be planned (the repository list could not be
/// fetched); a problem with one repository is recorded in its [`RepositoryPlan::error`].
///
/// # Errors
///
/// When the repository list of a regex `from` cannot be fetched: the lister's [`Failure`].
pub async fn plan_mapping(
    mapping: &Mapping,
    source: &RegistryLocation,
    target: &RegistryLocation,
    tags: &impl TagSource,
    repositories: &impl RepositorySource,
) -> Result<MappingPlan, Failure> {
    let mut plan = MappingPlan::default();
    let source_paths = if mapping.rule.is_regex_from() {
        let list = repositories
            .list_repositories()
            .await
            .map_err(|e| e.context("cannot list the source's repositories"))?;
        plan.listed_repositories = Some(list.names.len());
        let matched = matching_paths(mapping, source, &list.names);
        if let Some(max) = list.cut_at {
            plan.warnings.push(format!(
                "the source has more than lister.maxItems ({max}) repositories; only the first \
                 {max} were matched against '{}', so this mapping may miss some: raise \
                 'lister: {{maxItems: N}}' in the config ('-1' for no limit)",
                mapping.rule.from()
            ));
        }
        if matched.is_empty() {
            plan.warnings.push(format!(
                "'{}' matches none of the {} repositories listed on the source",
                mapping.rule.from(),
                list.names.len()
            ));
        }
        matched
    } else {
        vec![mapping.rule.source_path(None)]
    };
    plan.unmapped = source_paths
        .iter()
        .filter(|path| !mapping.rule.to_matches(path))
        .cloned()
        .collect();
    // A `to` that rewrites no path would put every image where its source path says: not what
    // a `to` was written for, so nothing is planned (nor are tags listed) and the caller fails
    // the mapping. Some paths kept: the original's rule, but said.
    if plan.unmapped.len() == source_paths.len() && !source_paths.is_empty() {
        return Ok(plan);
    }
    if let (false, Some(expression)) = (plan.unmapped.is_empty(), mapping.rule.to_expression()) {
        plan.warnings.push(format!(
            "the 'to' regex '{expression}' matches {} of the {} source paths; {} keep their \
             source path: {}",
            source_paths.len() - plan.unmapped.len(),
            source_paths.len(),
            plan.unmapped.len(),
            mapping::some_paths(&plan.unmapped)
        ));
    }
    plan.repositories = futures_util::stream::iter(source_paths)
        .map(|path| plan_repository(mapping, source, target, tags, path))
        .buffered(PARALLEL_TAG_LISTINGS)
        .collect()
        .await;
    Ok(plan)
}

/// The source paths (with a leading `/`) of the listed names a regex `from` matches, in
/// listing order. With a registry prefix (`registry: host/prefix`), only names under the
/// prefix count, and they are matched without it.
fn matching_paths(mapping: &Mapping, source: &RegistryLocation, names: &[String]) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    names
        .iter()
        .filter_map(|name| {
            if source.prefix.is_empty() {
                Some(name.as_str())
            } else {
                name.strip_prefix(&source.prefix)?.strip_prefix('/')
            }
        })
        .filter(|name| mapping.rule.matches_repository(name))
        .filter(|name| seen.insert(name.to_string()))
        .map(|name| mapping.rule.source_path(Some(name)))
        .collect()
}

/// What one expanded tag entry copies from and to: a tag to the same tag, a digest to the same
/// digest, `tag@digest` from the digest to the tag (docs/behaviour.md#tag-filters).
fn references_of(tag: &str) -> Result<(TagOrDigest, TagOrDigest), String> {
    let (from, to) = match TagRef::parse(tag) {
        TagRef::Tag(t) => (t.clone(), t),
        TagRef::Digest(d) => (d.clone(), d),
        TagRef::TagAtDigest { tag, digest } => (digest, tag),
    };
    match (TagOrDigest::parse(&from), TagOrDigest::parse(&to)) {
        (Ok(from), Ok(to)) => Ok((from, to)),
        (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
    }
}

/// The source and target repositories of `plan`'s paths.
///
/// # Errors
/// A path that is not a valid repository name, named in the message.
fn repositories_of(
    plan: &RepositoryPlan,
    source: &RegistryLocation,
    target: &RegistryLocation,
) -> Result<(Repository, Repository), String> {
    let source_repo = source
        .repository(&plan.source_path)
        .map_err(|e| format!("source path '{}': {e}", plan.source_path))?;
    let target_repo = target.repository(&plan.target_path).map_err(|e| {
        format!(
            "target path '{}' (mapped from '{}'): {e}",
            plan.target_path, plan.source_path
        )
    })?;
    Ok((source_repo, target_repo))
}

/// The warning for images a source holds under a digest only (an OCI layout's unnamed
/// `index.json` entries) that the expanded `selected` entries leave out: a tag listing never
/// shows them (docs/configuration.md#oci-image-layouts).
async fn unselected_digests(
    tags: &impl TagSource,
    repository: &Repository,
    selected: &[String],
) -> Option<String> {
    let pinned: HashSet<String> = selected
        .iter()
        .filter_map(|entry| match TagRef::parse(entry) {
            TagRef::Digest(digest) | TagRef::TagAtDigest { digest, .. } => Some(digest),
            TagRef::Tag(_) => None,
        })
        .collect();
    let left: Vec<String> = tags
        .untagged_digests(repository)
        .await
        .into_iter()
        .filter(|d| !pinned.contains(d))
        .collect();
    let first = left.first()?;
    Some(format!(
        "the source holds {} image(s) under a digest only (no tag names them), which this \
         mapping does not select: a tag listing never shows them; to copy them, list their \
         digests in 'tags' (e.g. '{first}')",
        left.len()
    ))
}

/// The listed tags a mapping's filters choose from, and the tags left out before: with
/// `referrers: true`, tags in the referrers tag schema hold the referrers of other images and
/// travel with their subject, never as images of their own (docs/behaviour.md#referrers).
fn selectable_tags<'l>(
    mapping: &Mapping,
    listed: Option<&'l [String]>,
) -> (Option<Cow<'l, [String]>>, Vec<Dropped>) {
    let is_referrer_tag = |t: &String| crate::registry::referrers::is_referrer_tag(t);
    match listed {
        Some(listed) if mapping.referrers && listed.iter().any(is_referrer_tag) => {
            let (referrer_tags, selectable): (Vec<String>, Vec<String>) =
                listed.iter().cloned().partition(is_referrer_tag);
            let dropped = referrer_tags
                .into_iter()
                .map(|tag| Dropped {
                    tag,
                    by: REFERRER_TAG.to_string(),
                })
                .collect();
            (Some(Cow::Owned(selectable)), dropped)
        }
        listed => (listed.map(Cow::Borrowed), Vec::new()),
    }
}

/// The `dropped` tags that `selected` does not hold after all: a referrer tag named verbatim
/// in `tags` is selected.
fn not_selected(dropped: Vec<Dropped>, selected: &[String]) -> Vec<Dropped> {
    let selected: HashSet<&String> = selected.iter().collect();
    dropped
        .into_iter()
        .filter(|d| !selected.contains(&d.tag))
        .collect()
}

/// Plans one source repository: paths, tags, jobs.
async fn plan_repository(
    mapping: &Mapping,
    source: &RegistryLocation,
    target: &RegistryLocation,
    tags: &impl TagSource,
    source_path: String,
) -> RepositoryPlan {
    let target_path = mapping.rule.target_path(&source_path);
    let mut plan = RepositoryPlan {
        source_path,
        target_path,
        ..Default::default()
    };
    let (source_repo, target_repo) = match repositories_of(&plan, source, target) {
        Ok(repositories) => repositories,
        Err(e) => {
            plan.error = Some(e.into());
            return plan;
        }
    };
    plan.source = Some(source_repo.clone());
    plan.target = Some(target_repo.clone());

    let listed_tags = if mapping.tags.needs_listing() {
        match tags.list_tags(&source_repo).await {
            Ok(listed) => Some(listed),
            Err(e) => {
                plan.error = Some(e.context("failed listing tags during tag set expansion"));
                return plan;
            }
        }
    } else {
        None
    };
    let (selectable, referrer_tags) = selectable_tags(mapping, listed_tags.as_deref());
    let mut expansion = mapping.tags.expand(selectable.as_deref());
    expansion
        .dropped
        .extend(not_selected(referrer_tags, &expansion.tags));
    // Kept only where it saves a request: finding cosign's tags for `referrers: true`.
    let shared = listed_tags
        .as_deref()
        .filter(|_| mapping.referrers)
        .map(ListedTags::new);
    for tag in &expansion.tags {
        let (from, to) = match references_of(tag) {
            Ok(references) => references,
            Err(e) => {
                plan.invalid.push((tag.clone(), e));
                continue;
            }
        };
        plan.jobs.push(ImageJob {
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
            referrers: mapping.referrers,
            min_age: mapping.min_age,
            verify: mapping.verify.clone(),
            listed_tags: shared.clone(),
        });
    }
    if listed_tags.is_some() {
        let unselected = unselected_digests(tags, &source_repo, &expansion.tags).await;
        expansion.warnings.extend(unselected);
    }
    plan.tags = expansion.tags;
    plan.dropped = expansion.dropped;
    plan.warnings = expansion.warnings;
    plan.listed = listed_tags.is_some();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_referrer_tag_named_verbatim_is_not_reported_as_left_out() {
        let hex = "a".repeat(64);
        let dropped = |tag: &str| Dropped {
            tag: tag.to_string(),
            by: REFERRER_TAG.to_string(),
        };
        let (named, other) = (format!("sha256-{hex}"), format!("sha256-{hex}.sig"));
        let left = not_selected(
            vec![dropped(&named), dropped(&other)],
            &["v1".to_string(), named.clone()],
        );
        assert_eq!(left, [dropped(&other)]);
    }
}
