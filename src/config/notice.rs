//! Messages the config layer wants logged. Loading does no logging itself (it is pure and
//! testable); the caller logs these in order, which keeps the original's message sequence.

/// How loud a notice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Logged at `info`.
    Info,
    /// Logged at `warning`.
    Warn,
}

/// One message with its structured fields (never secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// How loud it is logged.
    pub level: Level,
    /// The message, as the original words it where it has one.
    pub message: String,
    /// Structured fields (`registry`, `username`), logged as fields.
    pub fields: Vec<(&'static str, String)>,
}

impl Notice {
    /// An info notice without fields.
    pub fn info(message: impl Into<String>) -> Self {
        Notice {
            level: Level::Info,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// A warning without fields.
    pub fn warn(message: impl Into<String>) -> Self {
        Notice {
            level: Level::Warn,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// Adds the field `key` (never a secret).
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.fields.push((key, value.into()));
        self
    }
}
