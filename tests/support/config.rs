//! Config files for the dregsy binary, built from a small typed builder rather than long
//! indented `format!` strings: a [`ConfigYaml`] holds top-level settings and [`TaskYaml`]s.

use std::path::{Path, PathBuf};

/// One task between two plain-HTTP registries (`host:port`), `skip-tls-verify` on both sides.
#[derive(Debug, Clone)]
pub struct TaskYaml {
    name: String,
    interval: Option<u64>,
    source: String,
    target: String,
    target_auth: Option<String>,
    mappings: String,
}

impl TaskYaml {
    /// A one-off task from `source` to `target`, without mappings yet.
    pub fn new(name: &str, source: &str, target: &str) -> TaskYaml {
        TaskYaml {
            name: name.to_string(),
            interval: None,
            source: source.to_string(),
            target: target.to_string(),
            target_auth: None,
            mappings: String::new(),
        }
    }

    /// Periodic: runs every `seconds`.
    pub fn every(mut self, seconds: u64) -> TaskYaml {
        self.interval = Some(seconds);
        self
    }

    /// The target's `auth` (base64 of `user:password`).
    pub fn target_auth(mut self, auth: &str) -> TaskYaml {
        self.target_auth = Some(auth.to_string());
        self
    }

    /// Adds the mapping `from` → `to`.
    pub fn mapping(mut self, from: &str, to: &str) -> TaskYaml {
        self.mappings
            .push_str(&format!("  - from: {from}\n    to: {to}\n"));
        self
    }

    /// Adds mapping entries written as YAML (each `  - from: …` with its keys).
    pub fn mappings_yaml(mut self, yaml: &str) -> TaskYaml {
        self.mappings.push_str(yaml);
        self
    }

    /// The task as an entry of `tasks:`.
    pub fn yaml(&self) -> String {
        let interval = self
            .interval
            .map(|i| format!("  interval: {i}\n"))
            .unwrap_or_default();
        let auth = self
            .target_auth
            .as_ref()
            .map(|a| format!("    auth: {a}\n"))
            .unwrap_or_default();
        format!(
            "- name: {}\n{interval}  source:\n    registry: {}\n    skip-tls-verify: true\n  \
             target:\n    registry: {}\n    skip-tls-verify: true\n{auth}  mappings:\n{}",
            self.name, self.source, self.target, self.mappings
        )
    }
}

/// The task that copies `slow/app` to `copy/app` from a slowed-down source (a proxy in front
/// of the source registry), to have a copy in flight.
pub fn slow_task(name: &str, source: &str, target: &str) -> TaskYaml {
    TaskYaml::new(name, source, target).mapping("slow/app", "copy/app")
}

/// A whole config file: top-level settings written as YAML, then the tasks.
#[derive(Debug, Clone, Default)]
pub struct ConfigYaml {
    head: String,
    tasks: Vec<String>,
}

impl ConfigYaml {
    /// A config with no settings and no tasks yet.
    pub fn new() -> ConfigYaml {
        ConfigYaml::default()
    }

    /// Top-level settings, as YAML lines (`watch: false\n`).
    pub fn settings(mut self, yaml: &str) -> ConfigYaml {
        self.head.push_str(yaml);
        self
    }

    /// Adds a task.
    pub fn task(self, task: &TaskYaml) -> ConfigYaml {
        self.task_yaml(&task.yaml())
    }

    /// Adds a task written as YAML (an entry of `tasks:`).
    pub fn task_yaml(mut self, yaml: &str) -> ConfigYaml {
        self.tasks.push(yaml.to_string());
        self
    }

    /// The config file's text.
    pub fn yaml(&self) -> String {
        format!("{}tasks:\n{}", self.head, self.tasks.concat())
    }

    /// Writes the config as `config.yaml` in `dir`; returns its path.
    pub fn write_to(&self, dir: &Path) -> PathBuf {
        let path = dir.join("config.yaml");
        std::fs::write(&path, self.yaml()).expect("config written");
        path
    }
}
