//! The docker relay: pull, tag and push through a Docker Engine API, minus the original's bugs
//! (docs/compatibility.md): exactly the planned tags are pulled and pushed, never "all tags";
//! what this relay put into the daemon is removed again after the job, so its disk does not
//! grow; and a tag whose target already holds the image is skipped before any pull
//! (docs/behaviour.md#up-to-date-checks).
//!
//! The daemon pushes recompressed layers, so target digests differ from the source's; the
//! up-to-date check therefore compares image configs (see `check::same_image`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{
    CreateImageOptions, PushImageOptions, RemoveImageOptions, TagImageOptions,
};
use bollard::{ClientVersion, models::ProgressDetail};
use futures_util::StreamExt;

use super::manifest_cache::ManifestCache;
use super::{CopyOutcome, CopySlots, JobError, Sides, check};
use crate::config::{DockerSettings, PlatformChoice};
use crate::plan::ImageJob;
use crate::registry::{Credentials, Reference, TagOrDigest};

/// The API version the original speaks when the config names none.
const DEFAULT_API_VERSION: &str = "1.41";

/// Where the daemon listens when neither the config nor `DOCKER_HOST` says.
const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// Time limit of one short API call (ping, inspect, tag, remove) and of response headers.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Time limit of one startup ping.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Talks to one Docker daemon (or a compatible API such as podman's).
pub struct DockerRelay {
    docker: Docker,
    api: ClientVersion,
    timeout: Duration,
    platform_warned: AtomicBool,
    /// References that jobs in flight added to the daemon and will remove when they end; a
    /// stop that abandons the jobs removes them instead ([`DockerRelay::remove_abandoned`]).
    in_flight: Mutex<Vec<String>>,
}

