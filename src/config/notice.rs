//! Messages the config layer wants logged. Loading does no logging itself (it is pure and
//! testable); the caller logs these in order, which keeps the original's message sequence.

/// How loud a notice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
}

/// One message with its structured fields (never secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub level: Level,
    pub message: String,
    pub fields: Vec<(&'static str, String)>,
}

impl Notice {
    pub fn info(message: impl Into<String>) -> Self {
        Notice {
            level: Level::Info,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    pub fn warn(message: impl Into<String>) -> Self {
        Notice {
            level: Level::Warn,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.fields.push((key, value.into()));
        self
    }
}
