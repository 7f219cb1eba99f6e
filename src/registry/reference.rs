//! Names of things in a registry: the registry host, a repository, a tag or digest.
//!
//! Validation happens here, once, so the rest of the client can build URLs from these values
//! without escaping surprises, and a user sees "invalid repository name" rather than a 404.

use std::fmt;

use super::digest::Digest;
use super::error::{Error, ErrorKind, Result};

/// The host names that all mean Docker Hub
/// (docs/behaviour.md#image-matching-and-repository-mapping).
const DOCKER_HUB_ALIASES: [&str; 4] = [
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

/// Where Docker Hub's distribution API actually lives.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// The URL scheme used to talk to a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain HTTP, for local or test registries.
    Http,
    /// HTTPS, the default.
    Https,
}

impl Scheme {
    /// The scheme as written in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A registry as written in the configuration: `host[:port]`, optionally prefixed with
/// `http://` or `https://` to choose the scheme explicitly (our extension).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RegistryHost {
    /// `host[:port]` as written (lowercased), without scheme.
    name: String,
    scheme: Option<Scheme>,
}

impl RegistryHost {
    /// Parses `[http://|https://]host[:port]`; a trailing `/` is tolerated.
    ///
    /// # Errors
    ///
    /// When `text` is not a valid host with an optional port.
    pub fn parse(text: &str) -> Result<RegistryHost> {
        let invalid = |why: &str| {
            Error::new(
                ErrorKind::Invalid,
                format!("invalid registry '{text}': {why}"),
            )
        };
        let trimmed = text.trim();
        let (scheme, rest) = if let Some(rest) = strip_prefix_ignore_case(trimmed, "http://") {
            (Some(Scheme::Http), rest)
        } else if let Some(rest) = strip_prefix_ignore_case(trimmed, "https://") {
            (Some(Scheme::Https), rest)
        } else if trimmed.contains("://") {
            return Err(invalid("only http:// and https:// are supported"));
        } else {
            (None, trimmed)
        };
        let name = rest.strip_suffix('/').unwrap_or(rest).to_ascii_lowercase();
        if name.is_empty() {
            return Err(invalid("the host is empty"));
        }
        if name.contains('/') {
            return Err(invalid(
                "a registry is a host with an optional port, without a path",
            ));
        }
        if let Some(bad) = name.chars().find(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'))
        }) {
            return Err(invalid(&format!(
                "character '{bad}' is not allowed in a host"
            )));
        }
        let (host, port) = split_port(&name);
        if let Some(port) = port
            && port.parse::<u16>().is_err()
        {
            return Err(invalid(&format!("'{port}' is not a port number")));
        }
        if !is_host(host) {
            return Err(invalid(&format!(
                "'{host}' is not a host name or an IP address"
            )));
        }
        Ok(RegistryHost { name, scheme })
    }

    /// The registry Docker Hub's short names (`busybox`, `library/busybox`) refer to.
    pub fn docker_hub() -> RegistryHost {
        RegistryHost {
            name: "docker.io".to_owned(),
            scheme: None,
        }
    }

    /// The name of a directory of OCI image layouts in image references: `oci:<dir>` as the
    /// config writes it, so that `<name>/<repository>:<tag>` reads as skopeo's `oci:` reference
    /// of that image (docs/configuration.md#oci-image-layouts). Never sent to a network.
    pub fn layout(registry: &str) -> RegistryHost {
        RegistryHost {
            name: registry.trim().trim_end_matches('/').to_owned(),
            scheme: None,
        }
    }

    /// `host[:port]` as written, without scheme: the name users know it by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The scheme written explicitly, if any.
    pub fn scheme(&self) -> Option<Scheme> {
        self.scheme
    }

    /// Whether this is one of Docker Hub's names.
    pub fn is_docker_hub(&self) -> bool {
        DOCKER_HUB_ALIASES.contains(&self.name.as_str())
    }

    /// `host[:port]` where the distribution API is served (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.is_docker_hub() {
            DOCKER_HUB_API
        } else {
            &self.name
        }
    }

    /// The host without its port: the directory name under `certs-dir`
    /// (docs/configuration.md#the-compatibility-relays-skopeo-docker).
    pub fn host_without_port(&self) -> &str {
        split_port(&self.name).0
    }
}

impl fmt::Display for RegistryHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl fmt::Debug for RegistryHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scheme {
            Some(s) => write!(f, "RegistryHost({}://{})", s.as_str(), self.name),
            None => write!(f, "RegistryHost({})", self.name),
        }
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Splits `host:port`, keeping bracketed IPv6 addresses whole.
/// Whether `host` (without its port) is a host name, an IPv4 address or a bracketed IPv6
/// address: what Docker's reference grammar calls a domain (dot-separated labels of letters,
/// digits and `-`, not at a label's ends; `_` is tolerated, as some internal names have it).
/// Anything else would not name the same registry once printed and read again.
fn is_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[') {
        return inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
    }
    host.split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    })
}