impl DockerRelay {
    /// Connects and pings the daemon, retrying as configured, so an unreachable daemon stops
    /// the program at startup.
    ///
    /// # Errors
    ///
    /// When the Docker host is not a URL dregsy can speak to, or the daemon does not answer the
    /// pings.
    pub async fn new(settings: &DockerSettings) -> Result<DockerRelay, String> {
        let host = match settings.dockerhost.trim() {
            "" => std::env::var("DOCKER_HOST")
                .ok()
                .filter(|h| !h.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_string()),
            configured => configured.to_string(),
        };
        let api = parse_api_version(&settings.api_version)?;
        check_scheme(&host)?;
        tracing::info!("pinging Docker daemon...");
        let attempts = settings.ping_attempts.max(1);
        let mut last_error = String::new();
        for attempt in 1..=attempts {
            // A daemon that starts with us may not have created its socket yet: connecting
            // is part of what is retried.
            match connect(&host, &api) {
                Ok(docker) => match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
                    Ok(Ok(_)) => {
                        tracing::info!(relay = "docker", "ok, relay ready");
                        return Ok(DockerRelay {
                            docker: docker.with_request_modifier(url_safe_registry_auth),
                            api,
                            timeout: settings.timeout,
                            platform_warned: AtomicBool::new(false),
                            in_flight: Mutex::new(Vec::new()),
                        });
                    }
                    Ok(Err(e)) => last_error = e.to_string(),
                    Err(_) => last_error = format!("no answer within {}s", PING_TIMEOUT.as_secs()),
                },
                Err(e) => last_error = e,
            }
            tracing::debug!(attempt, dockerhost = %host, "ping failed: {last_error}");
            if attempt < attempts {
                tokio::time::sleep(settings.ping_interval).await;
            }
        }
        Err(format!(
            "unsuccessfully pinged Docker server {attempts} times, last error: {last_error} \
             (dockerhost '{host}'; check that the daemon runs and 'docker.dockerhost' or DOCKER_HOST \
             points at it, or use 'relay: native', which needs no daemon)"
        ))
    }

    /// One image at a time: the daemon already pulls and pushes the layers of an image in
    /// parallel, and jobs of one mapping often share layers it would serialise anyway.
    pub fn parallel_images(&self) -> usize {
        1
    }

    /// Pulls the source, tags it as the target, pushes that one tag, and removes what it
    /// added to the daemon. Errors name the image and carry the daemon's message.
    ///
    /// # Errors
    ///
    /// When a pull, tag or push fails; the message names the image and carries the daemon's.
    pub async fn copy(
        &self,
        job: &ImageJob,
        sides: &Sides<'_>,
        manifests: &ManifestCache,
        slots: &CopySlots<'_>,
    ) -> Result<CopyOutcome, JobError> {
        if job.platform == PlatformChoice::All {
            return Err("'Platform: all' sync option not supported".into());
        }
        let target_tag = target_tag(&job.target.target);
        let target_reference = TagOrDigest::tag(&target_tag)?;
        if check::same_image(
            job,
            &target_reference,
            sides.source,
            sides.target,
            manifests,
        )
        .await?
        {
            return Ok(CopyOutcome::UpToDate);
        }
        refuse_artifact_index(job, sides.source, manifests).await?;
        let Some(_slot) = slots.enter().await else {
            return Ok(CopyOutcome::NotStarted);
        };
        // The external tool's requests do not go through our clients: once a registry's rate
        // limit ran out, it is not started at all.
        sides.check_rate_limits()?;
        let source_ref = job.source.to_string();
        let target_ref = format!(
            "{}/{}:{target_tag}",
            job.target.registry, job.target.repository
        );
        // Only what this job adds to the daemon is removed afterwards, also when the job runs
        // out of time half-way (the pull or push is then abandoned, not its clean-up).
        let had_source = self.docker.inspect_image(&source_ref).await.is_ok();
        let had_target = self.docker.inspect_image(&target_ref).await.is_ok();
        let added: Vec<String> = [(had_target, &target_ref), (had_source, &source_ref)]
            .into_iter()
            .filter(|(had, _)| !had)
            .map(|(_, reference)| reference.clone())
            .collect();
        if let Ok(mut in_flight) = self.in_flight.lock() {
            in_flight.extend(added.iter().cloned());
        }
        let result =
            match tokio::time::timeout(self.timeout, self.pull_tag_push(job, &target_tag, sides))
                .await
            {
                Ok(result) => result,
                Err(_) => Err(format!(
                    "copying {} through the Docker daemon did not finish within {}s; \
                     raise 'docker.timeout' for large images or slow registries",
                    job.source,
                    self.timeout.as_secs()
                )),
            };
        for reference in &added {
            self.remove(reference).await;
            if let Ok(mut in_flight) = self.in_flight.lock()
                && let Some(at) = in_flight.iter().position(|r| r == reference)
            {
                in_flight.swap_remove(at);
            }
        }
        result.map_err(JobError::from)
    }

    /// Removes what jobs abandoned by a stop had added to the daemon (their own clean-up
    /// never ran). Called once the jobs are dropped.
    pub async fn remove_abandoned(&self) {
        let abandoned = match self.in_flight.lock() {
            Ok(mut in_flight) => std::mem::take(&mut *in_flight),
            Err(_) => return,
        };
        for reference in abandoned {
            self.remove(&reference).await;
        }
    }

    async fn pull_tag_push(
        &self,
        job: &ImageJob,
        target_tag: &str,
        sides: &Sides<'_>,
    ) -> Result<CopyOutcome, String> {
        let source_name = format!("{}/{}", job.source.registry, job.source.repository);
        let source_ref = job.source.to_string();
        let target_name = format!("{}/{}", job.target.registry, job.target.repository);
        let platform = job.platform.as_config_text();

        tracing::info!(r#ref = %source_ref, platform = %platform, "pulling source image");
        let pull = CreateImageOptions {
            from_image: Some(source_name),
            // Never empty: an empty tag would pull every tag of the repository.
            tag: Some(job.source.target.as_str().to_string()),
            platform: platform.clone(),
            ..Default::default()
        };
        let mut progress = self.docker.create_image(
            Some(pull),
            None,
            credentials(sides.source_credentials.as_ref(), &job.source),
        );
        while let Some(item) = progress.next().await {
            match item {
                Ok(info) => log_progress(
                    info.status.as_deref(),
                    info.id.as_deref(),
                    info.progress_detail.as_ref(),
                    sides.verbose,
                ),
                Err(e) => {
                    return Err(format!(
                        "error pulling source image '{source_ref}': {}",
                        daemon_error(&e)
                    ));
                }
            }
        }
        self.tag_and_push(job, &source_ref, &target_name, target_tag, sides)
            .await
    }

    async fn tag_and_push(
        &self,
        job: &ImageJob,
        source_ref: &str,
        target_name: &str,
        target_tag: &str,
        sides: &Sides<'_>,
    ) -> Result<CopyOutcome, String> {
        let target_ref = format!("{target_name}:{target_tag}");
        let image = self.docker.inspect_image(source_ref).await.map_err(|e| {
            format!(
                "pulled image '{source_ref}' not found in the daemon: {}",
                daemon_error(&e)
            )
        })?;
        let image_id = image.id.unwrap_or_else(|| source_ref.to_string());
        let size = image.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
        tracing::info!(r#ref = %target_ref, "setting tags for target image");
        self.docker
            .tag_image(
                &image_id,
                Some(TagImageOptions {
                    repo: Some(target_name.to_string()),
                    tag: Some(target_tag.to_string()),
                }),
            )
            .await
            .map_err(|e| {
                format!(
                    "error tagging '{source_ref}' as '{target_ref}': {}",
                    daemon_error(&e)
                )
            })?;
        let platform = job.platform.as_config_text();
        tracing::info!(r#ref = %target_ref, platform = %platform, "pushing target image");
        let push = PushImageOptions {
            tag: Some(target_tag.to_string()),
            platform: self.push_platform(&job.platform),
        };
        let mut progress = self.docker.push_image(
            target_name,
            Some(push),
            credentials(sides.target_credentials.as_ref(), &job.target),
        );
        while let Some(item) = progress.next().await {
            match item {
                Ok(info) => log_progress(
                    info.status.as_deref(),
                    None,
                    info.progress_detail.as_ref(),
                    sides.verbose,
                ),
                Err(e) => {
                    return Err(format!(
                        "error pushing target image '{target_ref}': {}",
                        daemon_error(&e)
                    ));
                }
            }
        }
        Ok(CopyOutcome::Copied {
            bytes: size,
            blobs: None,
            referrers: 0,
        })
    }

    /// The push platform: only from API 1.46 on, as a JSON OCI platform; warns (once) and
    /// drops it below, as the original does.
    fn push_platform(&self, platform: &PlatformChoice) -> Option<String> {
        let PlatformChoice::Specific {
            os, arch, variant, ..
        } = platform
        else {
            return None;
        };
        let required = ClientVersion {
            major_version: 1,
            minor_version: 46,
        };
        if self.api < required {
            if !self.platform_warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "'platform' requires at least API version 1.46, but you're using {}; dropping platform constraint",
                    self.api
                );
            }
            return None;
        }
        let mut value = serde_json::json!({ "os": os, "architecture": arch });
        if !variant.is_empty() {
            value["variant"] = serde_json::Value::String(variant.clone());
        }
        Some(value.to_string())
    }

    /// Removes one local reference this relay created; a failure only costs disk space.
    async fn remove(&self, reference: &str) {
        let options = RemoveImageOptions {
            force: false,
            noprune: false,
            platforms: None,
        };
        match self
            .docker
            .remove_image(reference, Some(options), None)
            .await
        {
            Ok(_) => {}
            // Never pulled, or never tagged: nothing to remove.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => tracing::warn!(
                r#ref = %reference,
                "could not remove the local image after the copy: {}",
                daemon_error(&e)
            ),
        }
    }
}

