//! Log output in the original's shapes (logrus), driven by the same environment variables
//! (docs/behaviour.md#logging): `LOG_LEVEL`, `LOG_FORMAT`, `LOG_FORCE_COLORS`, `LOG_METHODS`.
//!
//! Code logs with `tracing` macros; this layer renders the events as logrus would: JSON with
//! sorted keys, logfmt text, or coloured text on a terminal. Only dregsy's own events are shown:
//! the HTTP and TLS libraries log request details that have no place in a user's log.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::Instant;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

use crate::config::{self, Notice};

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line, keys sorted (the default without a terminal, as the original's
    /// README promised; its code wrote logfmt).
    Json,
    /// logrus text: logfmt without colours, or the padded coloured form.
    Text {
        /// The padded coloured form (a terminal, or `LOG_FORCE_COLORS`).
        colors: bool,
    },
}

/// Logging settings derived from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The most verbose level shown.
    pub level: Level,
    /// JSON or text (`LOG_FORMAT`, `LOG_FORCE_COLORS`, a terminal).
    pub format: Format,
    /// Adds `func` and `file` fields (`LOG_METHODS=true`).
    pub methods: bool,
}

/// Reads the logging environment. Invalid values fall back to the defaults and come back as
/// warnings, to be logged once logging is up (as the original does).
pub fn settings_from_env(stdout_is_terminal: bool) -> (Settings, Vec<String>) {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    settings_from(
        &var("LOG_LEVEL"),
        &var("LOG_FORMAT"),
        &var("LOG_FORCE_COLORS"),
        &var("LOG_METHODS"),
        stdout_is_terminal,
    )
}

/// The pure part of [`settings_from_env`], for tests.
pub fn settings_from(
    level: &str,
    format: &str,
    force_colors: &str,
    methods: &str,
    stdout_is_terminal: bool,
) -> (Settings, Vec<String>) {
    let mut warnings = Vec::new();
    let level = match level.to_lowercase().as_str() {
        "" | "info" => Level::INFO,
        // dregsy never logs at panic or fatal level; those settings leave only errors.
        "panic" | "fatal" | "error" => Level::ERROR,
        "warn" | "warning" => Level::WARN,
        "debug" => Level::DEBUG,
        "trace" => Level::TRACE,
        _ => {
            warnings.push(format!(
                "invalid log level: '{level}'; valid levels are: panic, fatal, error, warn, info, debug, trace"
            ));
            Level::INFO
        }
    };
    let default_format = if stdout_is_terminal {
        Format::Text { colors: true }
    } else {
        Format::Json
    };
    let format = match format.to_lowercase().as_str() {
        "" => default_format,
        "json" => Format::Json,
        "text" => Format::Text {
            colors: stdout_is_terminal || force_colors.eq_ignore_ascii_case("true"),
        },
        _ => {
            warnings.push(format!("invalid log format: '{format}'"));
            default_format
        }
    };
    let settings = Settings {
        level,
        format,
        methods: methods.eq_ignore_ascii_case("true"),
    };
    (settings, warnings)
}

/// Installs the global subscriber and logs the setting warnings. Call once, first thing.
pub fn init() {
    let stdout_is_terminal = std::io::stdout().is_terminal();
    let (settings, warnings) = settings_from_env(stdout_is_terminal);
    // Bars only for a person at a terminal, never in JSON or redirected output.
    if stdout_is_terminal
        && std::io::stderr().is_terminal()
        && matches!(settings.format, Format::Text { .. })
    {
        crate::progress::enable();
    }
    install(settings, warnings);
}

/// Installs the subscriber that writes lines with `settings`, then logs the `warnings` found
/// while reading the logging variables (they can only be logged once logging is set up).
fn install(settings: Settings, warnings: Vec<String>) {
    let layer = LogrusLayer {
        settings,
        started: Instant::now(),
    };
    // A second init (only possible in tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(layer).try_init();
    for warning in warnings {
        tracing::warn!("{warning}");
    }
}

/// Set by [`init_for_command`]: log lines go to stderr, so stdout carries only the command's output.
static TO_STDERR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Logging for a subcommand whose output is on stdout (`dregsy plan`, `dregsy tags`): the
/// same formats and variables, but lines go to stderr, and without `LOG_LEVEL` only warnings
/// and errors are shown.
pub fn init_for_command() {
    TO_STDERR.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut settings, warnings) = settings_from_env(std::io::stderr().is_terminal());
    if std::env::var("LOG_LEVEL").unwrap_or_default().is_empty() {
        settings.level = Level::WARN;
    }
    install(settings, warnings);
}

