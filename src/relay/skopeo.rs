//! The skopeo relay: one `skopeo copy` per image job, with the original's argv, minus its bugs
//! (docs/compatibility.md): credentials travel in a private 0600 auth file instead of argv, a
//! tag the target already holds is skipped before skopeo starts, every copy has a time
//! limit, and a failed copy carries skopeo's own error text rather than `exit status 1`. A copy
//! that runs out of time or is aborted by a stop (docs/behaviour.md#signals-and-restarts) has
//! its skopeo killed and reaped and its auth files removed before the job ends.
//!
//! Tags come from our planner; this relay never runs `skopeo list-tags`.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::process::{Child, Command};

use super::manifest_cache::ManifestCache;
use super::{CopyOutcome, CopySlots, JobError, Sides, check};
use crate::config::{Location, PlatformChoice, SkopeoSettings};
use crate::plan::ImageJob;
use crate::registry::{Credentials, Reference, RegistryHost, Scheme};
use crate::stop::Stop;

/// How long `skopeo --version` may take at startup.
const VERSION_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of skopeo's stderr an error message carries (its last lines matter most).
const MAX_ERROR_TEXT: usize = 2000;

/// Runs `skopeo copy` for each job.
pub struct SkopeoRelay {
    binary: String,
    certs_dir: PathBuf,
    timeout: Duration,
    parallel_images: usize,
}

