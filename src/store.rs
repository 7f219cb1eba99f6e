//! Where images are: a registry, or a directory of OCI image layouts. The one interface the
//! engine copies through (README.md, "Air-gapped mirrors"; docs/configuration.md#oci-image-layouts).
//!
//! [`ImageStore`] offers what the native engine, the planner and the up-to-date checks need, in
//! the distribution spec's terms: manifests (head, get, put), blobs (head, get, push, mount),
//! the tags of a repository and the repositories of the store. A registry answers through its
//! [`Registry`] client; a layout directory through [`crate::layout`]. Errors are the registry
//! client's [`Error`], so the engine's decisions (retry, not found) work the same on both.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::layout::{self, Layout, LayoutRoot};
use crate::registry::{
    ByteStream, Digest, Error, ErrorKind, Manifest, ManifestHead, MountOutcome, PushedReferrer,
    Referrer, Registry, Repository, Result, RetryPolicy, TagOrDigest, Tries, UploadSession,
};

/// A source or target of copies: a registry client, or a directory of image layouts.
#[derive(Clone)]
pub enum ImageStore {
    /// A registry, through its client (one per registry and identity).
    Registry(Registry),
    /// A directory of OCI image layouts, `registry: oci:<dir>`.
    Layouts(Layouts),
}

/// A directory of OCI image layouts with the layouts written so far: a repository's layout is
/// set up (directories, `oci-layout`, `index.json`, clean-up of a killed run's temporary files)
/// once per run, not per blob.
#[derive(Clone)]
pub struct Layouts {
    root: LayoutRoot,
    written: Arc<Mutex<HashMap<Repository, Layout>>>,
    /// The repositories the directory held when a blob was first looked for in them (one
    /// walk of the directory per run).
    listed: Arc<tokio::sync::OnceCell<Vec<String>>>,
}

impl Layouts {
    /// The layouts under `root`.
    pub fn new(root: LayoutRoot) -> Self {
        Layouts {
            root,
            written: Arc::default(),
            listed: Arc::default(),
        }
    }

    /// Makes a blob that another repository of the directory holds (written by this run or an
    /// earlier one) present in `repository`: a hard link, else a local copy (another file
    /// system). `false` when no repository holds it, and it comes from the source.
    async fn link_held(&self, repository: &Repository, digest: &Digest, size: u64) -> Result<bool> {
        let listed = self
            .listed
            .get_or_init(|| async {
                self.root.repositories().await.unwrap_or_else(|e| {
                    tracing::debug!("blobs of other repositories are not looked for: {e}");
                    Vec::new()
                })
            })
            .await;
        let mut candidates = listed.clone();
        if let Ok(written) = self.written.lock() {
            candidates.extend(written.keys().map(|r| r.as_str().to_string()));
        }
        candidates.sort();
        candidates.dedup();
        let holder = self.root.holder_of(digest, size, &candidates, repository);
        let Some(holder) = holder.await.map_err(convert)? else {
            return Ok(false);
        };
        let layout = self.write(repository).await?;
        if !layout.link_blob(&holder, digest).await.map_err(convert)? {
            layout
                .copy_blob(&holder, digest, size)
                .await
                .map_err(convert)?;
        }
        Ok(true)
    }

    /// The directory.
    pub fn root(&self) -> &LayoutRoot {
        &self.root
    }

    fn read(&self, repository: &Repository) -> Result<Layout> {
        if let Some(layout) = self.cached(repository) {
            return Ok(layout);
        }
        self.root.open(repository).map_err(convert)
    }

    async fn write(&self, repository: &Repository) -> Result<Layout> {
        if let Some(layout) = self.cached(repository) {
            return Ok(layout);
        }
        let layout = self.root.create(repository).await.map_err(convert)?;
        if let Ok(mut written) = self.written.lock() {
            written.insert(repository.clone(), layout.clone());
        }
        Ok(layout)
    }

    fn cached(&self, repository: &Repository) -> Option<Layout> {
        self.written.lock().ok()?.get(repository).cloned()
    }
}

/// What a mount did.
#[derive(Debug)]
pub enum Mount {
    /// The blob is now in the target repository; nothing was transferred.
    Mounted,
    /// Not mounted; a registry may have opened an upload session to use instead.
    NotMounted(Option<UploadSession>),
}