/// The target tag: a digest-only tag becomes `dregsy-<hex>`, as in the original (a daemon
/// cannot push an image by digest alone).
pub fn target_tag(target: &TagOrDigest) -> String {
    match target {
        TagOrDigest::Tag(tag) => tag.clone(),
        TagOrDigest::Digest(digest) => {
            let mut tag = format!("dregsy-{}", digest.hex());
            tag.truncate(128);
            tag
        }
    }
}

/// The `X-Registry-Auth` credentials of one side, when it has any.
fn credentials(
    credentials: Option<&Credentials>,
    reference: &Reference,
) -> Option<DockerCredentials> {
    credentials.map(|c| {
        let serveraddress = Some(reference.registry.name().to_string());
        if c.is_identity_token() {
            // Docker Engine sends it to the token service as an OAuth2 refresh token, as we do.
            // podman's Docker-compatible API (4.3) ignores `identitytoken`: not supported
            // there yet (docs/behaviour.md, "Credentials").
            DockerCredentials {
                identitytoken: Some(c.password().to_string()),
                serveraddress,
                ..Default::default()
            }
        } else {
            DockerCredentials {
                username: Some(c.username().to_string()),
                password: Some(c.password().to_string()),
                serveraddress,
                ..Default::default()
            }
        }
    })
}

/// Parses `major.minor`; empty means the original's default.
fn parse_api_version(text: &str) -> Result<ClientVersion, String> {
    let text = match text.trim() {
        "" => DEFAULT_API_VERSION,
        t => t.strip_prefix('v').unwrap_or(t),
    };
    let parsed = text
        .split_once('.')
        .and_then(|(major, minor)| Some((major.parse().ok()?, minor.parse().ok()?)));
    match parsed {
        Some((major_version, minor_version)) => Ok(ClientVersion {
            major_version,
            minor_version,
        }),
        None => Err(format!(
            "invalid docker api-version '{text}': expected a version such as {DEFAULT_API_VERSION}"
        )),
    }
}

/// bollard encodes `X-Registry-Auth` as standard base64; daemons (Docker and podman) decode
/// base64url, so a secret whose encoding has `+` or `/` would be garbled. Same bytes otherwise.
fn url_safe_registry_auth(mut request: bollard::BollardRequest) -> bollard::BollardRequest {
    let headers = request.headers_mut();
    if let Some(value) = headers.get("x-registry-auth")
        && let Ok(text) = value.to_str()
    {
        let url_safe = text.replace('+', "-").replace('/', "_");
        if let Ok(mut value) = reqwest::header::HeaderValue::from_str(&url_safe) {
            value.set_sensitive(true);
            headers.insert("x-registry-auth", value);
        }
    }
    request
}

