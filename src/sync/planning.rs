//! Planning one mapping of a task through the run's clients and listers: the stores of both
//! sides, the plan, and what the planner has to say (warnings, dropped tags).

use crate::clients::Clients;
use crate::config::{Location, Mapping, Site, Task};
use crate::failure::Failure;
use crate::listers::Listers;
use crate::plan::{self, RegistryLocation, RepositoryList, RepositorySource, TagSource};
use crate::registry::{RegistryHost, Repository};
use crate::relay::JobError;
use crate::store::ImageStore;

/// Where a side's images are: its registry (through the run's client for it) or its directory
/// of OCI image layouts, and how its repositories are named.
///
/// # Errors
/// The registry's client cannot be made (see [`Clients::get`]).
pub async fn store(
    clients: &Clients,
    location: &Location,
) -> Result<(RegistryLocation, ImageStore), Failure> {
    match &location.site {
        Site::Layout(dir) => {
            let named = RegistryLocation {
                host: RegistryHost::layout(&location.registry),
                prefix: String::new(),
            };
            Ok((named, ImageStore::for_layout(dir.clone())))
        }
        Site::Registry(named) => {
            let client = clients.get(&named.host, location).await?;
            Ok((named.clone(), ImageStore::Registry(client)))
        }
    }
}

/// Lists source tags through the side's store (registry or layouts), for the planner.
/// Remembers which repositories could not be listed because the registry's rate limit ran out,
/// so they are reported as left for the next run rather than as failures.
pub struct StoreTags<'a> {
    registry: &'a ImageStore,
    rate_limited: std::sync::Mutex<Vec<(String, JobError)>>,
}

impl<'a> StoreTags<'a> {
    /// Lists tags through `registry`, noting the repositories its rate limit kept unlisted.
    pub fn new(registry: &'a ImageStore) -> Self {
        StoreTags {
            registry,
            rate_limited: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The repositories whose listing met a used-up rate limit, with that error.
    pub(super) fn rate_limited(self) -> Vec<(String, JobError)> {
        self.rate_limited.into_inner().unwrap_or_default()
    }
}

impl TagSource for StoreTags<'_> {
    async fn list_tags(&self, repository: &Repository) -> Result<Vec<String>, Failure> {
        self.registry.list_tags(repository).await.map_err(|e| {
            let failure = Failure::from(e);
            if let JobError::RateLimited { .. } = failure
                && let Ok(mut limited) = self.rate_limited.lock()
            {
                limited.push((repository.to_string(), failure.clone()));
            }
            failure
        })
    }

    async fn untagged_digests(&self, repository: &Repository) -> Vec<String> {
        // Only for a warning: a layout whose index cannot be read fails the listing anyway.
        self.registry
            .untagged_digests(repository)
            .await
            .unwrap_or_default()
    }
}

/// Lists a source's repositories through the run's listers, for the planner.
pub struct ListedRepositories<'a> {
    /// The run's listers (their caches are shared by every task).
    pub listers: &'a Listers,
    /// The run's registry clients.
    pub clients: &'a Clients,
    /// The source side whose repositories are listed.
    pub location: &'a Location,
}

impl RepositorySource for ListedRepositories<'_> {
    async fn list_repositories(&self) -> Result<std::sync::Arc<RepositoryList>, Failure> {
        self.listers.list(self.location, self.clients).await
    }
}

/// Plans one mapping of a task: the clients of both sides and the mapping's plan, with the
/// planner's warnings and debug lines logged.
///
/// # Errors
///
/// When a side's registry is invalid, its client cannot be made, or the mapping cannot be
/// planned; the message says which side, the [`Failure`] keeps the registry client's error.
pub async fn plan_task_mapping(
    task: &Task,
    mapping: &Mapping,
    clients: &Clients,
    listers: &Listers,
) -> Result<(ImageStore, ImageStore, plan::MappingPlan), Failure> {
    plan_noting_limits(task, mapping, clients, listers)
        .await
        .map(|planned| (planned.source, planned.target, planned.plan))
}

/// A planned mapping, with the source repositories a used-up rate limit kept from being
/// listed (their tags are unknown: they are left for the next run).
pub(super) struct Planned {
    pub(super) source: ImageStore,
    pub(super) target: ImageStore,
    pub(super) plan: plan::MappingPlan,
    pub(super) rate_limited: Vec<(String, JobError)>,
}

