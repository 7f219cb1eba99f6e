//! How a plan is printed: text for a person at a terminal, JSON for scripts.

use super::{Checked, MappingPlan, Report, RepositoryPlan, ShardView, Status, TaskPlan};
use crate::relay::native::Travelling;
use crate::shard;

impl Report {
    /// The plan for a person at a terminal.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for task in &self.tasks {
            out.push_str(&format!(
                "task '{}': {} -> {}\n",
                task.name, task.source, task.target
            ));
            for (side, credentials) in [
                ("source", &task.source_credentials),
                ("target", &task.target_credentials),
            ] {
                match credentials {
                    Ok(from) => out.push_str(&format!("  {side} credentials: {from}\n")),
                    Err(e) => out.push_str(&format!("  {side} credentials: failed: {e}\n")),
                }
            }
            if task.mappings.is_empty() {
                out.push_str("  (no mappings)\n");
            }
            for (index, mapping) in task.mappings.iter().enumerate() {
                let to = if mapping.to.is_empty() {
                    String::new()
                } else {
                    format!(" to '{}'", mapping.to)
                };
                out.push_str(&format!(
                    "  mapping #{}: from '{}'{to}\n",
                    index + 1,
                    mapping.from
                ));
                if mapping.referrers {
                    out.push_str(
                        "    referrers: true (signatures, SBOMs and attestations travel with each image)\n",
                    );
                }
                match &mapping.outcome {
                    Err(e) => {
                        for warning in &mapping.warnings {
                            out.push_str(&format!("    warning: {warning}\n"));
                        }
                        out.push_str(&format!("    failed: {e}\n"));
                    }
                    Ok((plan, statuses)) => {
                        text_mapping(&mut out, task, plan, statuses, self.shards)
                    }
                }
                if mapping.other_shards > 0 {
                    out.push_str(&format!(
                        "    {} more repositories belong to other shards\n",
                        mapping.other_shards
                    ));
                }
            }
        }
        let t = self.totals();
        if let (true, Some(only)) = (self.shards.sharded(), self.shards.only) {
            let other: usize = self.mappings().map(|m| m.other_shards).sum();
            out.push_str(&format!(
                "shard {only}/{}: {} of {} repositories are ours\n",
                self.shards.count,
                self.repositories(),
                self.repositories() + other
            ));
        }
        let skipped = if t.skipped > 0 {
            format!("{} skipped, ", t.skipped)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{} image(s) to copy, {} up to date, {skipped}{} failed; {} tag(s) dropped by filters\n",
            t.copy,
            t.up_to_date,
            t.failed + self.mappings().filter(|m| m.outcome.is_err()).count(),
            t.dropped
        ));
        out
    }

    /// The plan as one JSON document, for scripts.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let tasks: Vec<serde_json::Value> = self
            .tasks
            .iter()
            .map(|task| {
                let mappings: Vec<serde_json::Value> = task
                    .mappings
                    .iter()
                    .map(|mapping| match &mapping.outcome {
                        Err(e) => json!({
                            "from": mapping.from, "to": mapping.to, "error": e,
                            "warnings": mapping.warnings,
                        }),
                        Ok((plan, statuses)) => json!({
                            "from": mapping.from,
                            "to": mapping.to,
                            "referrers": mapping.referrers,
                            "error": null,
                            "warnings": plan.warnings,
                            "listed_repositories": plan.listed_repositories,
                            "other_shards": mapping.other_shards,
                            "repositories": plan
                                .repositories
                                .iter()
                                .zip(statuses)
                                .map(|(repo, statuses)| {
                                    let mut value = json_repository(task, repo, statuses);
                                    if self.shards.sharded() {
                                        value["shard"] = json!(shard::owner(
                                            repo.target_name(),
                                            self.shards.count
                                        ));
                                    }
                                    value
                                })
                                .collect::<Vec<_>>(),
                        }),
                    })
                    .collect();
                let credentials = |c: &Result<String, String>| match c {
                    Ok(from) => json!({"from": from, "error": null}),
                    Err(e) => json!({"from": null, "error": e}),
                };
                json!({
                    "task": task.name,
                    "source": task.source,
                    "target": task.target,
                    "source_credentials": credentials(&task.source_credentials),
                    "target_credentials": credentials(&task.target_credentials),
                    "mappings": mappings,
                })
            })
            .collect();
        let t = self.totals();
        json!({
            "tasks": tasks,
            "shards": {
                "count": self.shards.count,
                "only": self.shards.only,
            },
            "totals": {
                "copy": t.copy,
                "up_to_date": t.up_to_date,
                "skipped": t.skipped,
                "failed": t.failed + self.mappings().filter(|m| m.outcome.is_err()).count(),
                "dropped": t.dropped,
            },
        })
    }
}

fn side(registry: &str, path: &str) -> String {
    format!("{}{path}", registry.trim_end_matches('/'))
}