impl ImageStore {
    /// The store of the image layouts under `dir` (a side's `registry: oci:<dir>`).
    pub fn for_layout(dir: impl Into<std::path::PathBuf>) -> Self {
        ImageStore::Layouts(Layouts::new(LayoutRoot::new(dir)))
    }

    /// The store's name for messages and keys: the registry host, or `oci:<dir>`.
    pub fn name(&self) -> String {
        match self {
            ImageStore::Registry(registry) => registry.host().to_string(),
            ImageStore::Layouts(layouts) => {
                format!("{}{}", layout::SCHEME, layouts.root.path().display())
            }
        }
    }

    /// The registry client, when this store is a registry.
    pub fn registry(&self) -> Option<&Registry> {
        match self {
            ImageStore::Registry(registry) => Some(registry),
            ImageStore::Layouts(_) => None,
        }
    }

    /// The retry policy of the store's operations; a layout's failures are never transient, so
    /// its policy never comes into play.
    pub fn retry_policy(&self) -> RetryPolicy {
        match self {
            ImageStore::Registry(registry) => registry.retry_policy().clone(),
            ImageStore::Layouts(_) => RetryPolicy::default(),
        }
    }

    /// A handle whose requests draw their retries from `tries` (see
    /// [`Registry::sharing_tries`]); a layout makes no requests.
    pub fn sharing_tries(&self, tries: &Tries) -> ImageStore {
        match self {
            ImageStore::Registry(registry) => ImageStore::Registry(registry.sharing_tries(tries)),
            layouts => layouts.clone(),
        }
    }

    /// The error a registry's used-up rate limit gives every request for the rest of the run
    /// (docs/behaviour.md, "Rate limits"); a layout has no rate limit.
    pub fn rate_limit_exhausted(&self) -> Option<Error> {
        self.registry()?.rate_limit_exhausted()
    }

    /// Whether what `self` may read, `other` may read too: the same registry client (same
    /// credentials), or the same layout directory.
    pub fn same_client(&self, other: &ImageStore) -> bool {
        match (self, other) {
            (ImageStore::Registry(a), ImageStore::Registry(b)) => a.same_client(b),
            (ImageStore::Layouts(a), ImageStore::Layouts(b)) => a.root == b.root,
            _ => false,
        }
    }

