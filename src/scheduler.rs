//! Decides which tasks run when: one-off tasks in config order (SPEC §1.4).

use crate::clients::Clients;
use crate::config::{Config, Task};
use crate::plan::pattern::Pattern;
use crate::relay::Relay;
use crate::report::RunOutcome;
use crate::sync::run_task;

/// Runs every task that `filter` selects, once.
pub async fn run(config: &Config, filter: &Pattern) -> Result<RunOutcome, String> {
    let relay = Relay::new(config).await?;
    let selected: Vec<&Task> = config
        .tasks
        .iter()
        .filter(|t| filter.matches(&t.name))
        .collect();
    if let Some(task) = selected.iter().find(|t| t.is_periodic()) {
        return Err(format!(
            "not supported yet: task '{}' has an 'interval', and periodic tasks need daemon mode, \
             which this version does not have; remove 'interval' to run the task once (e.g. from cron)",
            task.name
        ));
    }
    let clients = Clients::new(config);
    let mut outcome = RunOutcome::default();
    for task in selected {
        let report = run_task(task, &relay, &clients).await;
        outcome.failed |= report.failed();
        outcome.tasks.push(report);
    }
    Ok(outcome)
}