impl SkopeoRelay {
    /// Checks that skopeo runs (`skopeo --version`, logged as the original does), so a missing
    /// binary stops the program at startup rather than failing every image.
    ///
    /// # Errors
    ///
    /// When skopeo cannot be run; the message says how to install it.
    pub async fn new(settings: &SkopeoSettings) -> Result<SkopeoRelay, String> {
        let binary = settings.binary().to_string();
        let hint = "install skopeo (Debian/Ubuntu: 'apt-get install skopeo') or set 'skopeo.binary', \
                    or use 'relay: native', which needs no skopeo";
        let run = Command::new(&binary)
            .arg("--version")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = match tokio::time::timeout(VERSION_TIMEOUT, run).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => {
                return Err(format!(
                    "cannot execute skopeo: {binary}: {}; {hint}",
                    io_message(&e)
                ));
            }
            Err(_) => {
                return Err(format!(
                    "cannot execute skopeo: '{binary} --version' did not finish within {}s",
                    VERSION_TIMEOUT.as_secs()
                ));
            }
        };
        if !output.status.success() {
            return Err(format!(
                "cannot execute skopeo: '{binary} --version' failed ({}): {}",
                output.status,
                tail(&String::from_utf8_lossy(&output.stderr))
            ));
        }
        tracing::info!("{}", String::from_utf8_lossy(&output.stdout).trim_end());
        tracing::info!(relay = "skopeo", "relay ready");
        Ok(SkopeoRelay {
            binary,
            certs_dir: PathBuf::from(settings.certs_dir()),
            timeout: settings.timeout,
            parallel_images: settings.parallel_images,
        })
    }

    /// How many copies run at once (`skopeo.parallel-images`, 1 by default as in the original:
    /// each skopeo already copies an image's layers in parallel).
    pub fn parallel_images(&self) -> usize {
        self.parallel_images
    }

    /// Copies one image job with `skopeo copy`, unless the target already holds it. When the
    /// stop aborts the copy, skopeo is killed and reaped and its auth files are removed
    /// before this returns [`CopyOutcome::Aborted`].
    ///
    /// # Errors
    ///
    /// When the check or `skopeo copy` fails or times out; the message names the image and
    /// carries skopeo's output.
    pub async fn copy(
        &self,
        job: &ImageJob,
        sides: &Sides<'_>,
        manifests: &ManifestCache,
        slots: &CopySlots<'_>,
    ) -> Result<CopyOutcome, JobError> {
        let stop = slots.stop();
        let check = check::decide(job, sides.source, sides.target, manifests);
        let Some(decision) = stop.until_aborted(check).await else {
            return Ok(CopyOutcome::Aborted);
        };
        let (up_to_date, wanted) = decision?;
        if up_to_date {
            return Ok(CopyOutcome::UpToDate);
        }
        // An index of artifacts has no platform to choose: skopeo copies it whole only with
        // `--all` (docs/behaviour.md#platform-choice). skopeo 1.9 writes the index anew,
        // without its entries' `artifactType`, and refuses `--preserve-digests` for it: the
        // target's digest differs (docs/compatibility.md).
        let whole_job;
        let job = if wanted.whole && job.platform != PlatformChoice::All {
            whole_job = ImageJob {
                platform: PlatformChoice::All,
                ..job.clone()
            };
            &whole_job
        } else {
            job
        };
        // skopeo names a layout's images by reference name only: a digest on a layout source
        // is read through a view naming it (a digest on a layout target is written unnamed).
        let source_view = layout_source_view(job, sides).await?;
        let Some(_slot) = slots.enter().await else {
            return Ok(CopyOutcome::NotStarted);
        };
        // The external tool's requests do not go through our clients: once a registry's rate
        // limit ran out, it is not started at all.
        sides.check_rate_limits()?;
        // skopeo writes into a layout directory only when it exists: set it up as the native
        // relay does (and refuse a shared layout the same way).
        if let Some(dir) = sides.target_location.layout() {
            crate::layout::LayoutRoot::new(dir)
                .create(&job.target.repository)
                .await
                .map_err(|e| e.to_string())?;
        }
        // Removed when dropped, on every way out of this function.
        let auth = AuthFiles::write(
            sides.source_credentials.as_ref(),
            sides.target_credentials.as_ref(),
            job,
        )?;
        let source_name = source_view
            .as_ref()
            .map(crate::layout::DigestView::skopeo_name);
        let Some(output) = self.run_copy(job, sides, &auth, source_name, stop).await? else {
            return Ok(CopyOutcome::Aborted);
        };
        drop(auth);
        log_output(&output.stdout, sides.verbose);
        log_output(&output.stderr, sides.verbose);
        if !output.status.success() {
            return Err(format!(
                "skopeo copy of tag '{}' failed ({}): {}",
                job.target.target.as_str(),
                output.status,
                tail(&String::from_utf8_lossy(&output.stderr))
            )
            .into());
        }
        // skopeo does not say how many bytes it moved.
        Ok(CopyOutcome::Copied {
            bytes: 0,
            blobs: None,
            referrers: 0,
        })
    }

    /// Runs `skopeo copy` for `job` with the auth files `auth` (and `source_name` for a digest
    /// on a layout source) to its end: its output, or `None` when the stop aborted it (it is
    /// killed and reaped by then).
    ///
    /// # Errors
    ///
    /// When skopeo cannot be executed, or does not finish within `skopeo.timeout`.
    async fn run_copy(
        &self,
        job: &ImageJob,
        sides: &Sides<'_>,
        auth: &AuthFiles,
        source_name: Option<String>,
        stop: &Stop,
    ) -> Result<Option<Output>, JobError> {
        let args = copy_args(
            job,
            sides.source_location,
            sides.target_location,
            &self.certs_dir,
            auth.source.as_deref(),
            auth.target.as_deref(),
            source_name,
        );
        let tag = job.target.target.as_str();
        let cannot_execute = |e: std::io::Error| {
            format!(
                "cannot execute skopeo ({}) for tag '{tag}': {}",
                self.binary,
                io_message(&e)
            )
        };
        let child = Command::new(&self.binary)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(cannot_execute)?;
        match run_to_end(child, self.timeout, stop)
            .await
            .map_err(cannot_execute)?
        {
            Ended::Exited(output) => Ok(Some(output)),
            Ended::TimedOut => Err(format!(
                "skopeo copy of tag '{tag}' did not finish within {}s and was stopped; \
                 raise 'skopeo.timeout' for large images or slow registries",
                self.timeout.as_secs()
            )
            .into()),
            Ended::Aborted => Ok(None),
        }
    }
}

/// For a digest on a layout source: a view of the layout that names the digest, as skopeo
/// names layout images by reference name only; `None` for any other source.
///
/// # Errors
///
/// When the layout cannot be opened or the view made.
async fn layout_source_view(
    job: &ImageJob,
    sides: &Sides<'_>,
) -> Result<Option<crate::layout::DigestView>, JobError> {
    let (Some(dir), Some(digest)) = (sides.source_location.layout(), job.source.target.digest())
    else {
        return Ok(None);
    };
    let view = async {
        let layout = crate::layout::LayoutRoot::new(dir).open(&job.source.repository)?;
        layout.digest_view(digest).await
    }
    .await
    .map_err(|e| e.to_string())?;
    Ok(Some(view))
}

/// How a skopeo process ended.
enum Ended {
    /// It exited by itself, with this output.
    Exited(Output),
    /// It ran out of time and was killed.
    TimedOut,
    /// The stop aborted its copy and it was killed.
    Aborted,
}