/// Plans one mapping (see [`plan_task_mapping`]), noting the repositories a used-up rate
/// limit kept from being listed.
pub(super) async fn plan_noting_limits(
    task: &Task,
    mapping: &Mapping,
    clients: &Clients,
    listers: &Listers,
) -> Result<Planned, Failure> {
    let (source_location, source) = store(clients, &task.source)
        .await
        .map_err(|e| e.context("source registry"))?;
    let (target_location, target) = store(clients, &task.target)
        .await
        .map_err(|e| e.context("target registry"))?;
    // Cloud tokens are renewed before each mapping, as by the original's refresh hook.
    clients.refresh(&task.source).await?;
    clients.refresh(&task.target).await?;
    let repositories = ListedRepositories {
        listers,
        clients,
        location: &task.source,
    };
    let tags = StoreTags::new(&source);
    let plan = plan::plan_mapping(
        mapping,
        &source_location,
        &target_location,
        &tags,
        &repositories,
    )
    .await?;
    let rate_limited = tags.rate_limited();
    log_plan(task, mapping, &plan);
    Ok(Planned {
        source,
        target,
        plan,
        rate_limited,
    })
}

/// The planner's warnings, and at debug level the tags it dropped and those it kept.
fn log_plan(task: &Task, mapping: &Mapping, plan: &plan::MappingPlan) {
    for warning in &plan.warnings {
        tracing::warn!(task = %task.name, from = %mapping.rule.from(), "{warning}");
    }
    for repo in &plan.repositories {
        let path = repo.source_path.as_str();
        for warning in &repo.warnings {
            tracing::warn!(task = %task.name, repository = %path, "{warning}");
        }
        for dropped in &repo.dropped {
            tracing::debug!(repository = %path, tag = %dropped.tag, filter = %dropped.by, "tag dropped by filter");
        }
        if repo.error.is_none() {
            tracing::debug!(repository = %path, "expanded tags: {:?}", repo.tags);
        }
    }
}

/// Why a mapping whose regex `to` matched none of its source paths (`paths`) fails: the task,
/// the mapping, the expression, the paths it saw, and the leading-`/` hint when it applies
/// (docs/behaviour.md#image-matching-and-repository-mapping).
fn unmatched_to(task: &Task, mapping: &Mapping, paths: &[String]) -> String {
    let number = task
        .mappings
        .iter()
        .position(|m| std::ptr::eq(m, mapping))
        .map_or_else(
            || format!("at line {}", mapping.line),
            |i| format!("#{}", i + 1),
        );
    let hint = mapping
        .rule
        .leading_slash_hint(paths)
        .map(|h| format!("; {h}"))
        .unwrap_or_default();
    format!(
        "task '{}', mapping {number}: the 'to' regex '{}' {} it was given ({}), so \
         every image would keep its source path{hint}",
        task.name,
        mapping.rule.to_expression().unwrap_or_default(),
        match paths.len() {
            1 => "does not match the source path".to_string(),
            n => format!("matches none of the {n} source paths"),
        },
        plan::mapping::some_paths(paths)
    )
}

/// Why a planned mapping selected no image at all, or `None` when it selected some (or
/// failed in a way already reported: a repository that could not be planned).
///
/// Doing nothing where the config asked for something must not look like a success
/// (docs/behaviour.md#exit-codes), so the caller fails the mapping with this reason.
pub fn empty_selection(task: &Task, mapping: &Mapping, plan: &plan::MappingPlan) -> Option<String> {
    if plan.to_matched_none() {
        return Some(unmatched_to(task, mapping, &plan.unmapped));
    }
    let selected_any = plan
        .repositories
        .iter()
        .any(|r| !r.jobs.is_empty() || !r.invalid.is_empty() || r.error.is_some());
    if selected_any {
        return None;
    }
    if plan.repositories.is_empty() {
        return Some(format!(
            "it selected no image: '{}' matched none of the {} repositories listed on the source",
            mapping.rule.from(),
            plan.listed_repositories.unwrap_or(0)
        ));
    }
    let entries = if mapping.tag_entries.is_empty() {
        "the tags list (empty: every tag)".to_string()
    } else {
        let quoted: Vec<String> = mapping
            .tag_entries
            .iter()
            .map(|e| format!("'{}'", e.trim()))
            .collect();
        format!("the tags entries {}", quoted.join(", "))
    };
    let repositories: Vec<String> = plan
        .repositories
        .iter()
        .map(|r| {
            let name = format!(
                "{}{}",
                task.source.registry.trim_end_matches('/'),
                r.source_path
            );
            match r.dropped.len() {
                0 => format!("{name} (it has no tags)"),
                1 => format!("{name} (1 tag listed)"),
                n => format!("{name} ({n} tags listed)"),
            }
        })
        .collect();
    Some(format!(
        "it selected no image: {entries} selected none of the tags of {}; try them with \
         'dregsy tags' or 'dregsy plan'",
        repositories.join(", ")
    ))
}
