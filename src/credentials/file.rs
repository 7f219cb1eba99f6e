//! Docker and podman credential files: Docker's `config.json`, podman's `auth.json` and the
//! `.dockerconfigjson` of a Kubernetes pull secret, which all share one format
//! (`docs/behaviour.md`, "Credentials"):
//!
//! ```json
//! {"auths": {"registry.example.com": {"auth": "base64(user:password)"},
//!            "https://index.docker.io/v1/": {"identitytoken": "..."}},
//!  "credHelpers": {"123456789012.dkr.ecr.eu-west-1.amazonaws.com": "ecr-login"},
//!  "credsStore": "pass"}
//! ```
//!
//! The file is parsed into a `serde_json::Value` and walked by hand, so that no error message
//! ever quotes a value of the file (serde's type errors would echo a misplaced secret).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::registry::{Credentials, RegistryHost};

/// Credential files larger than this are refused: real ones are a few kilobytes.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// A registry (or a registry with a repository path) as a credential file key names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// `host[:port]`, lowercased, with Docker Hub's names folded into `docker.io`.
    pub host: String,
    /// A repository path prefix without leading or trailing `/`; empty for the whole registry.
    pub path: String,
}

impl Key {
    /// Normalises a credential file key as podman does: `http://` and `https://` are dropped,
    /// and with them any path (Docker's legacy keys such as `https://index.docker.io/v1/`);
    /// `index.docker.io`, `registry-1.docker.io` and `docker.io` all name Docker Hub.
    pub fn from_file(text: &str) -> Key {
        let (had_scheme, key) = Key::split(text);
        if had_scheme {
            Key {
                path: String::new(),
                ..key
            }
        } else {
            key
        }
    }

    /// Normalises a config `registry` value (`[http[s]://]host[:port][/path]`): the scheme is
    /// dropped, the path kept for the longest-prefix match.
    pub fn of_registry(text: &str) -> Key {
        Key::split(text).1
    }

    /// The key of a registry parsed from the config: its `host[:port]` (the scheme dropped) and
    /// its path prefix, for the longest-prefix match.
    pub fn of_location(host: &RegistryHost, prefix: &str) -> Key {
        Key::of_parts(host.name(), prefix)
    }

    fn split(text: &str) -> (bool, Key) {
        let text = text.trim();
        let lower = text.to_ascii_lowercase();
        let (had_scheme, rest) = match lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"))
        {
            Some(rest) => (true, &text[text.len() - rest.len()..]),
            None => (false, text),
        };
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        (had_scheme, Key::of_parts(host, path))
    }

    /// Lowercases the host, folds Docker Hub's names into `docker.io` and trims the path.
    fn of_parts(host: &str, path: &str) -> Key {
        let host = host.to_ascii_lowercase();
        let host = match host.as_str() {
            "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
                "docker.io".to_string()
            }
            _ => host,
        };
        let path = path.trim_matches('/').to_string();
        Key { host, path }
    }

    /// Whether this key applies to `target`, and how specific it is (longer path: more).
    fn matches(&self, target: &Key) -> Option<usize> {
        if self.host != target.host {
            return None;
        }
        if self.path.is_empty() {
            return Some(0);
        }
        let under = target.path == self.path
            || target
                .path
                .strip_prefix(&self.path)
                .is_some_and(|rest| rest.starts_with('/'));
        under.then_some(self.path.len())
    }

    /// The server URL Docker hands a credential helper for this registry: Docker Hub's
    /// legacy index URL, else `host[:port]`.
    pub fn server_url(&self) -> String {
        if self.host == "docker.io" {
            "https://index.docker.io/v1/".to_string()
        } else {
            self.host.clone()
        }
    }
}

/// What a file says about one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// An `auths` entry with a user name and password, or an identity token.
    Auths(Credentials),
    /// A `credHelpers` entry: ask `docker-credential-<name>`.
    CredHelper(String),
}