    /// What a manifest is (digest, size, type when known), or `None` when there is none. A
    /// layout reads a manifest named by digest (it is small, and must be verified to count),
    /// and hands it on.
    ///
    /// # Errors
    /// See [`Registry::head_manifest`] and [`Layout::head_manifest`].
    pub async fn head_manifest(
        &self,
        repository: &Repository,
        reference: &TagOrDigest,
    ) -> Result<Option<ManifestHead>> {
        let layouts = match self {
            ImageStore::Registry(registry) => {
                return registry.head_manifest(repository, reference).await;
            }
            ImageStore::Layouts(layouts) => layouts,
        };
        let layout = match layouts.read(repository) {
            Ok(layout) => layout,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match reference {
            TagOrDigest::Tag(_) => {
                Ok(layout
                    .head_manifest(reference)
                    .await
                    .map_err(convert)?
                    .map(|found| ManifestHead {
                        digest: found.digest,
                        size: Some(found.size),
                        media_type: Some(found.media_type),
                        manifest: None,
                    }))
            }
            TagOrDigest::Digest(_) => match layout.get_manifest(reference).await {
                Ok(manifest) => Ok(Some(ManifestHead {
                    digest: manifest.digest.clone(),
                    size: Some(manifest.bytes.len() as u64),
                    media_type: Some(manifest.media_type.clone()),
                    manifest: Some(manifest),
                })),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(convert(e)),
            },
        }
    }

    /// A manifest, byte for byte.
    ///
    /// # Errors
    /// See [`Registry::get_manifest`] and [`Layout::get_manifest`].
    pub async fn get_manifest(
        &self,
        repository: &Repository,
        reference: &TagOrDigest,
    ) -> Result<Manifest> {
        match self {
            ImageStore::Registry(registry) => registry.get_manifest(repository, reference).await,
            ImageStore::Layouts(layouts) => layouts
                .read(repository)?
                .get_manifest(reference)
                .await
                .map_err(convert),
        }
    }

    /// Stores a manifest under a tag or its digest; its blobs (an index: its child manifests)
    /// must be present. A layout lists it in `index.json`, a digest without a name
    /// ([`Layout::put_manifest`]); an index's children go through
    /// [`ImageStore::put_child_manifest`].
    ///
    /// # Errors
    /// See [`Registry::put_manifest`] and [`Layout::put_manifest`].
    pub async fn put_manifest(
        &self,
        repository: &Repository,
        reference: &TagOrDigest,
        manifest: &Manifest,
    ) -> Result<()> {
        match self {
            ImageStore::Registry(registry) => {
                registry.put_manifest(repository, reference, manifest).await
            }
            ImageStore::Layouts(layouts) => {
                manifest.check_pushable()?;
                layouts
                    .write(repository)
                    .await?
                    .put_manifest(reference, manifest)
                    .await
                    .map_err(convert)
            }
        }
    }

    /// Stores a manifest an index lists, by its digest: on a registry a manifest PUT by digest;
    /// in a layout a blob that `index.json` does not list (the index reaches it).
    ///
    /// # Errors
    /// See [`Registry::put_manifest`] and [`Layout::store_manifest`].
    pub async fn put_child_manifest(
        &self,
        repository: &Repository,
        manifest: &Manifest,
    ) -> Result<()> {
        match self {
            ImageStore::Registry(registry) => {
                let reference = TagOrDigest::Digest(manifest.digest.clone());
                registry
                    .put_manifest(repository, &reference, manifest)
                    .await
            }
            ImageStore::Layouts(layouts) => {
                manifest.check_pushable()?;
                layouts
                    .write(repository)
                    .await?
                    .store_manifest(manifest)
                    .await
                    .map_err(convert)
            }
        }
    }

    /// Whether the repository holds the blob with `size` bytes.
    ///
    /// # Errors
    /// See [`Registry::head_blob`] and [`Layout::head_blob`].
    pub async fn head_blob(
        &self,
        repository: &Repository,
        digest: &Digest,
        size: u64,
    ) -> Result<bool> {
        match self {
            ImageStore::Registry(registry) => registry.head_blob(repository, digest, size).await,
            ImageStore::Layouts(layouts) => match layouts.read(repository) {
                Ok(layout) => layout.head_blob(digest, size).await.map_err(convert),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            },
        }
    }

    /// A blob's content, verified against `digest` and `size` as it streams.
    ///
    /// # Errors
    /// See [`Registry::get_blob`] and [`Layout::get_blob`].
    pub async fn get_blob(
        &self,
        repository: &Repository,
        digest: &Digest,
        size: u64,
    ) -> Result<ByteStream> {
        match self {
            ImageStore::Registry(registry) => Ok(registry
                .get_blob(repository, digest, size)
                .await?
                .into_stream()),
            ImageStore::Layouts(layouts) => layouts
                .read(repository)?
                .get_blob(digest, size)
                .await
                .map_err(convert),
        }
    }

    /// Stores a blob from a stream, into `session` when a declined mount opened one.
    ///
    /// # Errors
    /// See [`Registry::push_blob`] and [`Layout::push_blob`].
    pub async fn push_blob(
        &self,
        repository: &Repository,
        digest: &Digest,
        size: u64,
        content: ByteStream,
        session: Option<UploadSession>,
    ) -> Result<()> {
        match (self, session) {
            (ImageStore::Registry(registry), Some(open)) => {
                registry.upload_blob(open, digest, size, content).await
            }
            (ImageStore::Registry(registry), None) => {
                registry.push_blob(repository, digest, size, content).await
            }
            (ImageStore::Layouts(layouts), _) => layouts
                .write(repository)
                .await?
                .push_blob(digest, size, content)
                .await
                .map_err(convert),
        }
    }

    /// Makes a blob `from` holds (same store) present in `repository` without transferring
    /// it: a registry's cross-repository mount, a layout's hard link.
    ///
    /// # Errors
    /// See [`Registry::mount_blob`]; a layout fails only when it cannot be set up.
    pub async fn mount_blob(
        &self,
        repository: &Repository,
        digest: &Digest,
        from: &Repository,
    ) -> Result<Mount> {
        match self {
            ImageStore::Registry(registry) => {
                match registry.mount_blob(repository, digest, from).await? {
                    MountOutcome::Mounted => Ok(Mount::Mounted),
                    MountOutcome::NotMounted(session) => Ok(Mount::NotMounted(Some(session))),
                }
            }
            ImageStore::Layouts(layouts) => {
                let source = layouts.read(from)?;
                let linked = layouts
                    .write(repository)
                    .await?
                    .link_blob(&source, digest)
                    .await
                    .map_err(convert)?;
                Ok(if linked {
                    Mount::Mounted
                } else {
                    Mount::NotMounted(None)
                })
            }
        }
    }

    /// Makes a blob the store holds in another repository present in `repository` without
    /// reading the source: in a layout directory, a blob another repository's layout holds,
    /// also from an earlier run, is hard-linked (copied when links fail). `false` when nothing
    /// was done: always for a registry, whose mounts need a repository named
    /// ([`ImageStore::mount_blob`]).
    ///
    /// # Errors
    /// A layout's files cannot be examined or written.
    pub async fn link_held_blob(
        &self,
        repository: &Repository,
        digest: &Digest,
        size: u64,
    ) -> Result<bool> {
        match self {
            ImageStore::Registry(_) => Ok(false),
            ImageStore::Layouts(layouts) => layouts.link_held(repository, digest, size).await,
        }
    }

    /// The referrers of `subject` through the referrers API; `None` when the store has none.
    /// A layout has none: referrers it holds are listed in the fallback tag of the referrers
    /// tag schema (OCI distribution spec 1.1), which it reads and writes like any tag.
    ///
    /// # Errors
    /// See [`Registry::list_referrers`].
    pub async fn list_referrers(
        &self,
        repository: &Repository,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<Referrer>>> {
        match self {
            ImageStore::Registry(registry) => {
                registry
                    .list_referrers(repository, subject, artifact_type)
                    .await
            }
            ImageStore::Layouts(_) => Ok(None),
        }
    }

    /// Stores a referrer manifest by its digest. A layout does not index referrers itself: the
    /// pusher lists it in the fallback tag.
    ///
    /// # Errors
    /// See [`Registry::put_referrer`] and [`Layout::put_manifest`].
    pub async fn put_referrer(
        &self,
        repository: &Repository,
        manifest: &Manifest,
    ) -> Result<PushedReferrer> {
        match self {
            ImageStore::Registry(registry) => registry.put_referrer(repository, manifest).await,
            ImageStore::Layouts(_) => {
                self.put_child_manifest(repository, manifest).await?;
                Ok(PushedReferrer::NotIndexed)
            }
        }
    }

    /// The tags of a repository.
    ///
    /// # Errors
    /// See [`Registry::list_tags`] and [`Layout::tags`].
    pub async fn list_tags(&self, repository: &Repository) -> Result<Vec<String>> {
        match self {
            ImageStore::Registry(registry) => registry.list_tags(repository).await,
            ImageStore::Layouts(layouts) => layouts.read(repository)?.tags().await.map_err(convert),
        }
    }

    /// The digests of images the repository holds that no tag names: an OCI layout's entries
    /// without a reference name (docs/configuration.md#oci-image-layouts). Empty for a
    /// registry, which has no such list.
    ///
    /// # Errors
    /// See [`Layout::unnamed_digests`].
    pub async fn untagged_digests(&self, repository: &Repository) -> Result<Vec<String>> {
        match self {
            ImageStore::Registry(_) => Ok(Vec::new()),
            ImageStore::Layouts(layouts) => layouts
                .read(repository)?
                .unnamed_digests()
                .await
                .map_err(convert),
        }
    }

    /// Whether images can be written into the store: a directory of layouts that is one shared
    /// layout cannot (see [`LayoutRoot::writable`]); a registry says so only when written to.
    ///
    /// # Errors
    /// The reason writes would fail, as a write reports it.
    pub fn writable(&self) -> Result<()> {
        match self {
            ImageStore::Registry(_) => Ok(()),
            ImageStore::Layouts(layouts) => layouts.root.writable().map_err(convert),
        }
    }

    /// The repositories of the store, at most `limit` (the registry's `_catalog`; a layout
    /// directory's layouts, sorted).
    ///
    /// # Errors
    /// See [`Registry::catalog`] and [`LayoutRoot::repositories`].
    pub async fn list_repositories(&self, limit: Option<usize>) -> Result<Vec<String>> {
        match self {
            ImageStore::Registry(registry) => registry.catalog(limit).await,
            ImageStore::Layouts(layouts) => {
                let mut names = layouts.root.repositories().await.map_err(convert)?;
                if let Some(limit) = limit {
                    names.truncate(limit);
                }
                Ok(names)
            }
        }
    }
}

/// A layout's error as the engine's error type: "not found" stays that, content that does not
/// match its name is a digest mismatch, anything else a storage failure (never transient).
fn convert(error: layout::Error) -> Error {
    let kind = if error.is_not_found() {
        ErrorKind::NotFound
    } else if error.is_mismatch() {
        ErrorKind::DigestMismatch
    } else {
        ErrorKind::Storage
    };
    Error::new(kind, error.to_string())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures_util::TryStreamExt;

    use super::*;

    fn repo(name: &str) -> Repository {
        Repository::parse(name).expect("valid")
    }

    fn once(bytes: &'static [u8]) -> ByteStream {
        Box::pin(futures_util::stream::once(std::future::ready(Ok(
            Bytes::from_static(bytes),
        ))))
    }

    #[tokio::test]
    async fn a_layout_store_answers_as_a_registry_would() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ImageStore::for_layout(dir.path());
        let app = repo("app");
        let config = br#"{"os":"linux","architecture":"amd64"}"#;
        let config_digest = Digest::of(config);
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[]}}"#,
            config.len()
        );
        let manifest = Manifest::from_bytes(None, Bytes::from(manifest)).expect("manifest");
        let v1 = TagOrDigest::tag("v1").expect("tag");

        // Nothing yet: absent, not an error.
        assert!(
            store
                .head_manifest(&app, &v1)
                .await
                .expect("head")
                .is_none()
        );
        assert!(
            !store
                .head_blob(&app, &config_digest, 0)
                .await
                .expect("head")
        );
        let missing = store.get_manifest(&app, &v1).await.unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::NotFound);
        // A manifest before its blobs is refused.
        let refused = store.put_manifest(&app, &v1, &manifest).await.unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::NotFound);

        store
            .push_blob(
                &app,
                &config_digest,
                config.len() as u64,
                once(config),
                None,
            )
            .await
            .expect("pushed");
        store.put_manifest(&app, &v1, &manifest).await.expect("put");
        let head = store.head_manifest(&app, &v1).await.expect("head");
        let head = head.expect("tagged");
        assert_eq!(head.digest, manifest.digest);
        assert_eq!(
            head.media_type.as_deref(),
            Some(manifest.media_type.as_str())
        );
        let by_digest = TagOrDigest::Digest(manifest.digest.clone());
        let head = store.head_manifest(&app, &by_digest).await.expect("head");
        assert_eq!(head.and_then(|h| h.manifest), Some(manifest.clone()));
        assert_eq!(store.list_tags(&app).await.expect("tags"), vec!["v1"]);

        // A mount into another repository of the same directory links the blob.
        let other = repo("other/app");
        assert!(matches!(
            store
                .mount_blob(&other, &config_digest, &app)
                .await
                .expect("mount"),
            Mount::Mounted
        ));
        let content: Vec<Bytes> = store
            .get_blob(&other, &config_digest, config.len() as u64)
            .await
            .expect("blob")
            .try_collect()
            .await
            .expect("verified");
        assert_eq!(content.concat(), config);
        assert_eq!(
            store.list_repositories(Some(1)).await.expect("listed"),
            vec!["app"]
        );

        let wrong = store
            .push_blob(&app, &Digest::of(b"x"), 1, once(b"y"), None)
            .await
            .unwrap_err();
        assert_eq!(wrong.kind(), ErrorKind::DigestMismatch);
        assert!(!wrong.is_transient());
        // A broken layout is a storage error, never retried.
        std::fs::write(dir.path().join("app/index.json"), "{").expect("broken");
        let broken = store.list_tags(&app).await.unwrap_err();
        assert_eq!(broken.kind(), ErrorKind::Storage);
        assert!(broken.to_string().contains("index.json"), "{broken}");
    }
}
