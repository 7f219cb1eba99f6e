//! Repository listers: which repositories a source registry holds, for `from: regex:` mappings
//! (docs/configuration.md#listers).
//!
//! A source's `lister:` picks the kind: `catalog` (the distribution API's `_catalog`, the
//! default), `dockerhub` (the Docker Hub API: the logged-in user's repositories) or `index`
//! (the v1 search API). The global `lister:` sets how many repositories a list may hold
//! (`maxItems`, honoured exactly) and how long a list is reused (`cacheDuration`).
//!
//! [`Listers`] holds the cache. One instance serves every task of a run (and every run of a
//! daemon's configuration), so tasks with the same source registry, credentials and lister
//! share one list, where the original fetched it once per task. Adding a lister kind means a
//! variant of [`ListerKind`], a module with its `list` function, and one arm in
//! `Listers::fetch`.

mod catalog;
mod dockerhub;
mod http;
mod index;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::clients::Clients;
use crate::config::{ListerChoice, ListerSettings, Location};
use crate::failure::Failure;
use crate::plan::RepositoryList;
use crate::registry::Credentials;

pub use dockerhub::DOCKERHUB_API_ENV;
pub use index::DOCKERHUB_INDEX_ENV;

/// The lister a source uses, resolved from the config's [`ListerChoice`] and the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListerKind {
    /// `GET /v2/_catalog`, following `Link` pages.
    Catalog,
    /// Docker Hub API login, then the user's repositories.
    DockerHub,
    /// `GET /v1/search?q=<search>`.
    Index {
        /// The search term.
        search: String,
    },
    /// ECR and public ECR: `DescribeRepositories` through the AWS SDK, instead of `catalog`.
    Ecr,
    /// A directory of OCI image layouts (`registry: oci:<dir>`): its layout sub-directories
    /// and, for one shared layout, its `<repository>:<tag>` reference names.
    Layout,
}

impl ListerKind {
    /// The lister for a source location, or why it has none.
    ///
    /// ECR sources use the dedicated ECR listers instead of `catalog`, as the original does.
    ///
    /// # Errors
    ///
    /// When the location's lister is not one dregsy knows (`invalid lister type`).
    pub fn for_location(location: &Location) -> Result<ListerKind, String> {
        if location.layout().is_some() {
            return Ok(ListerKind::Layout);
        }
        match &location.lister {
            None | Some(ListerChoice::Catalog)
                if location.cloud.as_ref().is_some_and(|c| c.is_ecr()) =>
            {
                Ok(ListerKind::Ecr)
            }
            None | Some(ListerChoice::Catalog) => Ok(ListerKind::Catalog),
            Some(ListerChoice::DockerHub) => Ok(ListerKind::DockerHub),
            Some(ListerChoice::Index { search }) if search.is_empty() => {
                Err("index lister requires a search expression".into())
            }
            Some(ListerChoice::Index { search }) => Ok(ListerKind::Index {
                search: search.clone(),
            }),
            Some(ListerChoice::Invalid(kind)) => Err(format!("invalid list source type '{kind}'")),
        }
    }

    /// The name used in the config's `lister.type`.
    pub fn name(&self) -> &'static str {
        match self {
            ListerKind::Catalog => "catalog",
            ListerKind::DockerHub => "dockerhub",
            ListerKind::Index { .. } => "index",
            ListerKind::Ecr => "ECR",
            ListerKind::Layout => "OCI image layout",
        }
    }
}

/// What a cached list is shared by: the same registry, identity, TLS choice and lister.
#[derive(Clone, PartialEq, Eq)]
struct Key {
    registry: String,
    credentials: Option<Credentials>,
    skip_tls_verify: bool,
    kind: ListerKind,
}

/// A list and when it was fetched.
struct Cached {
    fetched: Instant,
    list: Arc<RepositoryList>,
}

/// One key's cache slot; its lock makes tasks that need the same list wait for one fetch.
type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// The repository lists of a run or of a daemon's configuration, with the lister settings.
pub struct Listers {
    settings: ListerSettings,
    /// A run lists a handful of sources, so a list of slots suffices.
    slots: Mutex<Vec<(Key, Slot)>>,
    /// Docker Hub API tokens, reused while valid.
    hub_tokens: dockerhub::Tokens,
}