/// One parsed credential file.
#[derive(Debug)]
pub struct AuthFile {
    /// The file it was read from.
    pub path: PathBuf,
    auths: Vec<(Key, String, Result<Option<Credentials>, String>)>,
    cred_helpers: Vec<(Key, String)>,
    /// `credsStore`: the helper asked for registries without a specific entry.
    pub creds_store: Option<String>,
}

impl AuthFile {
    /// Reads and parses the file at `path`; `Ok(None)` when it does not exist.
    ///
    /// # Errors
    /// Unreadable, too large, not JSON, or a `credHelpers`/`credsStore` value that is not a
    /// string or not a valid helper name. The message names the file, never a value in it.
    pub fn read(path: &Path) -> Result<Option<AuthFile>, String> {
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(format!(
                    "cannot read credential file {}: {e}",
                    path.display()
                ));
            }
        };
        if meta.is_dir() {
            return Err(format!(
                "credential file {} is a directory; name the file itself (e.g. config.json)",
                path.display()
            ));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(format!(
                "credential file {} is {} bytes, more than the limit of {MAX_FILE_BYTES}; is this the right file?",
                path.display(),
                meta.len()
            ));
        }
        warn_if_readable_by_others(path, &meta);
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read credential file {}: {e}", path.display()))?;
        AuthFile::parse(path, &bytes).map(Some)
    }

    /// Parses a credential file's content; `path` is only for messages.
    ///
    /// # Errors
    /// See [`AuthFile::read`].
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<AuthFile, String> {
        let shown = path.display();
        let root: Value = serde_json::from_slice(bytes).map_err(|e| {
            format!(
                "credential file {shown} is not valid JSON (line {}, column {}); fix it or remove it \
                 (it must look like {{\"auths\": {{\"registry.example.com\": {{\"auth\": \"...\"}}}}}})",
                e.line(),
                e.column()
            )
        })?;
        let Value::Object(root) = root else {
            return Err(format!(
                "credential file {shown} is not a JSON object; expected {{\"auths\": {{...}}}}"
            ));
        };
        let mut file = AuthFile {
            path: path.to_path_buf(),
            auths: Vec::new(),
            cred_helpers: Vec::new(),
            creds_store: None,
        };
        if let Some(auths) = root.get("auths").filter(|v| !v.is_null()) {
            let Value::Object(auths) = auths else {
                return Err(format!(
                    "credential file {shown}: 'auths' is not an object of registry entries"
                ));
            };
            for (key, entry) in auths {
                let parsed = auth_entry(entry).map_err(|why| {
                    format!("credential file {shown}: the 'auths' entry '{key}' {why}")
                });
                file.auths.push((Key::from_file(key), key.clone(), parsed));
            }
        }
        if let Some(helpers) = root.get("credHelpers").filter(|v| !v.is_null()) {
            let Value::Object(helpers) = helpers else {
                return Err(format!(
                    "credential file {shown}: 'credHelpers' is not an object of registry: helper name"
                ));
            };
            for (key, name) in helpers {
                let Value::String(name) = name else {
                    return Err(format!(
                        "credential file {shown}: 'credHelpers' entry '{key}' is not a helper name (a string)"
                    ));
                };
                super::helper::check_name(name).map_err(|why| {
                    format!("credential file {shown}: 'credHelpers' entry '{key}': {why}")
                })?;
                file.cred_helpers.push((Key::from_file(key), name.clone()));
            }
        }
        match root.get("credsStore") {
            None | Some(Value::Null) => {}
            Some(Value::String(name)) if name.is_empty() => {}
            Some(Value::String(name)) => {
                super::helper::check_name(name)
                    .map_err(|why| format!("credential file {shown}: 'credsStore': {why}"))?;
                file.creds_store = Some(name.clone());
            }
            Some(_) => {
                return Err(format!(
                    "credential file {shown}: 'credsStore' is not a helper name (a string)"
                ));
            }
        }
        Ok(file)
    }

    /// What the file says about `target`: its `credHelpers` entry, else its `auths` entry,
    /// each the one whose key is the longest prefix of `target` (as podman matches). Entries
    /// without a secret (the empty `{}` Docker writes next to a `credsStore`) do not count.
    ///
    /// # Errors
    /// The matching `auths` entry is malformed (its `auth` is not base64 `user:password`).
    pub fn lookup(&self, target: &Key) -> Result<Option<Found>, String> {
        let helper = self
            .cred_helpers
            .iter()
            .filter_map(|(key, name)| key.matches(target).map(|len| (len, name)))
            .max_by_key(|(len, _)| *len);
        if let Some((_, name)) = helper {
            return Ok(Some(Found::CredHelper(name.clone())));
        }
        let mut best: Option<(usize, &Result<Option<Credentials>, String>)> = None;
        for (key, _, entry) in &self.auths {
            let Some(len) = key.matches(target) else {
                continue;
            };
            if matches!(entry, Ok(None)) {
                continue;
            }
            // Of keys of equal length (`docker.io` and `https://index.docker.io/v1/`), the first wins.
            if best.is_none_or(|(have, _)| len > have) {
                best = Some((len, entry));
            }
        }
        match best {
            None => Ok(None),
            Some((_, Ok(credentials))) => Ok(credentials.clone().map(Found::Auths)),
            Some((_, Err(e))) => Err(e.clone()),
        }
    }
}