/// Refuses daemon addresses this relay cannot use, before any retrying.
fn check_scheme(host: &str) -> Result<(), String> {
    if ["unix://", "tcp://", "http://"]
        .iter()
        .any(|scheme| host.starts_with(scheme))
    {
        return Ok(());
    }
    Err(format!(
        "not supported yet: dockerhost '{host}': use unix:///path/to/docker.sock or tcp://host:port \
         (TLS and SSH connections to the daemon are not available in this version)"
    ))
}

/// A client for `unix://` and `tcp://` (or `http://`) daemon addresses.
fn connect(host: &str, api: &ClientVersion) -> Result<Docker, String> {
    check_scheme(host)?;
    let timeout = REQUEST_TIMEOUT.as_secs();
    let result = if host.starts_with("unix://") {
        Docker::connect_with_unix(host, timeout, api)
    } else {
        Docker::connect_with_http(host, timeout, api)
    };
    result.map_err(|e| format!("cannot connect to the Docker daemon at '{host}': {e}"))
}

/// Logs a progress message: status changes at info level for a verbose task, else
/// debug; progress-bar ticks are left out.
fn log_progress(
    status: Option<&str>,
    id: Option<&str>,
    detail: Option<&ProgressDetail>,
    verbose: bool,
) {
    let Some(status) = status else {
        return;
    };
    if detail.is_some_and(|d| d.current.is_some()) {
        return;
    }
    let line = match id {
        Some(id) if !id.is_empty() => format!("{id}: {status}"),
        _ => status.to_string(),
    };
    if verbose {
        tracing::info!(relay = "docker", "{line}");
    } else {
        tracing::debug!(relay = "docker", "{line}");
    }
}

/// The daemon's own message, without bollard's wrapping where it has one.
fn daemon_error(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerStreamError { error } => error.clone(),
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => format!("{message} (HTTP {status_code})"),
        other => other.to_string(),
    }
}

/// The daemon pulls images of a platform; an index of artifacts has none
/// (docs/behaviour.md#platform-choice), so it is refused before the daemon is asked. The
/// decision is in the manifest cache by the time this runs.
async fn refuse_artifact_index(
    job: &ImageJob,
    source: &crate::store::ImageStore,
    manifests: &ManifestCache,
) -> Result<(), JobError> {
    if check::wanted_source(job, source, manifests).await?.whole {
        return Err(format!(
            "source image {} is an index of artifacts, not of platforms (none of its entries \
             declares a platform): the docker relay cannot copy it; use 'relay: native' or \
             'relay: skopeo'",
            job.source
        )
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Digest;

    #[test]
    fn registry_auth_carries_a_password_or_an_identity_token() {
        let reference = Reference::parse("r.example.com/app:1").expect("reference");
        let basic = credentials(Some(&Credentials::new("u", "p")), &reference).expect("some");
        assert_eq!(
            (basic.username.as_deref(), basic.password.as_deref()),
            (Some("u"), Some("p"))
        );
        assert_eq!(basic.serveraddress.as_deref(), Some("r.example.com"));
        let token = Credentials::identity_token("refresh-1");
        let token = credentials(Some(&token), &reference).expect("some");
        assert_eq!(token.identitytoken.as_deref(), Some("refresh-1"));
        assert_eq!((token.username, token.password), (None, None));
        assert!(credentials(None, &reference).is_none());
    }

    #[test]
    fn digest_tags_become_dregsy_tags() {
        let hex = "1d8a02c7".repeat(8);
        let digest = Digest::parse(&format!("sha256:{hex}")).expect("digest");
        assert_eq!(
            target_tag(&TagOrDigest::Digest(digest)),
            format!("dregsy-{hex}")
        );
        assert_eq!(target_tag(&TagOrDigest::Tag("1.0".into())), "1.0");
    }

    #[test]
    fn api_versions() {
        let v = parse_api_version("").expect("default");
        assert_eq!((v.major_version, v.minor_version), (1, 41));
        let v = parse_api_version("1.46").expect("1.46");
        assert_eq!((v.major_version, v.minor_version), (1, 46));
        assert!(parse_api_version("latest").is_err());
    }

    #[test]
    fn unsupported_daemon_addresses() {
        let api = parse_api_version("").expect("default");
        match connect("ssh://host", &api) {
            Ok(_) => panic!("ssh:// must be refused"),
            Err(err) => assert!(err.starts_with("not supported yet"), "{err}"),
        }
    }
}
