//! The `auth` key of a source or target (docs/configuration.md#source-and-target).
//!
//! The original accepts base64 of a JSON object, and also base64 of anything else, which it then
//! silently ignores at sync time. We accept exactly the two forms users write (Docker's
//! config.json uses `user:password`) and reject the rest at validation, without echoing the secret.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::registry::Credentials;

/// What a location authenticates with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// No `auth` key: anonymous (cloud registries may fetch their own tokens later).
    #[default]
    Omitted,
    /// `auth: none`: explicitly anonymous; also suppresses cloud token helpers.
    None,
    /// Username and password from the config.
    Credentials(Credentials),
}

impl Auth {
    /// The credentials, if the config gave any.
    pub fn credentials(&self) -> Option<&Credentials> {
        match self {
            Auth::Credentials(c) => Some(c),
            _ => None,
        }
    }
}

/// The forms `auth` accepts, for every error about it (docs/configuration.md#source-and-target).
const FORMS: &str = "expected base64 of {\"username\": \"...\", \"password\": \"...\"} or of \
                     'user:password' (e.g. the output of: echo -n 'user:password' | base64 -w0), \
                     or 'none' for anonymous access";

/// Decodes an `auth` value. Errors never contain the value or anything decoded from it.
pub fn decode(value: &str) -> Result<Auth, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(Auth::Omitted);
    }
    if value == "none" {
        return Ok(Auth::None);
    }
    let bytes = STANDARD.decode(value).map_err(|e| {
        let at = match e {
            base64::DecodeError::InvalidByte(offset, _) => offset,
            base64::DecodeError::InvalidLastSymbol(offset, _) => offset,
            _ => value.len(),
        };
        format!("invalid Auth: illegal base64 data at input byte {at}; {FORMS}")
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("invalid Auth: the decoded value is not UTF-8 text; {FORMS}"))?;
    if text.trim_start().starts_with('{') {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
            .map_err(|_| format!("invalid Auth: the decoded value is not valid JSON; {FORMS}"))?;
        // Go's JSON decoder matches keys case-insensitively; extra keys are ignored.
        let field = |name: &str| {
            object
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.as_str())
                .map(str::to_string)
        };
        let username = field("username").unwrap_or_default();
        let password = field("password").unwrap_or_default();
        if username.is_empty() && password.is_empty() {
            return Err(format!(
                "invalid Auth: the JSON object has no 'username' or 'password'; {FORMS}"
            ));
        }
        return Ok(Auth::Credentials(Credentials::new(username, password)));
    }
    match text.split_once(':') {
        Some((user, pass)) => Ok(Auth::Credentials(Credentials::new(user, pass))),
        None => Err(format!("invalid Auth: {FORMS}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        STANDARD.encode(s)
    }

    #[test]
    fn json_form() {
        let auth = decode(&b64(
            r#"{"Username": "alex", "password": "pa%s\"s", "x": 1}"#,
        ))
        .expect("ok");
        assert_eq!(auth, Auth::Credentials(Credentials::new("alex", "pa%s\"s")));
    }

    #[test]
    fn user_password_form() {
        let auth = decode(&b64("alex:sec:ret")).expect("ok");
        assert_eq!(auth, Auth::Credentials(Credentials::new("alex", "sec:ret")));
    }

    #[test]
    fn none_and_empty() {
        assert_eq!(decode("none"), Ok(Auth::None));
        assert_eq!(decode(""), Ok(Auth::Omitted));
    }

    #[test]
    fn errors_do_not_leak_the_secret() {
        let err = decode("abc!").expect_err("bad base64");
        assert_eq!(
            err,
            format!("invalid Auth: illegal base64 data at input byte 3; {FORMS}")
        );
        let err = decode(&b64("justasecretword")).expect_err("no colon");
        assert!(!err.contains("justasecretword"), "{err}");
        let err = decode(&b64("{broken secretword")).expect_err("bad json");
        assert!(!err.contains("secretword"), "{err}");
    }
}