/// Waits for `child` to exit, collecting its output, unless it runs out of `timeout` or the
/// stop aborts its copy. In every case but a normal exit it is killed and reaped before this
/// returns, so no skopeo outlives its job (`kill_on_drop` alone kills, but leaves the process
/// to be reaped some time later, and only while the runtime still runs).
async fn run_to_end(mut child: Child, timeout: Duration, stop: &Stop) -> std::io::Result<Ended> {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let ended = {
        let output = async {
            let (status, stdout, stderr) =
                tokio::try_join!(child.wait(), read_all(stdout), read_all(stderr))?;
            Ok(Output {
                status,
                stdout,
                stderr,
            })
        };
        match stop
            .until_aborted(tokio::time::timeout(timeout, output))
            .await
        {
            Some(Ok(Ok(output))) => return Ok(Ended::Exited(output)),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_elapsed)) => Ok(Ended::TimedOut),
            None => Ok(Ended::Aborted),
        }
    };
    if child.try_wait()?.is_none() {
        child.kill().await?;
    }
    ended
}

/// Everything a child's output pipe carries until it closes.
async fn read_all(pipe: Option<impl AsyncRead + Unpin>) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        pipe.read_to_end(&mut bytes).await?;
    }
    Ok(bytes)
}

/// The argv after the binary, exactly as the original builds it, except that
/// credentials are auth-file paths instead of `--src-creds=user:password`.
pub fn copy_args(
    job: &ImageJob,
    source: &Location,
    target: &Location,
    certs_dir: &Path,
    source_authfile: Option<&Path>,
    target_authfile: Option<&Path>,
    source_name: Option<String>,
) -> Vec<String> {
    let mut args = vec!["--insecure-policy".to_string(), "copy".to_string()];
    // TLS and certificates mean nothing to a layout side (docs/configuration.md#oci-image-layouts).
    let (source_registry, target_registry) = (source.layout().is_none(), target.layout().is_none());
    if source_registry && skip_tls_verify(source, &job.source.registry) {
        args.push("--src-tls-verify=false".into());
    }
    if target_registry && skip_tls_verify(target, &job.target.registry) {
        args.push("--dest-tls-verify=false".into());
    }
    let cert_dir = |host: &RegistryHost| {
        certs_dir
            .join(host.host_without_port())
            .display()
            .to_string()
    };
    if source_registry {
        args.push(format!("--src-cert-dir={}", cert_dir(&job.source.registry)));
    }
    if target_registry {
        args.push(format!(
            "--dest-cert-dir={}",
            cert_dir(&job.target.registry)
        ));
    }
    if let Some(path) = source_authfile {
        args.push(format!("--src-authfile={}", path.display()));
    }
    if let Some(path) = target_authfile {
        args.push(format!("--dest-authfile={}", path.display()));
    }
    args.push(source_name.unwrap_or_else(|| image_name(source, &job.source, true)));
    args.push(image_name(target, &job.target, false));
    match &job.platform {
        PlatformChoice::Host => {}
        PlatformChoice::All => args.push("--all".into()),
        // Refused before any job runs (`check_features`): skopeo copies one platform or all.
        PlatformChoice::Subset(_) => {}
        PlatformChoice::Specific {
            os, arch, variant, ..
        } => {
            for (flag, value) in [
                ("--override-os", os),
                ("--override-arch", arch),
                ("--override-variant", variant),
            ] {
                if !value.is_empty() {
                    args.push(format!("{flag}={value}"));
                }
            }
        }
    }
    args
}

/// skopeo's name of an image: `docker://<reference>`, or for a directory of image layouts
/// `oci:<dir>/<repository>:<tag>` (one layout per repository); a source repository found only
/// in a shared layout is `oci:<dir>:<repository>:<tag>`. A digest target is
/// `oci:<dir>/<repository>`, which skopeo lists in `index.json` without a reference name, as
/// the native relay does (docs/configuration.md#oci-image-layouts); a digest source is read
/// through a [`crate::layout::DigestView`] instead.
fn image_name(location: &Location, reference: &Reference, source: bool) -> String {
    let Some(dir) = location.layout() else {
        return format!("docker://{reference}");
    };
    let repository = reference.repository.as_str();
    let tag = reference.target.as_str();
    let own = dir.join(repository);
    if !source && reference.target.digest().is_some() {
        return format!("oci:{}", own.display());
    }
    let shared = source
        && !own.join(crate::layout::OCI_LAYOUT_FILE).exists()
        && dir.join(crate::layout::OCI_LAYOUT_FILE).exists();
    if shared {
        format!("oci:{}:{repository}:{tag}", dir.display())
    } else {
        format!("oci:{}:{tag}", own.display())
    }
}