fn split_port(name: &str) -> (&str, Option<&str>) {
    if name.starts_with('[') {
        return match name.find(']') {
            Some(end) => match name[end + 1..].strip_prefix(':') {
                Some(port) => (&name[..=end], Some(port)),
                None => (name, None),
            },
            None => (name, None),
        };
    }
    match name.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (name, None),
    }
}

/// A repository name, validated against the OCI distribution grammar:
/// `component(/component)*`, each component `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository {
    name: String,
}

/// The longest repository name registries accept.
const MAX_REPOSITORY_LEN: usize = 255;

impl Repository {
    /// Validates `name` as a repository name.
    ///
    /// # Errors
    ///
    /// When `name` is not a valid OCI repository name (components of lowercase letters and digits
    /// with separators, at most 255 characters).
    pub fn parse(name: &str) -> Result<Repository> {
        let invalid = |why: String| {
            Error::new(
                ErrorKind::Invalid,
                format!("invalid repository name '{name}': {why}"),
            )
        };
        if name.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        if name.len() > MAX_REPOSITORY_LEN {
            return Err(invalid(format!(
                "it is longer than {MAX_REPOSITORY_LEN} characters"
            )));
        }
        for component in name.split('/') {
            check_component(component).map_err(&invalid)?;
        }
        Ok(Repository {
            name: name.to_owned(),
        })
    }

    /// Validates `path` as a repository of `registry`, adding `library/` to one-segment names
    /// on Docker Hub, where `busybox` means `library/busybox`.
    ///
    /// # Errors
    ///
    /// As [`Repository::parse`].
    pub fn on(registry: &RegistryHost, path: &str) -> Result<Repository> {
        let path = path.strip_prefix('/').unwrap_or(path);
        if registry.is_docker_hub() && !path.contains('/') {
            Repository::parse(&format!("library/{path}"))
        } else {
            Repository::parse(path)
        }
    }

    /// The name as used in URLs and scopes.
    pub fn as_str(&self) -> &str {
        &self.name
    }
}

fn check_component(component: &str) -> std::result::Result<(), String> {
    if component.is_empty() {
        return Err("it has an empty path component (a leading, trailing or double '/')".into());
    }
    if let Some(c) = component.chars().find(|c| c.is_ascii_uppercase()) {
        return Err(format!("uppercase letters are not allowed ('{c}')"));
    }
    if let Some(c) = component
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!("character '{c}' is not allowed"));
    }
    let bytes = component.as_bytes();
    let is_sep = |b: u8| matches!(b, b'.' | b'_' | b'-');
    if is_sep(bytes[0]) || is_sep(bytes[bytes.len() - 1]) {
        return Err(format!(
            "component '{component}' must start and end with a letter or digit"
        ));
    }
    // Separators between alphanumeric runs: '.', '_', '__' or any number of '-'.
    for run in component.split(|c: char| c.is_ascii_alphanumeric()) {
        let ok = run.is_empty()
            || run == "."
            || run == "_"
            || run == "__"
            || run.bytes().all(|b| b == b'-');
        if !ok {
            return Err(format!(
                "component '{component}' has the separator '{run}' (use '.', '_', '__' or dashes)"
            ));
        }
    }
    Ok(())
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl fmt::Debug for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Repository({})", self.name)
    }
}

/// Which manifest of a repository: a tag, or a digest.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum TagOrDigest {
    /// A tag, validated as `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    Tag(String),
    /// A content digest.
    Digest(Digest),
}

impl TagOrDigest {
    /// Validates a tag.
    ///
    /// # Errors
    ///
    /// When `tag` is not a valid OCI tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
    pub fn tag(tag: &str) -> Result<TagOrDigest> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        let first_ok = tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if !first_ok || tag.len() > 128 || !tag.chars().all(valid_char) {
            return Err(Error::new(
                ErrorKind::Invalid,
                format!(
                    "invalid tag '{}': a tag has 1 to 128 letters, digits, '_', '.' or '-' and does not start with '.' or '-'",
                    super::error::truncate(tag, 140)
                ),
            ));
        }
        Ok(TagOrDigest::Tag(tag.to_owned()))
    }

    /// Parses a digest (`sha256:…`) or else a tag.
    ///
    /// # Errors
    ///
    /// When `text` is neither a valid digest nor a valid tag.
    pub fn parse(text: &str) -> Result<TagOrDigest> {
        if text.contains(':') {
            Digest::parse(text).map(TagOrDigest::Digest)
        } else {
            TagOrDigest::tag(text)
        }
    }

    /// The text used in a manifest URL.
    pub fn as_str(&self) -> &str {
        match self {
            TagOrDigest::Tag(t) => t,
            TagOrDigest::Digest(d) => d.as_str(),
        }
    }

    /// The digest, when this is one.
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            TagOrDigest::Tag(_) => None,
            TagOrDigest::Digest(d) => Some(d),
        }
    }
}

