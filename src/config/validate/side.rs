//! A task's source and target: the `registry` value parsed into what it names, credentials,
//! lister and the keys that apply to each kind of side (docs/configuration.md#source-and-target).

use std::path::PathBuf;
use std::time::Duration;

use super::Failure;
use crate::config::notice::Notice;
use crate::config::raw::RawLocation;
use crate::config::{Auth, CloudRegistry, ListerChoice, Location, RegistryLocation, Site, auth};

/// Step 5: a source or target.
pub(super) fn location(
    raw: Option<RawLocation>,
    auth_file: Option<&PathBuf>,
    notices: &mut Vec<Notice>,
) -> Result<Location, Failure> {
    let Some(raw) = raw else {
        return Err((None, "location is nil".into()));
    };
    let line = Some(raw.line);
    if raw.registry.is_empty() {
        return Err((line, "registry not set".into()));
    }
    let layout = layout_dir(&raw)?;
    let lister = lister_map(&raw, line)?;
    let (auth, credentials_file, auth_file) = credentials(&raw, auth_file)?;
    let (registry, site, cloud) = match layout {
        Some(dir) => (raw.registry.trim().to_string(), Site::Layout(dir), None),
        None => {
            let (registry, location, cloud) = registry(&raw.registry).map_err(|e| (line, e))?;
            (registry, Site::Registry(location), cloud)
        }
    };
    let is_ecr = cloud.as_ref().is_some_and(CloudRegistry::is_ecr);
    let auth_refresh = auth_refresh(&raw, &registry, is_ecr, notices)?;
    if let Some(creds) = auth.credentials() {
        notices.push(
            Notice::info("using credentials from config")
                .with("registry", registry.clone())
                .with("username", creds.username().to_string()),
        );
    }
    // `listertype` is an undocumented spelling that applies only without a `lister:` map; its
    // value is checked when the repo list is built (step 7), as in the original.
    let lister = lister.or_else(|| {
        (!raw.listertype.is_empty()).then(|| {
            lister_source(&raw.listertype, String::new())
                .unwrap_or(ListerChoice::Invalid(raw.listertype.clone()))
        })
    });
    Ok(Location {
        registry,
        site,
        auth,
        auth_refresh,
        cloud,
        skip_tls_verify: raw.skip_tls_verify,
        lister,
        auth_file,
        credentials_file,
        line: raw.line,
    })
}

/// The directory of a side that is an OCI image layout (`registry: oci:<dir>`), after checking
/// that no network or credential key is set on it; `None` for a registry.
fn layout_dir(raw: &RawLocation) -> Result<Option<PathBuf>, Failure> {
    match crate::layout::parse_location(&raw.registry) {
        Some(dir) => {
            let dir = dir.map_err(|e| (Some(raw.line), e))?;
            layout_keys(raw)?;
            Ok(Some(dir))
        }
        None => Ok(None),
    }
}

/// A side's `auth` (decoded), `credentials-file` (only without `auth`) and `auth-file` (the
/// side's, else the top-level one).
fn credentials(
    raw: &RawLocation,
    auth_file: Option<&PathBuf>,
) -> Result<(Auth, Option<PathBuf>, Option<PathBuf>), Failure> {
    let line = Some(raw.line);
    let auth = auth::decode(&raw.auth).map_err(|e| (line, e))?;
    let credentials_file = match raw.credentials_file.trim() {
        "" => None,
        _ if !matches!(auth, Auth::Omitted) => {
            return Err((
                line,
                "both 'auth' and 'credentials-file' are set: keep one of them".into(),
            ));
        }
        path => Some(PathBuf::from(path)),
    };
    let auth_file = match raw.auth_file.trim() {
        "" => auth_file.cloned(),
        path => Some(PathBuf::from(path)),
    };
    Ok((auth, credentials_file, auth_file))
}

/// Parses a `registry` value that is not a layout: the cloud registry it names, with a
/// public-ECR `account[:region]@` removed (the text kept for messages), and its host, port,
/// scheme and path prefix (docs/configuration.md#source-and-target).
fn registry(written: &str) -> Result<(String, RegistryLocation, Option<CloudRegistry>), String> {
    let (registry, cloud) = CloudRegistry::detect(written);
    // `user:password@host` would carry a secret into every log line and metric label that
    // names the registry; the message shows the value with that part masked.
    if let Some((userinfo, host)) = registry.rsplit_once('@') {
        let scheme = userinfo.find("://").map_or("", |i| &userinfo[..i + 3]);
        return Err(format!(
            "registry '{scheme}***@{host}' holds user information: a registry is \
             [scheme://]host[:port][/path]; put credentials in 'auth', \
             'credentials-file' or a credential file"
        ));
    }
    let location = RegistryLocation::parse(&registry).map_err(|e| {
        // `OCI:./x` reads as a host `OCI` with a port `./x`.
        let scheme = written.trim().get(..4);
        match scheme {
            Some(s) if s.eq_ignore_ascii_case("oci:") && s != "oci:" => format!(
                "{e}; layout directories are written `oci:<dir>` in lower case, e.g. \
                 'oci:/srv/mirror' or 'oci:./mirror'"
            ),
            _ => e,
        }
    })?;
    Ok((registry, location, cloud))
}