/// skopeo talks plain HTTP only when TLS verification is off; an explicit `http://` registry
/// (our extension) therefore turns it off too.
fn skip_tls_verify(location: &Location, host: &RegistryHost) -> bool {
    location.skip_tls_verify || host.scheme() == Some(Scheme::Http)
}

/// The per-copy auth files: a private directory (0700) holding one Docker `config.json`-style
/// file (0600) per side that has credentials, removed when dropped.
struct AuthFiles {
    _dir: Option<tempfile::TempDir>,
    source: Option<PathBuf>,
    target: Option<PathBuf>,
}

impl AuthFiles {
    fn write(
        source: Option<&Credentials>,
        target: Option<&Credentials>,
        job: &ImageJob,
    ) -> Result<AuthFiles, String> {
        let sides = [
            ("source", source, &job.source.registry),
            ("target", target, &job.target.registry),
        ];
        if sides.iter().all(|(_, c, _)| c.is_none()) {
            return Ok(AuthFiles {
                _dir: None,
                source: None,
                target: None,
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("dregsy-skopeo-")
            .tempdir()
            .map_err(|e| {
                format!("cannot create a private directory for skopeo's auth files: {e}")
            })?;
        let mut paths = [None, None];
        for (slot, (side, credentials, host)) in paths.iter_mut().zip(sides) {
            let Some(credentials) = credentials else {
                continue;
            };
            let path = dir.path().join(format!("{side}-auth.json"));
            write_private(&path, &auth_file_json(host, credentials)).map_err(|e| {
                format!(
                    "cannot write skopeo's {side} auth file in {}: {e}",
                    dir.path().display()
                )
            })?;
            *slot = Some(path);
        }
        let [source, target] = paths;
        Ok(AuthFiles {
            _dir: Some(dir),
            source,
            target,
        })
    }
}

/// A Docker `config.json` with the credentials for `host` (and Docker Hub's other names, as
/// skopeo may look any of them up).
/// An identity token goes in as `identitytoken`, which skopeo sends to the token service as
/// an OAuth2 refresh token, as we do; next to it an `auth` of `<token>:` without a password, as
/// Docker writes it: skopeo ignores an entry whose `auth` is not `user:password`.
fn auth_file_json(host: &RegistryHost, credentials: &Credentials) -> String {
    let entry = if credentials.is_identity_token() {
        serde_json::json!({
            "auth": STANDARD.encode(format!("{}:", credentials.username())),
            "identitytoken": credentials.password(),
        })
    } else {
        let auth = STANDARD.encode(format!(
            "{}:{}",
            credentials.username(),
            credentials.password()
        ));
        serde_json::json!({ "auth": auth })
    };
    let mut keys = vec![host.name().to_string()];
    if host.is_docker_hub() {
        for alias in [
            "docker.io",
            "registry-1.docker.io",
            "https://index.docker.io/v1/",
        ] {
            if !keys.iter().any(|k| k == alias) {
                keys.push(alias.to_string());
            }
        }
    }
    let auths: serde_json::Map<String, serde_json::Value> =
        keys.into_iter().map(|k| (k, entry.clone())).collect();
    serde_json::json!({ "auths": auths }).to_string()
}

/// Creates `path` readable by its owner only, before any secret is written to it.
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(content.as_bytes())?;
    file.sync_all()
}

/// Logs skopeo's output line by line: at info level for a verbose task, else debug.
fn log_output(bytes: &[u8], verbose: bool) {
    for line in String::from_utf8_lossy(bytes).lines() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        if verbose {
            tracing::info!(relay = "skopeo", "{line}");
        } else {
            tracing::debug!(relay = "skopeo", "{line}");
        }
    }
}

/// The end of a tool's error output, trimmed, at most [`MAX_ERROR_TEXT`] bytes.
fn tail(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return "no error output".into();
    }
    if text.len() <= MAX_ERROR_TEXT {
        return text.to_string();
    }
    let mut start = text.len() - MAX_ERROR_TEXT;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

fn io_message(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "executable file not found".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Auth, RegistryLocation, Site};
    use crate::registry::Reference;