impl From<Digest> for TagOrDigest {
    fn from(d: Digest) -> Self {
        TagOrDigest::Digest(d)
    }
}

impl fmt::Display for TagOrDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TagOrDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagOrDigest::Tag(t) => write!(f, "Tag({t})"),
            TagOrDigest::Digest(d) => write!(f, "{d:?}"),
        }
    }
}

/// A full image reference: registry, repository and tag or digest, such as
/// `127.0.0.1:5000/team/app:1.2` or `busybox` (Docker Hub, `library/busybox:latest`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Where the repository lives.
    pub registry: RegistryHost,
    /// The repository in that registry.
    pub repository: Repository,
    /// The manifest: a tag (`latest` when none was written) or a digest.
    pub target: TagOrDigest,
}

impl Reference {
    /// Parses a reference the way Docker does: the first path segment is a registry when it
    /// contains `.` or `:` or is `localhost`, or carries an explicit `http://`/`https://`;
    /// otherwise the reference is on Docker Hub. `name@digest` wins over `name:tag@digest`.
    ///
    /// # Errors
    ///
    /// When a part of `text` (registry, repository, tag or digest) is invalid.
    pub fn parse(text: &str) -> Result<Reference> {
        let (scheme_prefix, rest) = match text.find("://") {
            Some(i) => (&text[..i + 3], &text[i + 3..]),
            None => ("", text),
        };
        let (registry, remainder) = match rest.split_once('/') {
            Some((first, remainder))
                if !scheme_prefix.is_empty()
                    || first.contains('.')
                    || first.contains(':')
                    || first == "localhost" =>
            {
                (
                    RegistryHost::parse(&format!("{scheme_prefix}{first}"))?,
                    remainder,
                )
            }
            _ if !scheme_prefix.is_empty() => {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    format!("invalid reference '{text}': no repository after the registry"),
                ));
            }
            _ => (RegistryHost::docker_hub(), rest),
        };
        let (name, target) = if let Some((name, digest)) = remainder.split_once('@') {
            let name = name.rsplit_once(':').map_or(name, |(n, _tag)| n);
            (name, TagOrDigest::Digest(Digest::parse(digest)?))
        } else {
            match remainder.rsplit_once(':') {
                Some((name, tag)) if !tag.contains('/') => (name, TagOrDigest::tag(tag)?),
                _ => (remainder, TagOrDigest::Tag("latest".to_owned())),
            }
        };
        let repository = Repository::on(&registry, name)?;
        Ok(Reference {
            registry,
            repository,
            target,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = match self.target {
            TagOrDigest::Tag(_) => ':',
            TagOrDigest::Digest(_) => '@',
        };
        // A host without `.` or `:` that is not `localhost` is a registry only by its written
        // scheme: printed without it, it would read as a Docker Hub repository.
        let name = self.registry.name();
        let scheme = match self.registry.scheme() {
            Some(scheme) if !name.contains(['.', ':']) && name != "localhost" => match scheme {
                Scheme::Http => "http://",
                Scheme::Https => "https://",
            },
            _ => "",
        };
        write!(
            f,
            "{scheme}{}/{}{sep}{}",
            self.registry, self.repository, self.target
        )
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_aliases() {
        for alias in DOCKER_HUB_ALIASES {
            let host = RegistryHost::parse(alias).unwrap();
            assert!(host.is_docker_hub());
            assert_eq!(host.api_host(), "registry-1.docker.io");
            let repo = Repository::on(&host, "busybox").unwrap();
            assert_eq!(repo.as_str(), "library/busybox");
            let repo = Repository::on(&host, "/team/app").unwrap();
            assert_eq!(repo.as_str(), "team/app");
        }
        let local = RegistryHost::parse("127.0.0.1:5000").unwrap();
        assert!(!local.is_docker_hub());
        assert_eq!(
            Repository::on(&local, "busybox").unwrap().as_str(),
            "busybox"
        );
    }

    #[test]
    fn registry_host_schemes_and_ports() {
        let h = RegistryHost::parse("http://127.0.0.1:5000/").unwrap();
        assert_eq!(h.scheme(), Some(Scheme::Http));
        assert_eq!(h.name(), "127.0.0.1:5000");
        assert_eq!(h.host_without_port(), "127.0.0.1");
        let h = RegistryHost::parse("HTTPS://Registry.Example.com").unwrap();
        assert_eq!(h.scheme(), Some(Scheme::Https));
        assert_eq!(h.name(), "registry.example.com");
        let h = RegistryHost::parse("[::1]:5000").unwrap();
        assert_eq!(h.host_without_port(), "[::1]");
        assert!(RegistryHost::parse("ftp://x").is_err());
        assert!(RegistryHost::parse("host/path").is_err());
        assert!(RegistryHost::parse("host:99999").is_err());
        assert!(RegistryHost::parse("").is_err());
    }

    #[test]
    fn only_host_names_and_ip_addresses_are_hosts() {
        for ok in [
            "registry.example.com",
            "my_registry:5000",
            "10.0.0.1",
            "[::1]",
            "[2001:db8::1]:443",
        ] {
            assert!(RegistryHost::parse(ok).is_ok(), "{ok}");
        }
        // Found by the `reference` fuzz target: `httPS://]]/i` parsed, printed as
        // `]]/i:latest`, which is not a reference.
        for bad in [
            "httPS://]]",
            "]]",
            "[::1",
            "[zz]:5000",
            "[::1]x",
            "a]b.com",
            "a..b",
            "-a.example.com",
            "a-.example.com",
        ] {
            let error = RegistryHost::parse(bad).expect_err(bad);
            assert!(error.to_string().contains("invalid registry"), "{error}");
        }
        assert!(Reference::parse("httPS://]]/i").is_err());
        // Found by the same target: a host that is a registry only by its scheme keeps it
        // when printed, so the text reads as the same reference again.
        let reference = Reference::parse("httPS://us_/c_ac_g").unwrap();
        assert_eq!(reference.to_string(), "https://us_/c_ac_g:latest");
        let again = Reference::parse(&reference.to_string()).unwrap();
        assert_eq!(again.registry.name(), "us_");
        assert_eq!(again.repository, reference.repository);
        assert_eq!(
            Reference::parse("https://registry.example.com/a/b:1")
                .unwrap()
                .to_string(),
            "registry.example.com/a/b:1"
        );
    }

    #[test]
    fn repository_grammar() {
        for ok in ["a", "a/b", "a.b/c_d/e__f", "a--b", "0/1", "library/busybox"] {
            assert!(Repository::parse(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("A", "uppercase"),
            ("a//b", "empty path component"),
            ("/a", "empty path component"),
            ("a/", "empty path component"),
            ("-a", "start and end"),
            ("a.", "start and end"),
            ("a..b", "separator '..'"),
            ("a___b", "separator '___'"),
            ("a b", "character ' '"),
            ("a:b", "character ':'"),
        ] {
            let err = Repository::parse(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.starts_with("invalid repository name"), "{err}");
        }
        assert!(Repository::parse(&"a".repeat(256)).is_err());
    }

    #[test]
    fn tags() {
        assert!(TagOrDigest::tag("1.30").is_ok());
        assert!(TagOrDigest::tag("_x").is_ok());
        assert!(TagOrDigest::tag(".x").is_err());
        assert!(TagOrDigest::tag("").is_err());
        assert!(TagOrDigest::tag(&"a".repeat(129)).is_err());
        assert!(TagOrDigest::tag("a/b").is_err());
        let d = format!("sha256:{}", "0".repeat(64));
        assert!(matches!(TagOrDigest::parse(&d), Ok(TagOrDigest::Digest(_))));
    }

    #[test]
    fn references() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        let r = Reference::parse("localhost/a/b:1").unwrap();
        assert_eq!(r.registry.name(), "localhost");
        assert_eq!(r.repository.as_str(), "a/b");
        let r = Reference::parse("127.0.0.1:5000/a:1.2").unwrap();
        assert_eq!(r.registry.name(), "127.0.0.1:5000");
        assert_eq!(r.target, TagOrDigest::Tag("1.2".into()));
        let d = format!("sha256:{}", "1".repeat(64));
        let r = Reference::parse(&format!("r.io:5000/a/b:1@{d}")).unwrap();
        assert_eq!(r.target.as_str(), d);
        assert_eq!(r.repository.as_str(), "a/b");
        let r = Reference::parse("http://127.0.0.1:5000/x").unwrap();
        assert_eq!(r.registry.scheme(), Some(Scheme::Http));
        assert!(Reference::parse("r.io/UPPER").is_err());
        assert!(Reference::parse("http://r.io").is_err());
    }
}