/// Renders events as logrus lines on stdout.
pub struct LogrusLayer {
    settings: Settings,
    started: Instant,
}

impl LogrusLayer {
    /// A layer with explicit settings (tests render lines with [`LogrusLayer::render`]).
    pub fn new(settings: Settings) -> Self {
        LogrusLayer {
            settings,
            started: Instant::now(),
        }
    }

    fn wants(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("dregsy") && *metadata.level() <= self.settings.level
    }

    /// Formats one line (without the newline) from a level, message and fields.
    pub fn render(
        &self,
        level: Level,
        message: &str,
        fields: &BTreeMap<String, FieldValue>,
        time: &str,
    ) -> String {
        match self.settings.format {
            Format::Json => {
                let mut object = serde_json::Map::new();
                for (key, value) in fields {
                    object.insert(key.clone(), value.to_json());
                }
                object.insert("level".into(), level_name(level).into());
                object.insert("msg".into(), message.into());
                object.insert("time".into(), time.into());
                // serde_json's map is ordered by key, as logrus sorts its JSON keys.
                serde_json::Value::Object(object).to_string()
            }
            Format::Text { colors: false } => {
                let mut line = format!(
                    "time={} level={} msg={}",
                    quote(time),
                    level_name(level),
                    quote(message)
                );
                for (key, value) in fields {
                    let _ = write!(line, " {key}={}", quote(&value.to_text()));
                }
                line
            }
            Format::Text { colors: true } => {
                let color = match level {
                    Level::ERROR => 31,
                    Level::WARN => 33,
                    Level::INFO => 36,
                    _ => 37,
                };
                let name = level_name(level).to_uppercase();
                let short = name.get(..4).unwrap_or(&name);
                let seconds = self.started.elapsed().as_secs();
                let mut line = format!("\x1b[{color}m{short}\x1b[0m[{seconds:04}] {message:<44} ");
                for (key, value) in fields {
                    let _ = write!(
                        line,
                        " \x1b[{color}m{key}\x1b[0m={}",
                        quote(&value.to_text())
                    );
                }
                line
            }
        }
    }
}

impl<S: Subscriber> Layer<S> for LogrusLayer {
    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        self.wants(metadata)
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let metadata = event.metadata();
        if !self.wants(metadata) {
            return;
        }
        let mut visitor = Fields::default();
        event.record(&mut visitor);
        if self.settings.methods {
            if let Some(file) = metadata.file() {
                let at = format!("{file}:{}", metadata.line().unwrap_or(0));
                visitor.fields.insert("file".into(), FieldValue::Text(at));
            }
            if let Some(module) = metadata.module_path() {
                visitor
                    .fields
                    .insert("func".into(), FieldValue::Text(module.to_string()));
            }
        }
        let time = chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut line = self.render(*metadata.level(), &visitor.message, &visitor.fields, &time);
        line.push('\n');
        if TO_STDERR.load(std::sync::atomic::Ordering::Relaxed) {
            use std::io::Write as _;
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        } else {
            crate::progress::print_line(line.as_bytes());
        }
    }
}