    fn location(registry: &str, skip_tls_verify: bool) -> Location {
        let site = Site::Registry(RegistryLocation::parse(registry).expect("a registry"));
        Location {
            registry: registry.into(),
            site,
            auth: Auth::Omitted,
            auth_refresh: None,
            cloud: None,
            skip_tls_verify,
            lister: None,
            auth_file: None,
            credentials_file: None,
            line: 1,
        }
    }

    fn job(src: &str, dst: &str, platform: &str) -> ImageJob {
        ImageJob {
            source: Reference::parse(src).expect("source"),
            target: Reference::parse(dst).expect("target"),
            platform: PlatformChoice::parse(platform).expect("platform"),
            referrers: false,
            min_age: None,
            verify: None,
            listed_tags: None,
        }
    }

    #[test]
    fn argv_of_the_spec_example() {
        let job = job(
            "registry.hub.docker.com/library/busybox:1.29.2",
            "127.0.0.1:5000/skopeo/library/busybox:1.29.2",
            "linux/arm/v6",
        );
        let args = copy_args(
            &job,
            &location("registry.hub.docker.com", false),
            &location("127.0.0.1:5000", true),
            Path::new("/etc/skopeo/certs.d"),
            Some(Path::new("/tmp/x/source-auth.json")),
            Some(Path::new("/tmp/x/target-auth.json")),
            None,
        );
        assert_eq!(
            args.join(" "),
            "--insecure-policy copy --dest-tls-verify=false \
             --src-cert-dir=/etc/skopeo/certs.d/registry.hub.docker.com \
             --dest-cert-dir=/etc/skopeo/certs.d/127.0.0.1 \
             --src-authfile=/tmp/x/source-auth.json --dest-authfile=/tmp/x/target-auth.json \
             docker://registry.hub.docker.com/library/busybox:1.29.2 \
             docker://127.0.0.1:5000/skopeo/library/busybox:1.29.2 \
             --override-os=linux --override-arch=arm --override-variant=v6"
        );
    }

    #[test]
    fn platform_flags_and_plain_http() {
        let certs = Path::new("/c");
        let open = location("http://127.0.0.1:5000", false);
        let all = copy_args(
            &job("http://127.0.0.1:5000/a:1", "127.0.0.1:6000/b:1", "all"),
            &open,
            &location("127.0.0.1:6000", false),
            certs,
            None,
            None,
            None,
        );
        assert_eq!(
            all.join(" "),
            "--insecure-policy copy --src-tls-verify=false --src-cert-dir=/c/127.0.0.1 \
             --dest-cert-dir=/c/127.0.0.1 docker://127.0.0.1:5000/a:1 docker://127.0.0.1:6000/b:1 --all"
        );
        // From r.io to s.io without auth files, with `platform` as the mapping's choice.
        let plain = |platform: &str| {
            copy_args(
                &job("r.io/a:1", "s.io/b:1", platform),
                &location("r.io", false),
                &location("s.io", false),
                certs,
                None,
                None,
                None,
            )
        };
        let os_only = plain("linux");
        assert_eq!(
            os_only.last().map(String::as_str),
            Some("--override-os=linux")
        );
        let host = plain("");
        assert_eq!(host.last().map(String::as_str), Some("docker://s.io/b:1"));
    }

    #[test]
    fn auth_file_is_docker_config_json() {
        let host = RegistryHost::parse("docker.io").expect("host");
        let json = auth_file_json(&host, &Credentials::new("alex", "pa\"ss%"));
        let value: serde_json::Value = serde_json::from_str(&json).expect("json");
        let auth = value["auths"]["docker.io"]["auth"].as_str().expect("auth");
        assert_eq!(STANDARD.decode(auth).expect("b64"), b"alex:pa\"ss%");
        assert!(value["auths"]["https://index.docker.io/v1/"].is_object());
        let json = auth_file_json(&host, &Credentials::identity_token("refresh-abc"));
        let value: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(value["auths"]["docker.io"]["identitytoken"], "refresh-abc");
        let auth = value["auths"]["docker.io"]["auth"].as_str().expect("auth");
        assert_eq!(STANDARD.decode(auth).expect("b64"), b"<token>:");
    }

    #[test]
    fn long_errors_keep_their_end() {
        let text = format!("{}END", "x".repeat(5000));
        let cut = tail(&text);
        assert!(cut.ends_with("END") && cut.len() <= MAX_ERROR_TEXT + 4);
        assert_eq!(tail("  \n"), "no error output");
    }
}
