//! Entry points of the fuzz targets under `fuzz/`, and of the test that replays their corpus
//! (`tests/fuzz_corpus.rs`). Each takes arbitrary bytes and feeds them to one parser of what a
//! registry, a token service or a user hands dregsy; a panic is a bug, an error is fine.
//! Not a supported API: hidden from the docs, shaped for fuzzing only.

use std::path::Path;
use std::time::SystemTime;

use bytes::Bytes;
use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

use crate::plan::tags::TagSet;
use crate::registry::{self, Manifest, Platform, Reference, media_type};

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// Every target: its name (the `fuzz/fuzz_targets/<name>.rs` file and the
/// `fuzz/corpus/<name>/` directory) and its entry point.
pub const TARGETS: &[(&str, Target)] = &[
    ("manifest", manifest),
    ("www_authenticate", www_authenticate),
    ("link", link),
    ("token_response", token_response),
    ("error_body", error_body),
    ("rate_limit", rate_limit),
    ("reference", reference),
    ("config", config),
    ("credential_file", credential_file),
    ("tag_filters", tag_filters),
];

/// A manifest or index as a registry sends it. The first byte picks the `Content-Type` it
/// came with (each manifest type, a generic one, or none); the rest is the body.
pub fn manifest(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let generic = ["application/json", "application/octet-stream"];
    let types: Vec<&str> = media_type::ALL.iter().copied().chain(generic).collect();
    let content_type = types.get(usize::from(pick) % (types.len() + 1)).copied();
    let Ok(manifest) = Manifest::from_bytes(content_type, Bytes::copy_from_slice(body)) else {
        return;
    };
    let _ = manifest.descriptor();
    let _ = manifest.check_pushable();
    if manifest.is_index() {
        let _ = manifest.children();
        let _ = manifest.select_platform(&Platform::host());
        if let Ok(platform) = Platform::parse("linux/arm/v7") {
            let _ = manifest.select_platform(&platform);
        }
    } else {
        let _ = manifest.blobs();
    }
}

/// A `WWW-Authenticate` header value.
pub fn www_authenticate(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for challenge in registry::parse_challenges(&text) {
        let _ = challenge.param("realm");
    }
}

/// A `Link` header of a tag list or catalog page.
pub fn link(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = registry::next_link(&text);
    if let Ok(here) = Url::parse("https://registry.example:5000/v2/a/tags/list?n=10")
        && let Ok(Some(next)) = registry::next_page(&here, &here, Some(&text))
    {
        assert_eq!(next.host_str(), here.host_str(), "a Link left the registry");
        assert_eq!(next.scheme(), "https", "a Link left HTTPS");
    }
}

/// A token service's answer: a token response, or a refusal's body.
pub fn token_response(data: &[u8]) {
    let _ = registry::parse_token_response(data);
    if let Some(text) = registry::token_error_text(data) {
        assert!(
            text.chars().count() <= 201,
            "an explanation longer than its bound"
        );
    }
}

/// An error body of the distribution API (or anything else a registry sends with an error).
pub fn error_body(data: &[u8]) {
    if let Some(text) = registry::registry_error_text(data) {
        assert!(
            text.chars().count() <= 201,
            "an explanation longer than its bound"
        );
    }
}

/// `ratelimit-limit` / `ratelimit-remaining` and `Retry-After` values.
pub fn rate_limit(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = registry::parse_limit_header(&text);
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, value);
        let _ = registry::retry_after(&headers, SystemTime::now());
    }
}

/// An image reference as a config file or a registry listing names it.
pub fn reference(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(reference) = Reference::parse(&text) {
        // What parses must print as something that parses to the same.
        let again = Reference::parse(&reference.to_string());
        let same = again.as_ref().is_ok_and(|again| {
            again.registry.name() == reference.registry.name()
                && again.repository == reference.repository
                && again.target == reference.target
        });
        assert!(
            same,
            "'{reference}' does not parse to the same again: {again:?}"
        );
    }
    let _ = registry::RegistryHost::parse(&text);
    let _ = registry::Repository::parse(&text);
    let _ = registry::TagOrDigest::parse(&text);
    let _ = Platform::parse(&text);
}

/// A config file.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::config::load_str(Path::new("fuzz.yaml"), text);
    }
}

/// A Docker `config.json` or podman `auth.json` credential file, and a registry looked up in
/// it.
pub fn credential_file(data: &[u8]) {
    use crate::credentials::file::{AuthFile, Key};
    if let Ok(file) = AuthFile::parse(Path::new("/fuzz/config.json"), data) {
        for registry in [
            "docker.io",
            "registry.example:5000/team/app",
            "127.0.0.1:5000",
        ] {
            let _ = file.lookup(&Key::of_registry(registry));
        }
    }
    let _ = Key::from_file(&String::from_utf8_lossy(data)).server_url();
}

/// A mapping's `tags` list and a source's tag listing, separated by a NUL byte; lines are
/// entries.
pub fn tag_filters(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (entries, listed) = text.split_once('\0').unwrap_or((&text, ""));
    let entries: Vec<String> = entries.lines().map(str::to_owned).collect();
    let listed: Vec<String> = listed.lines().map(str::to_owned).collect();
    if let Ok(set) = TagSet::parse(&entries) {
        let expansion = set.expand(Some(&listed));
        for tag in &expansion.tags {
            assert!(
                listed.contains(tag) || entries.iter().any(|e| e.trim() == tag),
                "tag '{tag}' came from nowhere"
            );
        }
    }
}