impl Listers {
    /// Listers with the config's global `lister:` settings and an empty cache.
    pub fn new(settings: ListerSettings) -> Self {
        Listers {
            settings,
            slots: Mutex::new(Vec::new()),
            hub_tokens: dockerhub::Tokens::default(),
        }
    }

    /// The repositories of a source location, from the cache while it is fresh.
    ///
    /// At most `maxItems` names come back; when the registry has more, the list says so in
    /// [`RepositoryList::cut_at`], so the caller can warn instead of silently missing some.
    ///
    /// # Errors
    ///
    /// When the location has no valid lister, or the listing fails (the registry or API refuses,
    /// cannot be reached, or answers garbage); the message names the registry. A failed request
    /// of the registry client keeps its error, with its kind ([`Failure::Registry`]).
    pub async fn list(
        &self,
        location: &Location,
        clients: &Clients,
    ) -> Result<Arc<RepositoryList>, Failure> {
        let kind = ListerKind::for_location(location)?;
        let key = Key {
            registry: location.registry.clone(),
            credentials: location.auth.credentials().cloned(),
            skip_tls_verify: location.skip_tls_verify,
            kind: kind.clone(),
        };
        let slot = self.slot(key)?;
        let mut cached = slot.lock().await;
        if let (Some(entry), Some(duration)) = (cached.as_ref(), self.settings.cache_duration)
            && entry.fetched.elapsed() < duration
        {
            tracing::debug!(
                registry = %location.registry,
                lister = kind.name(),
                "using cached repository list"
            );
            return Ok(entry.list.clone());
        }
        let list = Arc::new(self.fetch(&kind, location, clients).await?);
        tracing::debug!(
            registry = %location.registry,
            lister = kind.name(),
            "retrieved list: {:?}",
            list.names
        );
        if self.settings.cache_duration.is_some() {
            *cached = Some(Cached {
                fetched: Instant::now(),
                list: list.clone(),
            });
        }
        Ok(list)
    }

    fn slot(&self, key: Key) -> Result<Slot, String> {
        let mut slots = self
            .slots
            .lock()
            .map_err(|_| "the repository list cache is unusable after a panic")?;
        if let Some((_, slot)) = slots.iter().find(|(k, _)| *k == key) {
            return Ok(slot.clone());
        }
        let slot = Slot::default();
        slots.push((key, slot.clone()));
        Ok(slot)
    }

    async fn fetch(
        &self,
        kind: &ListerKind,
        location: &Location,
        clients: &Clients,
    ) -> Result<RepositoryList, Failure> {
        let max = self.settings.max_items;
        let names = match kind {
            ListerKind::Catalog => catalog::list(location, clients, max).await,
            ListerKind::DockerHub => {
                let credentials = clients.credentials(location).await?;
                dockerhub::list(location, credentials.as_ref(), &self.hub_tokens, max).await
            }
            ListerKind::Index { search } => {
                let credentials = clients.credentials(location).await?;
                index::list(location, credentials.as_ref(), search, max).await
            }
            ListerKind::Ecr => clients
                .cloud()
                .list_ecr_repositories(location, fetch_limit(max))
                .await
                .unwrap_or_else(|| {
                    Err(Failure::Failed(format!(
                        "'{}' is not an ECR registry",
                        location.registry
                    )))
                }),
            ListerKind::Layout => match location.layout() {
                Some(dir) => crate::store::ImageStore::for_layout(dir)
                    .list_repositories(fetch_limit(max))
                    .await
                    .map_err(Failure::from),
                None => Err(Failure::Failed(format!(
                    "'{}' is not an OCI image layout",
                    location.registry
                ))),
            },
        }
        .map_err(|e| e.context(format!("{} lister", kind.name())))?;
        Ok(limit(names, max))
    }
}

/// The registry a lister of the network asks, or why a side that is no registry has none.
fn registry_location(location: &Location) -> Result<&crate::plan::RegistryLocation, String> {
    location
        .registry_location()
        .ok_or_else(|| format!("'{}' is not a registry", location.registry))
}

