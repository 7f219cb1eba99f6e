//! The `index` lister: the v1 search API, `GET <index>/v1/search?q=<search>&n=<n>&page=<p>`,
//! returning the result names (docs/configuration.md#source-and-target).
//!
//! Where the original handed `maxItems` to Docker's library as the result limit, and so broke
//! for `-1` or anything above 100, we ask in pages of at most 100 and honour `maxItems`, with
//! `-1` meaning no limit (docs/configuration.md#listers).
//!
//! For Docker Hub sources the index is `https://index.docker.io` (or the value of
//! [`DOCKERHUB_INDEX_ENV`]) and is asked anonymously; for other registries it is the registry
//! itself, over HTTPS (plain HTTP when written `http://…`, or as a fallback with
//! `skip-tls-verify`), with the source's credentials as Basic auth when it has any.

use reqwest::Url;
use reqwest::header::ACCEPT;
use serde::Deserialize;

use super::http::{Http, Reply};
use crate::config::Location;
use crate::failure::Failure;
use crate::registry::{Credentials, RegistryHost, Scheme};

/// Overrides Docker Hub's search index (default `https://index.docker.io`).
pub const DOCKERHUB_INDEX_ENV: &str = "DREGSY_DOCKERHUB_INDEX";

const DEFAULT_INDEX: &str = "https://index.docker.io";

/// The most results v1 search returns per page.
const PAGE_SIZE: usize = 100;

/// A bound on pages, so a server that always fills its pages cannot keep us busy forever.
const MAX_PAGES: usize = 10_000;

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    results: Vec<Result_>,
    num_pages: Option<u64>,
}

#[derive(Deserialize)]
struct Result_ {
    name: String,
}

/// The names v1 search finds for `search`, at most `max + 1` of them.
pub(super) async fn list(
    location: &Location,
    credentials: Option<&Credentials>,
    search: &str,
    max: Option<usize>,
) -> Result<Vec<String>, Failure> {
    let host = &super::registry_location(location)?.host;
    let hub = is_docker_hub(host);
    let http = Http::new(location.skip_tls_verify)?;
    let credentials = if hub { None } else { credentials };
    let mut base = index_root(host, hub)?;
    let limit = super::fetch_limit(max);
    let page_size = limit.unwrap_or(PAGE_SIZE).clamp(1, PAGE_SIZE);
    let mut names = Vec::new();
    for page_number in 1..=MAX_PAGES {
        let mut url = base
            .join("v1/search")
            .map_err(|e| format!("cannot build the search address: {e}"))?;
        url.query_pairs_mut()
            .append_pair("q", search)
            .append_pair("n", &page_size.to_string())
            .append_pair("page", &page_number.to_string());
        let send = |url: Url| {
            http.send(move |client| {
                let request = client.get(url.clone()).header(ACCEPT, "application/json");
                match credentials {
                    Some(c) => request.basic_auth(c.username(), Some(c.password())),
                    None => request,
                }
            })
        };
        let reply = match send(url.clone()).await {
            // Like Docker with an insecure registry: no TLS there, so try plain HTTP.
            Err(_)
                if page_number == 1
                    && !hub
                    && location.skip_tls_verify
                    && host.scheme().is_none()
                    && base.scheme() == "https" =>
            {
                base.set_scheme("http")
                    .map_err(|_| "cannot switch the search address to plain HTTP")?;
                url.set_scheme("http")
                    .map_err(|_| "cannot switch the search address to plain HTTP")?;
                send(url.clone()).await
            }
            other => other,
        }
        .map_err(|e| e.context(format_args!("searching '{search}' at {url}")))?;
        let page = parse(&reply, &format!("searching '{search}' at {url}"))?;
        let count = page.results.len();
        names.extend(page.results.into_iter().map(|r| r.name));
        let last = count < page_size
            || page.num_pages.is_some_and(|n| page_number as u64 >= n)
            || limit.is_some_and(|l| names.len() >= l);
        if last {
            return Ok(names);
        }
    }
    Err(format!(
        "more than {MAX_PAGES} pages of search results; the search API's paging seems to loop"
    )
    .into())
}

/// The page `reply` holds, after `doing` (`searching '…' at …`).
fn parse(reply: &Reply, doing: &str) -> Result<Page, Failure> {
    if !reply.status.is_success() {
        return Err(reply.refusal(doing, ""));
    }
    serde_json::from_slice(&reply.body)
        .map_err(|e| Failure::Failed(format!("{doing}: invalid response ({e})")))
}

/// Docker's test for "the official index": Docker Hub's names, and any `docker.com` /
/// `docker.io` host.
fn is_docker_hub(host: &RegistryHost) -> bool {
    let name = host.host_without_port();
    host.is_docker_hub()
        || ["docker.com", "docker.io"]
            .iter()
            .any(|d| name == *d || name.ends_with(&format!(".{d}")))
}

fn index_root(host: &RegistryHost, hub: bool) -> Result<Url, String> {
    let text = if hub {
        std::env::var(DOCKERHUB_INDEX_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_INDEX.to_string())
    } else {
        let scheme = host.scheme().unwrap_or(Scheme::Https);
        format!("{}://{}", scheme.as_str(), host.name())
    };
    let text = format!("{}/", text.trim().trim_end_matches('/'));
    Url::parse(&text).map_err(|e| format!("invalid search index address '{text}': {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_hosts() {
        for hub in [
            "docker.io",
            "index.docker.io",
            "registry.hub.docker.com",
            "registry-1.docker.io",
            "mirror.docker.com",
        ] {
            assert!(is_docker_hub(&RegistryHost::parse(hub).unwrap()), "{hub}");
        }
        for other in ["quay.io", "127.0.0.1:5000", "notdocker.io"] {
            assert!(
                !is_docker_hub(&RegistryHost::parse(other).unwrap()),
                "{other}"
            );
        }
    }

    #[test]
    fn roots() {
        let host = RegistryHost::parse("127.0.0.1:5000").unwrap();
        assert_eq!(
            index_root(&host, false).unwrap().as_str(),
            "https://127.0.0.1:5000/"
        );
        let host = RegistryHost::parse("http://127.0.0.1:5000").unwrap();
        assert_eq!(
            index_root(&host, false).unwrap().as_str(),
            "http://127.0.0.1:5000/"
        );
    }
}