/// One `auths` entry: `identitytoken` wins over `auth`, which wins over `username`/`password`
/// (podman's and Docker's order). `Ok(None)` for an entry without any secret.
fn auth_entry(entry: &Value) -> Result<Option<Credentials>, String> {
    let Value::Object(entry) = entry else {
        return Err("is not an object such as {\"auth\": \"...\"}".to_string());
    };
    let text = |name: &str| -> Result<Option<&str>, String> {
        match entry.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(format!("has a '{name}' that is not a string")),
        }
    };
    if let Some(token) = text("identitytoken")? {
        return Ok(Some(Credentials::identity_token(token)));
    }
    if let Some(auth) = text("auth")? {
        return decode_auth(auth).map(Some);
    }
    match (text("username")?, text("password")?) {
        (Some(user), Some(pass)) => Ok(Some(Credentials::new(user, pass))),
        (None, None) => Ok(None),
        _ => Err("has a 'username' or a 'password' without the other".to_string()),
    }
}

/// Decodes an `auth` value: base64 of `user:password`. The error never contains the value.
fn decode_auth(auth: &str) -> Result<Credentials, String> {
    const HOW: &str = "write it as the output of: printf '%s' 'user:password' | base64 -w0";
    let bytes = STANDARD
        .decode(auth.trim())
        .map_err(|_| format!("has an 'auth' that is not base64; {HOW}"))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("has an 'auth' whose decoded value is not text; {HOW}"))?;
    match text.split_once(':') {
        Some((user, pass)) if !user.is_empty() => Ok(Credentials::new(user, pass)),
        _ => Err(format!(
            "has an 'auth' that is not base64 of 'user:password'; {HOW}"
        )),
    }
}

/// Reads a `credentials-file`: one user's credentials as `user:password` or as
/// `{"username": "...", "password": "..."}` (a mounted Kubernetes Secret key, say).
///
/// # Errors
/// Missing, unreadable, or neither form; the message names the file, never its content.
pub fn read_credentials_file(path: &Path) -> Result<Credentials, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read credentials-file {shown}: {e}"))?;
    if meta.len() > MAX_FILE_BYTES || meta.is_dir() {
        return Err(format!(
            "credentials-file {shown} is not a small file holding 'user:password'"
        ));
    }
    warn_if_readable_by_others(path, &meta);
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read credentials-file {shown}: {e}"))?;
    const FORMS: &str =
        "expected 'user:password' or {\"username\": \"...\", \"password\": \"...\"}";
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("credentials-file {shown} is not text; {FORMS}"))?;
    let text = text.trim_end_matches(['\n', '\r']);
    if text.trim_start().starts_with('{') {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            format!(
                "credentials-file {shown} is not valid JSON (line {}, column {}); {FORMS}",
                e.line(),
                e.column()
            )
        })?;
        let field = |name: &str| {
            value
                .as_object()
                .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                .and_then(|(_, v)| v.as_str())
        };
        return match (field("username"), field("password")) {
            (Some(user), Some(pass)) if !user.is_empty() => Ok(Credentials::new(user, pass)),
            _ => Err(format!(
                "credentials-file {shown} has no 'username' and 'password'; {FORMS}"
            )),
        };
    }
    match text.split_once(':') {
        Some((user, pass)) if !user.is_empty() => Ok(Credentials::new(user, pass)),
        _ => Err(format!("credentials-file {shown}: {FORMS}")),
    }
}