/// Cuts a list fetched with one name to spare down to `max`, remembering that there were more.
fn limit(mut names: Vec<String>, max: Option<usize>) -> RepositoryList {
    match max {
        Some(max) if names.len() > max => {
            names.truncate(max);
            RepositoryList {
                names,
                cut_at: Some(max),
            }
        }
        _ => RepositoryList {
            names,
            cut_at: None,
        },
    }
}

/// How many names a lister should fetch: one more than `maxItems`, to tell "exactly that many"
/// from "more than that".
fn fetch_limit(max: Option<usize>) -> Option<usize> {
    max.map(|m| m.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Auth, RegistryLocation, Site};

    fn location(registry: &str, lister: Option<ListerChoice>) -> Location {
        let (registry, cloud) = crate::cloud::CloudRegistry::detect(registry);
        let site = Site::Registry(RegistryLocation::parse(&registry).expect("a registry"));
        Location {
            registry,
            site,
            cloud,
            auth: Auth::Omitted,
            auth_refresh: None,
            skip_tls_verify: false,
            lister,
            auth_file: None,
            credentials_file: None,
            line: 1,
        }
    }

    #[test]
    fn kind_per_location() {
        let kind = |r: &str, l| ListerKind::for_location(&location(r, l));
        assert_eq!(kind("reg.example.com", None), Ok(ListerKind::Catalog));
        assert_eq!(
            kind("reg.example.com", Some(ListerChoice::DockerHub)),
            Ok(ListerKind::DockerHub)
        );
        assert_eq!(
            kind(
                "reg.example.com",
                Some(ListerChoice::Index { search: "x".into() })
            ),
            Ok(ListerKind::Index { search: "x".into() })
        );
        for ecr in [
            "123456789012.dkr.ecr.eu-central-1.amazonaws.com",
            "public.ecr.aws",
        ] {
            assert_eq!(kind(ecr, None), Ok(ListerKind::Ecr));
            assert_eq!(kind(ecr, Some(ListerChoice::Catalog)), Ok(ListerKind::Ecr));
        }
        assert_eq!(
            kind("r", Some(ListerChoice::Invalid("x".into()))),
            Err("invalid list source type 'x'".into())
        );
    }

    #[test]
    fn limits_are_exact_and_say_when_they_cut() {
        let names = |n: usize| (0..n).map(|i| format!("r{i}")).collect::<Vec<_>>();
        assert_eq!(limit(names(3), Some(3)).cut_at, None);
        let cut = limit(names(4), Some(3));
        assert_eq!(cut.names, names(3));
        assert_eq!(cut.cut_at, Some(3));
        assert_eq!(limit(names(500), None).names.len(), 500);
        assert_eq!(fetch_limit(Some(100)), Some(101));
        assert_eq!(fetch_limit(None), None);
    }

    #[tokio::test]
    async fn a_layout_lists_its_repositories_up_to_max_items() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = crate::layout::LayoutRoot::new(dir.path());
        for name in ["a", "b/c", "d"] {
            let repository = crate::registry::Repository::parse(name).expect("valid");
            root.create(&repository).await.expect("created");
        }
        let text = format!(
            "lister: {{maxItems: 2}}\ntasks:\n- name: t\n  source: {{registry: 'oci:{}'}}\n  \
             target: {{registry: 127.0.0.1:1}}\n  mappings: [{{from: 'regex:.*'}}]\n",
            dir.path().display()
        );
        let (config, _) =
            crate::config::load_str(std::path::Path::new("t.yaml"), &text).expect("valid");
        let source = &config.tasks[0].source;
        assert_eq!(ListerKind::for_location(source), Ok(ListerKind::Layout));
        // A layout needs no credentials: an environment without any.
        let environment = crate::clients::ProcessEnvironment {
            credentials: crate::credentials::Environment::default(),
            cloud: crate::cloud::CloudEnvironment::from_vars(|_| None),
        };
        let clients = Clients::new(&config, &environment);
        let list = Listers::new(config.lister)
            .list(source, &clients)
            .await
            .expect("listed");
        assert_eq!(list.names, vec!["a", "b/c"]);
        assert_eq!(list.cut_at, Some(2));
        let all = Listers::new(ListerSettings {
            max_items: None,
            ..config.lister
        })
        .list(source, &clients)
        .await
        .expect("listed");
        assert_eq!(all.names, vec!["a", "b/c", "d"]);
    }
}