fn text_mapping(
    out: &mut String,
    task: &TaskPlan,
    plan: &MappingPlan,
    statuses: &[Vec<Checked>],
    shards: ShardView,
) {
    if let Some(listed) = plan.listed_repositories {
        out.push_str(&format!(
            "    {listed} repositories listed, {} matched\n",
            plan.repositories.len()
        ));
    }
    for warning in &plan.warnings {
        out.push_str(&format!("    warning: {warning}\n"));
    }
    for (repo, statuses) in plan.repositories.iter().zip(statuses) {
        let owner = if shards.sharded() {
            let owner = shard::owner(repo.target_name(), shards.count);
            format!("  (shard {owner}/{})", shards.count)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "    {} -> {}{owner}\n",
            side(&task.source, &repo.source_path),
            side(&task.target, &repo.target_path)
        ));
        for warning in &repo.warnings {
            out.push_str(&format!("      warning: {warning}\n"));
        }
        if let Some(e) = &repo.error {
            out.push_str(&format!("      failed: {e}\n"));
            continue;
        }
        if repo.jobs.is_empty() && repo.invalid.is_empty() {
            out.push_str("      no tags selected\n");
        }
        let width = repo
            .jobs
            .iter()
            .map(|j| j.source.target.as_str().chars().count())
            .chain(repo.dropped.iter().map(|d| d.tag.chars().count()))
            .max()
            .unwrap_or(0);
        for (job, checked) in repo.jobs.iter().zip(statuses) {
            let status = &checked.status;
            out.push_str(&format!(
                "      {:10}  {:width$}  -> {}",
                status.word(),
                job.source.target.as_str(),
                job.target,
                width = width
            ));
            if let Status::Failed(e) | Status::Skip(e) = status {
                out.push_str(&format!(": {e}"));
            }
            out.push('\n');
            if let Some(referrers) = &checked.referrers {
                out.push_str(&format!(
                    "      {:10}  with {}\n",
                    "",
                    travelling_text(referrers)
                ));
            }
        }
        for (tag, reason) in &repo.invalid {
            out.push_str(&format!("      {:10}  '{tag}': {reason}\n", "failed"));
        }
        for dropped in &repo.dropped {
            out.push_str(&format!(
                "      {:10}  {:width$}  by {}\n",
                "dropped",
                dropped.tag,
                dropped.by,
                width = width
            ));
        }
    }
}

/// What travels with an image, in words: "2 referrer(s) (1 application/spdx+json, 1 …), legacy
/// tag(s) sha256-….sig; 1 referrer(s) and legacy tag(s) of the source index stay behind …".
fn travelling_text(found: &Travelling) -> String {
    let types: Vec<String> = artifact_types(found)
        .iter()
        .map(|(t, n)| format!("{n} {t}"))
        .collect();
    let mut text = match found.referrers.len() {
        0 => "no referrers".to_string(),
        n => format!("{n} referrer(s) ({})", types.join(", ")),
    };
    if !found.legacy_tags.is_empty() {
        text.push_str(&format!(", legacy tag(s) {}", found.legacy_tags.join(", ")));
    }
    if found.left_behind > 0 {
        text.push_str(&format!(
            "; {} referrer(s) and legacy tag(s) of the source index stay behind (the platform list rewrites it)",
            found.left_behind
        ));
    }
    text
}

/// How many referrers of each artifact type travel (`unknown` for none given).
fn artifact_types(found: &Travelling) -> std::collections::BTreeMap<&str, usize> {
    let mut types = std::collections::BTreeMap::new();
    for referrer in &found.referrers {
        *types
            .entry(referrer.artifact_type.as_deref().unwrap_or("unknown"))
            .or_default() += 1;
    }
    types
}

fn json_travelling(referrers: &Option<Travelling>) -> serde_json::Value {
    use serde_json::json;
    match referrers {
        None => serde_json::Value::Null,
        Some(found) => json!({
            "count": found.referrers.len(),
            "artifact_types": artifact_types(found),
            "digests": found.referrers.iter().map(|r| r.digest.to_string()).collect::<Vec<_>>(),
            "legacy_tags": found.legacy_tags,
            "left_behind": found.left_behind,
        }),
    }
}

fn json_repository(
    task: &TaskPlan,
    repo: &RepositoryPlan,
    statuses: &[Checked],
) -> serde_json::Value {
    use serde_json::json;
    json!({
        "source": side(&task.source, &repo.source_path),
        "target": side(&task.target, &repo.target_path),
        "error": repo.error.as_ref().map(ToString::to_string),
        "warnings": repo.warnings,
        "tags_listed": repo.listed,
        "images": repo
            .jobs
            .iter()
            .zip(statuses)
            .map(|(job, Checked { status, referrers })| json!({
                "referrers": json_travelling(referrers),
                "source": job.source.to_string(),
                "target": job.target.to_string(),
                "status": match status {
                    Status::UpToDate => "up-to-date",
                    Status::Copy => "copy",
                    Status::Skip(_) => "skip",
                    Status::Failed(_) => "failed",
                },
                "error": match status {
                    Status::Failed(e) => Some(e),
                    _ => None,
                },
                "reason": match status {
                    Status::Skip(reason) => Some(reason),
                    _ => None,
                },
            }))
            .collect::<Vec<_>>(),
        "invalid": repo
            .invalid
            .iter()
            .map(|(tag, reason)| json!({"tag": tag, "reason": reason}))
            .collect::<Vec<_>>(),
        "dropped": repo
            .dropped
            .iter()
            .map(|d| json!({"tag": d.tag, "by": d.by}))
            .collect::<Vec<_>>(),
    })
}