/// A field's value, kept typed so JSON shows numbers and booleans as logrus does.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// A string.
    Text(String),
    /// An integer, signed or not.
    Int(i128),
    /// A floating-point number.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl FieldValue {
    fn to_json(&self) -> serde_json::Value {
        match self {
            FieldValue::Text(s) => s.clone().into(),
            FieldValue::Int(i) => i64::try_from(*i)
                .map(serde_json::Value::from)
                .unwrap_or_else(|_| i.to_string().into()),
            FieldValue::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or_else(|| f.to_string().into()),
            FieldValue::Bool(b) => (*b).into(),
        }
    }

    fn to_text(&self) -> String {
        match self {
            FieldValue::Text(s) => s.clone(),
            FieldValue::Int(i) => i.to_string(),
            FieldValue::Float(f) => f.to_string(),
            FieldValue::Bool(b) => b.to_string(),
        }
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: BTreeMap<String, FieldValue>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: FieldValue) {
        if field.name() == "message" {
            self.message = value.to_text();
        } else {
            self.fields.insert(field.name().to_string(), value);
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, FieldValue::Text(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, FieldValue::Int(value.into()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, FieldValue::Int(value.into()));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, FieldValue::Float(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, FieldValue::Bool(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, FieldValue::Text(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, FieldValue::Text(format!("{value:?}")));
    }
}

/// logrus's level names (`warning`, not `warn`).
fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// logrus quotes a text value when it holds anything outside `[A-Za-z0-9-._/@^+]`, with Go's `%q`.
fn quote(text: &str) -> String {
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '/' | '@' | '^' | '+'));
    if plain {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Logs config notices at their level, with their fields.
pub fn log_notices(notices: &[Notice]) {
    for notice in notices {
        let fields: Vec<String> = notice
            .fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        // tracing needs field names at compile time; the few notices with fields are
        // spelled out so their fields stay structured in JSON output.
        match (notice.level, notice.fields.as_slice()) {
            (config::Level::Info, [("registry", r), ("username", u)]) => {
                tracing::info!(registry = %r, username = %u, "{}", notice.message)
            }
            (config::Level::Warn, [("registry", r)]) => {
                tracing::warn!(registry = %r, "{}", notice.message)
            }
            (config::Level::Info, _) if fields.is_empty() => tracing::info!("{}", notice.message),
            (config::Level::Warn, _) if fields.is_empty() => tracing::warn!("{}", notice.message),
            (config::Level::Info, _) => {
                tracing::info!("{} ({})", notice.message, fields.join(", "))
            }
            (config::Level::Warn, _) => {
                tracing::warn!("{} ({})", notice.message, fields.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, FieldValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), FieldValue::Text(v.to_string())))
            .collect()
    }

    fn layer(format: Format) -> LogrusLayer {
        LogrusLayer::new(Settings {
            level: Level::INFO,
            format,
            methods: false,
        })
    }

    #[test]
    fn text_line_matches_logrus() {
        let line = layer(Format::Text { colors: false }).render(
            Level::INFO,
            "syncing task",
            &fields(&[
                ("task", "task1"),
                ("source", "src.acme.com"),
                ("target", "dst.acme.com"),
            ]),
            "2025-03-14T12:00:00Z",
        );
        assert_eq!(
            line,
            r#"time="2025-03-14T12:00:00Z" level=info msg="syncing task" source=src.acme.com target=dst.acme.com task=task1"#
        );
        let line = layer(Format::Text { colors: false }).render(
            Level::WARN,
            "x",
            &fields(&[("tag", "1.0@sha256:def"), ("platform", "")]),
            "t",
        );
        assert_eq!(
            line,
            r#"time=t level=warning msg=x platform= tag="1.0@sha256:def""#
        );
    }

    #[test]
    fn json_line_has_sorted_keys() {
        let line = layer(Format::Json).render(
            Level::INFO,
            "syncing task",
            &fields(&[("task", "task1"), ("source", "s")]),
            "2025-03-14T12:00:00Z",
        );
        assert_eq!(
            line,
            r#"{"level":"info","msg":"syncing task","source":"s","task":"task1","time":"2025-03-14T12:00:00Z"}"#
        );
    }

    #[test]
    fn coloured_line_pads_the_message() {
        let line = layer(Format::Text { colors: true }).render(
            Level::INFO,
            "syncing task",
            &fields(&[("task", "t")]),
            "",
        );
        assert!(
            line.starts_with("\x1b[36mINFO\x1b[0m[0000] syncing task "),
            "{line:?}"
        );
        assert!(line.ends_with(" \x1b[36mtask\x1b[0m=t"), "{line:?}");
    }

    #[test]
    fn environment_rules() {
        let (s, w) = settings_from("", "", "", "", false);
        assert_eq!((s.level, s.format, w.len()), (Level::INFO, Format::Json, 0));
        let (s, _) = settings_from("", "", "", "", true);
        assert_eq!(s.format, Format::Text { colors: true });
        let (s, _) = settings_from("DEBUG", "Text", "TRUE", "true", false);
        assert_eq!(s.level, Level::DEBUG);
        assert_eq!(s.format, Format::Text { colors: true });
        assert!(s.methods);
        let (s, _) = settings_from("warning", "text", "", "", false);
        assert_eq!(
            (s.level, s.format),
            (Level::WARN, Format::Text { colors: false })
        );
        let (s, w) = settings_from("loud", "xml", "", "", false);
        assert_eq!((s.level, s.format), (Level::INFO, Format::Json));
        assert_eq!(
            w,
            [
                "invalid log level: 'loud'; valid levels are: panic, fatal, error, warn, info, debug, trace",
                "invalid log format: 'xml'"
            ]
        );
    }
}
