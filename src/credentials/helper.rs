//! Docker credential helpers: `docker-credential-<name> get`, the server URL on standard input
//! (never on the command line), `{"ServerURL": …, "Username": …, "Secret": …}` on standard
//! output; a `Username` of `<token>` marks the secret as an identity token. This is the
//! protocol of github.com/docker/docker-credential-helpers, which `ecr-login`, `gcloud`,
//! `pass`, `secretservice` and `osxkeychain` speak (`docs/behaviour.md`, "Credentials").

use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::registry::Credentials;

/// What a helper prints when it has nothing for the server (and exits 1).
const NOT_FOUND: &str = "credentials not found in native keychain";

/// The most a helper may print; an answer is a few hundred bytes.
const MAX_OUTPUT: u64 = 64 * 1024;

/// Checks a helper name from a credential file: it becomes part of a program name looked up
/// in `PATH`, so it must not be a path.
///
/// # Errors
/// Empty, or holding anything but letters, digits, `.`, `_`, `-`, or holding `..`.
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "'{}' is not a credential helper name: use the part after 'docker-credential-' \
             (letters, digits, '.', '_', '-'; no '/' or '..'), e.g. 'ecr-login'",
            name.escape_debug()
        ))
    }
}

#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Asks helper `name` for the credentials of `server_url`, within `timeout`.
/// `Ok(None)`: the helper has none for it.
///
/// # Errors
/// An invalid name, a helper that is not installed, that fails, hangs past `timeout` or
/// answers something else than the protocol's JSON. The message names the helper and the
/// registry; it never includes what the helper printed, which may hold a secret.
pub async fn get(
    name: &str,
    server_url: &str,
    timeout: Duration,
) -> Result<Option<Credentials>, String> {
    check_name(name)?;
    let program = format!("docker-credential-{name}");
    let fail =
        |why: String| format!("credential helper {program} for registry {server_url}: {why}");
    let mut child = tokio::process::Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => fail(format!(
                "'{program}' is not installed (not found in PATH); install it or remove the \
                 credHelpers/credsStore entry"
            )),
            _ => fail(format!("cannot start '{program}': {e}")),
        })?;
    let talk = async {
        if let Some(mut stdin) = child.stdin.take() {
            // A helper that exits without reading closes the pipe: its exit status tells.
            let _ = stdin.write_all(server_url.as_bytes()).await;
        }
        let mut output = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            stdout
                .take(MAX_OUTPUT)
                .read_to_end(&mut output)
                .await
                .map_err(|e| fail(format!("reading its answer failed: {e}")))?;
        }
        let status = child
            .wait()
            .await
            .map_err(|e| fail(format!("waiting for it failed: {e}")))?;
        Ok::<_, String>((status, output))
    };
    let (status, output) = match tokio::time::timeout(timeout, talk).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(fail(format!(
                "no answer within {} s; it was stopped (is it waiting for a password prompt or a \
                 locked keyring?)",
                timeout.as_secs_f64()
            )));
        }
    };
    let text = String::from_utf8_lossy(&output);
    if !status.success() {
        if text.trim() == NOT_FOUND {
            return Ok(None);
        }
        return Err(fail(format!(
            "it failed ({status}); its output is not shown as it may hold a secret: run \
             'echo {server_url} | {program} get' yourself to see it"
        )));
    }
    let answer: Answer = serde_json::from_str(text.trim()).map_err(|_| {
        fail(
            "it answered something other than {\"Username\": ..., \"Secret\": ...}; its output \
             is not shown as it may hold a secret"
                .to_string(),
        )
    })?;
    if answer.secret.is_empty() {
        return Ok(None);
    }
    // A `<token>` user name stays as it is: it is how `Credentials` marks an identity token.
    Ok(Some(Credentials::new(answer.username, answer.secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["ecr-login", "gcloud", "pass", "secret_service.v2"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in ["", "../x", "a/b", "/abs", "..", "a b", "x;rm"] {
            let err = check_name(bad).expect_err(bad);
            assert!(err.contains("not a credential helper name"), "{err}");
        }
    }
}