/// A side's `lister:` map (`type`, `search`; the last of a repeated key wins), `None` when
/// the key is absent.
fn lister_map(raw: &RawLocation, line: Option<usize>) -> Result<Option<ListerChoice>, Failure> {
    let lister = match &raw.lister {
        Some(pairs) => {
            let get = |key: &str| {
                pairs
                    .iter()
                    .rev()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
            };
            let kind = get("type").unwrap_or_default();
            if kind.is_empty() {
                return Err((line, "no lister type set".into()));
            }
            match lister_source(&kind, get("search").unwrap_or_default()) {
                Some(source) => Some(source),
                None => return Err((line, format!("invalid lister type: {kind}"))),
            }
        }
        None => None,
    };
    Ok(lister)
}

/// `auth-refresh`: only for ECR, at least an hour (docs/configuration.md#source-and-target).
fn auth_refresh(
    raw: &RawLocation,
    registry: &str,
    is_ecr: bool,
    notices: &mut Vec<Notice>,
) -> Result<Option<Duration>, Failure> {
    let line = Some(raw.line);
    let auth_refresh = match raw.auth_refresh {
        None => None,
        Some(_) if !is_ecr => {
            return Err((
                line,
                format!(
                    "'{}' wants authentication refresh, but is not an ECR registry",
                    raw.registry
                ),
            ));
        }
        Some(value) => {
            let minimum = Duration::from_secs(3600);
            match value.positive() {
                Some(d) if d >= minimum => Some(d),
                _ => {
                    notices.push(
                        Notice::warn("auth-refresh too short, setting to minimum")
                            .with("registry", registry.to_string()),
                    );
                    Some(minimum)
                }
            }
        }
    };
    Ok(auth_refresh)
}

/// A side that is an OCI image layout (`registry: oci:<dir>`) has no network and no
/// credentials: every key about those is an error naming it (docs/configuration.md#oci-image-layouts).
fn layout_keys(raw: &RawLocation) -> Result<(), Failure> {
    let set = [
        ("auth", !raw.auth.is_empty()),
        ("auth-refresh", raw.auth_refresh.is_some()),
        ("skip-tls-verify", raw.skip_tls_verify),
        ("lister", raw.lister.is_some()),
        ("listertype", !raw.listertype.is_empty()),
        ("auth-file", !raw.auth_file.trim().is_empty()),
        ("credentials-file", !raw.credentials_file.trim().is_empty()),
    ];
    match set.iter().find(|(_, is_set)| *is_set) {
        Some((key, _)) => Err((
            Some(raw.line),
            format!(
                "'{key}' does not apply to an OCI image layout ('{}'): remove it",
                raw.registry.trim()
            ),
        )),
        None => Ok(()),
    }
}

fn lister_source(kind: &str, search: String) -> Option<ListerChoice> {
    match kind {
        "catalog" => Some(ListerChoice::Catalog),
        "dockerhub" => Some(ListerChoice::DockerHub),
        "index" => Some(ListerChoice::Index { search }),
        _ => None,
    }
}

/// Step 7: the checks of the original's repo list creation, for tasks with a regex `from`.
pub(super) fn repo_list_source(source: &Location) -> Result<(), String> {
    // A layout lists its own repositories (its layout directories and reference names).
    let Some(registry) = source.registry_location() else {
        return Ok(());
    };
    let docker_hub = registry.host.is_docker_hub();
    match &source.lister {
        None | Some(ListerChoice::Catalog) if docker_hub => {
            Err("DockerHub only supports list types 'dockerhub' and 'index'".into())
        }
        Some(ListerChoice::Index { search }) if search.is_empty() => {
            Err("index lister requires a search expression".into())
        }
        Some(ListerChoice::Invalid(kind)) => Err(format!("invalid list source type '{kind}'")),
        _ => Ok(()),
    }
}