/// A credential file others can read holds secrets for anyone on the machine: say so, once
/// per file while the process runs (a file is read for each registry, and again by a daemon).
fn warn_if_readable_by_others(path: &Path, meta: &std::fs::Metadata) {
    use std::os::unix::fs::PermissionsExt as _;
    static WARNED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let mode = meta.permissions().mode();
    if mode & 0o004 == 0 {
        return;
    }
    let first = WARNED.lock().is_ok_and(|mut warned| {
        let new = !warned.iter().any(|p| p == path);
        if new {
            warned.push(path.to_path_buf());
        }
        new
    });
    if first {
        tracing::warn!(
            file = %path.display(),
            "credential file is readable by every user of this machine (mode {:o}); \
             restrict it with 'chmod 600 {}' (for a Kubernetes Secret volume: defaultMode: 0400)",
            mode & 0o777,
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        STANDARD.encode(s)
    }

    fn file(json: &str) -> AuthFile {
        AuthFile::parse(Path::new("/x/config.json"), json.as_bytes()).expect("parses")
    }

    #[test]
    fn key_forms() {
        for hub in [
            "https://index.docker.io/v1/",
            "docker.io",
            "registry-1.docker.io",
            "index.docker.io",
            "http://registry-1.docker.io/v2/",
        ] {
            assert_eq!(Key::from_file(hub), Key::of_registry("docker.io"), "{hub}");
        }
        assert_eq!(
            Key::from_file("Registry.Example.com:5000/Team/"),
            Key {
                host: "registry.example.com:5000".into(),
                path: "Team".into()
            }
        );
        assert_eq!(Key::from_file("https://r.example.com/v1/").path, "");
        // A registry value keeps its path after a scheme; a file key does not (Docker's rule).
        assert_eq!(Key::of_registry("http://r.example.com/team").path, "team");
        assert_eq!(
            Key::of_registry("docker.io").server_url(),
            "https://index.docker.io/v1/"
        );
        assert_eq!(Key::of_registry("r:5000").server_url(), "r:5000");
    }

    #[test]
    fn longest_prefix_wins_and_paths_match_whole_segments() {
        let f = file(&format!(
            r#"{{"auths": {{"r.example.com": {{"auth": "{}"}},
                "r.example.com/team": {{"auth": "{}"}},
                "r.example.com/team/sub": {{"auth": "{}"}}}}}}"#,
            b64("all:1"),
            b64("team:2"),
            b64("sub:3")
        ));
        let user = |target: &str| match f.lookup(&Key::of_registry(target)).expect("ok") {
            Some(Found::Auths(c)) => c.username().to_string(),
            other => format!("{other:?}"),
        };
        assert_eq!(user("r.example.com"), "all");
        assert_eq!(user("r.example.com/team"), "team");
        assert_eq!(user("r.example.com/team/app"), "team");
        assert_eq!(user("r.example.com/teamx"), "all");
        assert_eq!(user("r.example.com/team/sub/x"), "sub");
        assert_eq!(user("other.example.com"), "None");
    }

    #[test]
    fn cred_helpers_win_over_auths_and_empty_entries_do_not_count() {
        let f = file(&format!(
            r#"{{"auths": {{"a.example.com": {{"auth": "{}"}}, "b.example.com": {{}}}},
                "credHelpers": {{"a.example.com": "ecr-login"}}, "credsStore": "pass"}}"#,
            b64("u:p")
        ));
        assert_eq!(
            f.lookup(&Key::of_registry("a.example.com")).expect("ok"),
            Some(Found::CredHelper("ecr-login".into()))
        );
        assert_eq!(
            f.lookup(&Key::of_registry("b.example.com")).expect("ok"),
            None
        );
        assert_eq!(f.creds_store.as_deref(), Some("pass"));
    }

    #[test]
    fn entry_forms() {
        let f = file(&format!(
            r#"{{"auths": {{"a": {{"identitytoken": "refresh-1", "auth": "{}"}},
                "b": {{"username": "bu", "password": "bp"}}, "c": {{"auth": "{}"}}}}}}"#,
            b64("x:y"),
            b64("cu:c:p")
        ));
        let found = |t: &str| f.lookup(&Key::of_registry(t)).expect("ok");
        assert_eq!(
            found("a"),
            Some(Found::Auths(Credentials::identity_token("refresh-1")))
        );
        assert_eq!(found("b"), Some(Found::Auths(Credentials::new("bu", "bp"))));
        assert_eq!(
            found("c"),
            Some(Found::Auths(Credentials::new("cu", "c:p")))
        );
    }

    #[test]
    fn bad_files_name_the_file_and_never_the_secret() {
        let err = AuthFile::parse(Path::new("/s/config.json"), b"{\"auths\": {\"a\": s3cr3t")
            .expect_err("not JSON");
        assert!(
            err.contains("/s/config.json") && err.contains("not valid JSON"),
            "{err}"
        );
        assert!(!err.contains("s3cr3t"), "{err}");
        let f = file(r#"{"auths": {"a": {"auth": "s3cr3t-not-b64!"}}}"#);
        let err = f.lookup(&Key::of_registry("a")).expect_err("bad auth");
        assert!(err.contains("'a'") && err.contains("base64"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
        let f = file(&format!(
            r#"{{"auths": {{"a": {{"auth": "{}"}}}}}}"#,
            b64("s3cr3t")
        ));
        let err = f.lookup(&Key::of_registry("a")).expect_err("no colon");
        assert!(
            err.contains("user:password") && !err.contains("s3cr3t"),
            "{err}"
        );
        let err = AuthFile::parse(Path::new("/f"), br#"{"auths": "s3cr3t"}"#).expect_err("shape");
        assert!(!err.contains("s3cr3t"), "{err}");
        for bad in ["../evil", "a/b", "", "x y"] {
            let json = format!(r#"{{"credHelpers": {{"r": "{bad}"}}}}"#);
            let err = AuthFile::parse(Path::new("/f"), json.as_bytes()).expect_err(bad);
            assert!(err.contains("'credHelpers' entry 'r'"), "{err}");
        }
        // A malformed entry for another registry does not break this one.
        let f = file(&format!(
            r#"{{"auths": {{"bad": {{"auth": "!"}}, "good": {{"auth": "{}"}}}}}}"#,
            b64("u:p")
        ));
        assert!(f.lookup(&Key::of_registry("good")).expect("ok").is_some());
    }

    #[test]
    fn credentials_file_forms() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        std::fs::write(&path, "alex:pa:ss\n").expect("write");
        assert_eq!(
            read_credentials_file(&path),
            Ok(Credentials::new("alex", "pa:ss"))
        );
        std::fs::write(&path, r#"{"Username": "alex", "password": "p"}"#).expect("write");
        assert_eq!(
            read_credentials_file(&path),
            Ok(Credentials::new("alex", "p"))
        );
        std::fs::write(&path, "s3cr3t-only").expect("write");
        let err = read_credentials_file(&path).expect_err("no colon");
        assert!(
            err.contains("user:password") && !err.contains("s3cr3t"),
            "{err}"
        );
        let err = read_credentials_file(&dir.path().join("missing")).expect_err("missing");
        assert!(err.contains("missing"), "{err}");
    }
}
