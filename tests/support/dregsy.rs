//! Running the dregsy binary under test: a config in a temporary file, JSON logs, and an
//! environment cleared of the machine's settings that would change what it does.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The binary under test: the one cargo built, or `DREGSY_TEST_BINARY` (to run the tests
/// against another build, e.g. to show that a test fails on an older one).
pub fn binary() -> String {
    std::env::var("DREGSY_TEST_BINARY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_dregsy").to_string())
}

/// One run of the dregsy binary; build it, then call [`Dregsy::output`].
pub struct Dregsy {
    _dir: tempfile::TempDir,
    /// The config file's path; `None` runs a subcommand that takes no config.
    config: Option<String>,
    args: Vec<String>,
    command: Command,
    stdin: Option<String>,
}

impl Dregsy {
    /// A sync with `config`: `dregsy -config=<file>`, `LOG_FORMAT=json`, no `LOG_LEVEL`, no
    /// Docker host and no cloud metadata probes from the machine's environment, and a manifest
    /// cache of its own (`XDG_CACHE_HOME` in its temporary directory, never the user's home;
    /// a test that wants runs to share one sets `XDG_CACHE_HOME` itself).
    pub fn with_config(config: &str) -> Dregsy {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, config).expect("write config");
        let mut command = Command::new(binary());
        without_user_credentials(&mut command, dir.path());
        command
            .env("LOG_FORMAT", "json")
            .env_remove("LOG_LEVEL")
            .env_remove("DOCKER_HOST")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("XDG_CACHE_HOME", dir.path().join("cache"));
        Dregsy {
            config: Some(path.display().to_string()),
            _dir: dir,
            args: Vec::new(),
            command,
            stdin: None,
        }
    }

    /// A subcommand without a config file (`tags`, say), with the same environment.
    pub fn without_config() -> Dregsy {
        let mut run = Dregsy::with_config("");
        run.config = None;
        run
    }

    /// Arguments before `-config=<file>` (a subcommand, say). `{config}` in one of them stands
    /// for the config file's path and then replaces the `-config` argument.
    pub fn args(mut self, args: &[&str]) -> Dregsy {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Dregsy {
        self.command.env(key, value);
        self
    }

    pub fn envs<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> Dregsy {
        for (key, value) in pairs {
            self.command.env(key.as_ref(), value.as_ref());
        }
        self
    }

    pub fn env_remove(mut self, key: &str) -> Dregsy {
        self.command.env_remove(key);
        self
    }

    /// Text for standard input (none by default).
    pub fn stdin(mut self, text: &str) -> Dregsy {
        self.stdin = Some(text.to_string());
        self
    }

    /// Runs dregsy to its end.
    pub fn output(mut self) -> Output {
        let config = self.config.unwrap_or_default();
        let placeholder = self.args.iter().any(|a| a.contains("{config}"));
        for arg in &self.args {
            self.command.arg(arg.replace("{config}", &config));
        }
        if !placeholder && !config.is_empty() {
            self.command.arg(format!("-config={config}"));
        }
        self.command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.command.spawn().expect("dregsy runs");
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(self.stdin.unwrap_or_default().as_bytes())
                .expect("write stdin");
        }
        child.wait_with_output().expect("dregsy finishes")
    }
}

/// Credential files are looked up under HOME, DOCKER_CONFIG, XDG_RUNTIME_DIR and
/// REGISTRY_AUTH_FILE: a dregsy process started by a test gets an empty home of its own (under
/// `dir`) and none of the others, so it never reads the credentials of the user running the
/// tests. Tests that need credential files set these variables themselves afterwards.
pub fn without_user_credentials<'c>(command: &'c mut Command, dir: &Path) -> &'c mut Command {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("create the run's home");
    command
        .env("HOME", &home)
        .env_remove("DOCKER_CONFIG")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("REGISTRY_AUTH_FILE")
}

/// Runs a sync with `config` and extra environment variables.
pub fn run_dregsy(config: &str, env: &[(&str, &str)]) -> Output {
    Dregsy::with_config(config).envs(env).output()
}

/// Standard output and standard error, for assertion messages and text searches.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn assert_success(out: &Output) {
    assert_eq!(out.status.code(), Some(0), "dregsy failed:\n{}", text(out));
}

/// The JSON log lines (from standard output and standard error) whose message starts with
/// `prefix`.
pub fn log_lines(out: &Output, prefix: &str) -> Vec<serde_json::Value> {
    text(out)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["msg"].as_str().is_some_and(|m| m.starts_with(prefix)))
        .collect()
}
