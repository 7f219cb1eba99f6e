//! OCI image layouts on disk as a source or target (README.md, "Air-gapped mirrors";
//! docs/configuration.md#oci-image-layouts).
//!
//! A side whose `registry` is `oci:<directory>` is a directory of image layouts instead of a
//! registry (OCI image-layout spec: `oci-layout`, `index.json`, `blobs/<alg>/<hex>`). Two forms
//! are read:
//!
//! - **one layout per repository** (`<directory>/<repository>/oci-layout`, tags as
//!   `org.opencontainers.image.ref.name` = `<tag>`), what `skopeo copy … oci:<dir>/<repo>:<tag>`
//!   and regsync's `ocidir://` write;
//! - **one shared layout** (`<directory>/oci-layout`, tags as `ref.name` = `<repository>:<tag>`),
//!   what `skopeo copy … oci:<dir>:<repository>:<tag>` writes.
//!
//! Only the first form is written. Each repository is then a complete layout that skopeo,
//! umoci and `oci-image-tool validate --ref name=<tag>` address directly by tag; writers of
//! different repositories never contend for one `index.json`; and a repository can be carried
//! or deleted as one directory. A blob several repositories of one directory need is stored
//! once all the same: the engine hard-links a blob another repository holds, from this run or
//! an earlier one ([`LayoutRoot::holder_of`], [`Layout::link_blob`]), instead of copying it.
//!
//! `index.json` lists tags under their names and images put by digest without one (the
//! image-layout spec makes the name optional), so what a digest pins is a root that garbage
//! collectors keep; an index's children are reached through the index and not listed.
//!
//! A shared layout's names that are a tag alone (`skopeo copy … oci:<dir>:<tag>`) belong to no
//! repository of it; they are the tags of the layout read as one repository from its parent
//! directory (docs/configuration.md#oci-image-layouts).
//!
//! On-disk safety: a blob is written to a temporary file in `blobs/` and renamed into
//! `blobs/sha256/<hex>` only after its size and sha256 were verified ([`Layout::push_blob`]);
//! `index.json` is replaced atomically (temporary file, fsync, rename) under an exclusive lock
//! on the layout's `oci-layout` file, re-read under that lock so two processes never lose each
//! other's entries; a manifest is listed only once every blob it references is present. A run
//! killed at any moment leaves at most temporary files, which the next writer removes.

mod blobs;
mod index;
mod view;

use std::fmt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::registry::{Descriptor, Digest, Manifest, Repository, TagOrDigest, media_type};

pub use blobs::BlobStream;
pub use view::DigestView;

/// The prefix of a `registry` value that names a directory of image layouts.
pub const SCHEME: &str = "oci:";

/// The name of the file that marks a directory as an image layout (image-layout spec).
pub const OCI_LAYOUT_FILE: &str = "oci-layout";

/// The annotation that carries a tag in `index.json` (image-spec annotations).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// How deep repository directories may nest when listing (deeper is a loop or not ours).
const MAX_LISTING_DEPTH: usize = 16;

/// Parses the `oci:` form of a `registry` value.
///
/// `None` when `registry` is not a layout (a registry host); `Some(Err)` when it starts with
/// `oci:` but names no directory in a form that cannot be confused with a host. The directory
/// must be absolute (`oci:/srv/mirror`) or explicitly relative (`oci:./mirror`,
/// `oci:../mirror`, resolved against the working directory, as skopeo does). `oci:5000` and
/// `oci:5000/x` stay a registry host `oci` with a port.
pub fn parse_location(registry: &str) -> Option<Result<PathBuf, String>> {
    let rest = registry.trim().strip_prefix(SCHEME)?;
    let port = rest.split('/').next().unwrap_or_default();
    if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if rest.starts_with('/') || rest.starts_with("./") || rest.starts_with("../") || rest == "." {
        Some(Ok(PathBuf::from(rest)))
    } else {
        Some(Err(format!(
            "'{registry}' is not an OCI image layout directory: write 'oci:/absolute/path' or \
             'oci:./relative/path'"
        )))
    }
}

/// A failure reading or writing a layout: the path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    path: PathBuf,
    reason: String,
    not_found: bool,
    mismatch: bool,
}

impl Error {
    fn new(path: &Path, reason: impl Into<String>) -> Self {
        Error {
            path: path.to_path_buf(),
            reason: reason.into(),
            not_found: false,
            mismatch: false,
        }
    }

    /// Content that does not match its digest or size.
    fn mismatch(path: &Path, reason: impl Into<String>) -> Self {
        Error {
            mismatch: true,
            ..Error::new(path, reason)
        }
    }

    fn not_found(path: &Path, reason: impl Into<String>) -> Self {
        Error {
            not_found: true,
            ..Error::new(path, reason)
        }
    }

    /// An I/O error, in words: "permission denied", "no space left on device", ….
    fn io(path: &Path, doing: &str, e: &std::io::Error) -> Self {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            std::io::ErrorKind::ReadOnlyFilesystem => "read-only file system".to_string(),
            std::io::ErrorKind::StorageFull => "no space left on device".to_string(),
            _ => e.to_string(),
        };
        Error {
            not_found: e.kind() == std::io::ErrorKind::NotFound,
            ..Error::new(path, format!("{doing}: {why}"))
        }
    }

    /// The file or directory the error is about.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the error says something does not exist (a tag, a blob, a directory).
    pub fn is_not_found(&self) -> bool {
        self.not_found
    }

    /// Whether the error says content does not match its digest or size.
    pub fn is_mismatch(&self) -> bool {
        self.mismatch
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OCI image layout '{}': {}",
            self.path.display(),
            self.reason
        )
    }
}

impl std::error::Error for Error {}

/// Results of layout operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A directory of image layouts: the `oci:<directory>` of a config side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutRoot {
    dir: PathBuf,
}

impl LayoutRoot {
    /// The layouts under `dir`; nothing is read until asked.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LayoutRoot { dir: dir.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Whether the directory itself is one shared layout (`<dir>/oci-layout` exists).
    fn is_shared(&self) -> bool {
        self.dir.join(OCI_LAYOUT_FILE).is_file()
    }

    fn existing_dir(&self) -> Result<()> {
        match std::fs::metadata(&self.dir) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(Error::new(&self.dir, "is not a directory")),
            Err(e) => Err(Error::io(&self.dir, "the layout directory", &e)),
        }
    }

    /// The layout that holds `repository`, for reading: `<dir>/<repository>` when it is a
    /// layout, else the shared layout `<dir>` when there is one.
    ///
    /// # Errors
    /// The directory does not exist, or holds neither form for this repository.
    pub fn open(&self, repository: &Repository) -> Result<Layout> {
        self.existing_dir()?;
        let own = self.dir.join(repository.as_str());
        if own.join(OCI_LAYOUT_FILE).exists() {
            let layout = Layout::new(own, None);
            layout.check_marker()?;
            return Ok(layout);
        }
        if self.is_shared() {
            let layout = Layout::new(self.dir.clone(), Some(repository.as_str().to_string()));
            layout.check_marker()?;
            return Ok(layout);
        }
        Err(Error::not_found(
            &own,
            format!(
                "no image layout for repository '{repository}': neither {} nor {} exists",
                own.join(OCI_LAYOUT_FILE).display(),
                self.dir.join(OCI_LAYOUT_FILE).display()
            ),
        ))
    }

    /// Whether dregsy can write layouts into the directory: not when it is one shared layout
    /// (dregsy writes one layout per repository, see the module documentation). What
    /// [`LayoutRoot::create`] refuses, for `dregsy plan` to show before anything is written.
    ///
    /// # Errors
    /// `<dir>` is one shared layout.
    pub fn writable(&self) -> Result<()> {
        if self.is_shared() {
            return Err(Error::new(
                &self.dir,
                "is one shared image layout (it has an oci-layout file); dregsy writes one \
                 layout per repository: name an empty directory, or one holding a layout \
                 per repository",
            ));
        }
        Ok(())
    }

    /// The layout `<dir>/<repository>` for writing, created (with its parents) when missing.
    ///
    /// # Errors
    /// `<dir>` is one shared layout (dregsy writes one layout per repository, see the module
    /// documentation), an existing layout's `oci-layout` is not one, or the directories cannot
    /// be created.
    pub async fn create(&self, repository: &Repository) -> Result<Layout> {
        let root = self.clone();
        let repository = repository.clone();
        blocking(move || {
            root.writable()?;
            let layout = Layout::new(root.dir.join(repository.as_str()), None);
            layout.initialise()?;
            Ok(layout)
        })
        .await
    }

    /// The repositories of the directory, sorted: every sub-directory that is a layout, and,
    /// when the directory is one shared layout, the repository part of its `<repository>:<tag>`
    /// reference names. Names that are no valid repository name are left out (logged).
    ///
    /// # Errors
    /// The directory does not exist or cannot be read; a shared `index.json` is not valid.
    pub async fn repositories(&self) -> Result<Vec<String>> {
        let root = self.clone();
        blocking(move || {
            root.existing_dir()?;
            let mut names = Vec::new();
            collect_repositories(&root.dir, "", 0, &mut names)?;
            if root.is_shared() {
                let shared = Layout::new(root.dir.clone(), None);
                shared.check_marker()?;
                let mut bare = Vec::new();
                for name in shared.read_index()?.ref_names() {
                    if let Some((repository, _)) = split_shared_name(&name) {
                        names.push(repository.to_string());
                    } else if is_bare_tag(&name) {
                        bare.push(name);
                    }
                }
                if !bare.is_empty() {
                    tracing::warn!(
                        path = %root.dir.display(),
                        "not listed: {}",
                        bare_names_text(&root.dir, &bare)
                    );
                }
            }
            names.sort();
            names.dedup();
            Ok(names)
        })
        .await
    }
}

impl LayoutRoot {
    /// The layout of one of `repositories` (but `except`) that holds the blob with `size`
    /// bytes: one `stat` per repository, the first found. `None` in a shared layout (its
    /// repositories share one `blobs/` already) or when none holds it.
    ///
    /// # Errors
    /// A blob's path exists but cannot be examined.
    pub async fn holder_of(
        &self,
        digest: &Digest,
        size: u64,
        repositories: &[String],
        except: &Repository,
    ) -> Result<Option<Layout>> {
        if self.is_shared() {
            return Ok(None);
        }
        for name in repositories.iter().filter(|r| *r != except.as_str()) {
            let layout = Layout::new(self.dir.join(name), None);
            if layout.head_blob(digest, size).await? {
                return Ok(Some(layout));
            }
        }
        Ok(None)
    }
}

/// Walks `dir` for sub-directories holding an `oci-layout` file.
fn collect_repositories(
    dir: &Path,
    prefix: &str,
    depth: usize,
    names: &mut Vec<String>,
) -> Result<()> {
    if depth > MAX_LISTING_DEPTH {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, "listing", &e))?;
    let is_layout = depth > 0 && dir.join(OCI_LAYOUT_FILE).is_file();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, "listing", &e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // A layout's own blobs, and hidden directories, hold no repositories.
        if name.starts_with('.') || (is_layout || depth == 0) && name == "blobs" {
            continue;
        }
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let repository = format!("{prefix}{name}");
        if path.join(OCI_LAYOUT_FILE).is_file() {
            match Repository::parse(&repository) {
                Ok(_) => names.push(repository.clone()),
                Err(e) => tracing::debug!(path = %path.display(), "not listed: {e}"),
            }
        }
        collect_repositories(&path, &format!("{repository}/"), depth + 1, names)?;
    }
    Ok(())
}

/// What a shared layout's reference names without a `<repository>:` part are, and how to read
/// them: they are the tags of the layout read as one repository, named by its directory, from
/// the parent directory (docs/configuration.md#oci-image-layouts).
fn bare_names_text(dir: &Path, bare: &[String]) -> String {
    let shown: Vec<String> = bare.iter().take(5).map(|n| format!("'{n}'")).collect();
    let more = bare.len().saturating_sub(shown.len());
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    let parent = dir.parent().unwrap_or(Path::new("/"));
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(
        "the reference names {}{more} name a tag and no repository; to read them, name the \
         parent directory as the side ('registry: oci:{}') and the layout as the repository \
         ('from: {name}')",
        shown.join(", "),
        parent.display()
    )
}

/// Whether a shared layout's reference name is a tag alone (what `skopeo copy … oci:<dir>:<tag>`
/// writes).
fn is_bare_tag(name: &str) -> bool {
    TagOrDigest::tag(name).is_ok()
}

/// Splits a shared layout's `<repository>:<tag>` reference name; `None` for a bare tag or a
/// name that is not a valid repository and tag.
fn split_shared_name(name: &str) -> Option<(&str, &str)> {
    let (repository, tag) = name.rsplit_once(':')?;
    (Repository::parse(repository).is_ok() && TagOrDigest::tag(tag).is_ok())
        .then_some((repository, tag))
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(Error::new(Path::new("."), format!("file work failed: {e}"))))
}

/// One image layout: a repository's own, or a repository's view of a shared one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    dir: PathBuf,
    /// In a shared layout, the repository whose `<repository>:<tag>` names this view sees.
    shared_repository: Option<String>,
}

impl Layout {
    fn new(dir: PathBuf, shared_repository: Option<String>) -> Self {
        Layout {
            dir,
            shared_repository,
        }
    }

    /// The layout's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The reference name a tag has in this layout's `index.json`.
    fn ref_name(&self, tag: &str) -> String {
        match &self.shared_repository {
            Some(repository) => format!("{repository}:{tag}"),
            None => tag.to_string(),
        }
    }

    /// The tag a reference name stands for in this layout, if it is one of this view's.
    fn tag_of<'n>(&self, name: &'n str) -> Option<&'n str> {
        let tag = match &self.shared_repository {
            Some(repository) => name
                .strip_prefix(repository.as_str())
                .and_then(|rest| rest.strip_prefix(':'))?,
            None => name,
        };
        TagOrDigest::tag(tag).is_ok().then_some(tag)
    }

    /// The tags of the repository, in `index.json` order, without duplicates.
    ///
    /// # Errors
    /// `index.json` is missing or not a valid index; in a shared layout, no reference name is
    /// one of this repository's (not found, as a registry answers for a repository it does not
    /// have; the message says how to read the names that are a tag alone).
    pub async fn tags(&self) -> Result<Vec<String>> {
        let layout = self.clone();
        blocking(move || {
            let mut tags: Vec<String> = Vec::new();
            let names = layout.read_index()?.ref_names();
            for name in &names {
                if let Some(tag) = layout.tag_of(name)
                    && !tags.iter().any(|t| t == tag)
                {
                    tags.push(tag.to_string());
                }
            }
            if let (true, Some(repository)) = (tags.is_empty(), &layout.shared_repository) {
                // As a registry answers for a repository it does not have.
                let bare: Vec<String> = names.into_iter().filter(|n| is_bare_tag(n)).collect();
                let hint = if bare.is_empty() {
                    String::new()
                } else {
                    format!("; {}", bare_names_text(&layout.dir, &bare))
                };
                return Err(Error::not_found(
                    &layout.index_path(),
                    format!("no reference name is '{repository}:<tag>'{hint}"),
                ));
            }
            Ok(tags)
        })
        .await
    }

    /// The digests of images `index.json` lists without a reference name (digest-pinned
    /// images) and under no name as well, in order. Empty for a view of a shared layout: its
    /// unnamed entries belong to no repository in particular.
    ///
    /// # Errors
    /// `index.json` is missing or not a valid index.
    pub async fn unnamed_digests(&self) -> Result<Vec<String>> {
        if self.shared_repository.is_some() {
            return Ok(Vec::new());
        }
        let layout = self.clone();
        blocking(move || Ok(layout.read_index()?.unnamed_digests())).await
    }

    /// What `reference` points at: a tag's `index.json` entry, or a digest's manifest blob
    /// when it is present. `None` when there is none.
    ///
    /// # Errors
    /// `index.json` is not valid, or a manifest blob cannot be read or does not match its name.
    pub async fn head_manifest(&self, reference: &TagOrDigest) -> Result<Option<Descriptor>> {
        match reference {
            TagOrDigest::Tag(tag) => match self.entry(tag).await? {
                // An entry without a manifest media type (older writers leave it out): the
                // manifest itself says what it is.
                Some(entry) if !is_manifest_type(&entry.media_type) => Ok(Some(
                    self.read_manifest(&entry.digest, None).await?.descriptor(),
                )),
                found => Ok(found),
            },
            // Reading the manifest tells its media type, and verifies it: a manifest blob is
            // small, and one that does not match its name must not count as present.
            TagOrDigest::Digest(digest) => match self.read_manifest(digest, None).await {
                Ok(manifest) => Ok(Some(manifest.descriptor())),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// The manifest `reference` points at, its bytes verified against its digest.
    ///
    /// # Errors
    /// No such tag or manifest, or its blob does not match its name or is no manifest.
    pub async fn get_manifest(&self, reference: &TagOrDigest) -> Result<Manifest> {
        match reference {
            TagOrDigest::Digest(digest) => self.read_manifest(digest, None).await,
            TagOrDigest::Tag(tag) => match self.entry(tag).await? {
                Some(entry) => {
                    let declared = Some(entry.media_type).filter(|t| is_manifest_type(t));
                    self.read_manifest(&entry.digest, declared.as_deref()).await
                }
                None => Err(Error::not_found(
                    &self.index_path(),
                    format!("no manifest is tagged '{tag}'"),
                )),
            },
        }
    }

    /// The `index.json` entry of a tag.
    async fn entry(&self, tag: &str) -> Result<Option<Descriptor>> {
        let layout = self.clone();
        let name = self.ref_name(tag);
        blocking(move || layout.read_index()?.find(&name, &layout.index_path())).await
    }

    async fn read_manifest(&self, digest: &Digest, declared: Option<&str>) -> Result<Manifest> {
        let path = self.blob_path(digest);
        let bytes = blobs::read_small(&path, crate::registry::MAX_MANIFEST_SIZE).await?;
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(Error::mismatch(
                &path,
                format!("content does not match its name (its sha256 is {actual})"),
            ));
        }
        Manifest::from_bytes(declared, Bytes::from(bytes))
            .map_err(|e| Error::new(&path, e.to_string()))
    }

    /// Stores a manifest and lists it in `index.json`: under a tag, its reference name points
    /// at it; under its digest (a digest-pinned image), it is listed without a reference name
    /// (image-layout spec: the annotation is optional), as `skopeo copy … oci:<dir>` lists it,
    /// so tools that collect garbage (`umoci gc`) keep it and tools that list a layout see it.
    ///
    /// Every blob an image manifest references (but foreign layers, which are not stored:
    /// image-spec "non-distributable layers") and every manifest an index lists must be present
    /// first, so `index.json` never lists an image whose content is missing.
    ///
    /// # Errors
    /// A referenced blob or child manifest is missing, or the layout cannot be written.
    pub async fn put_manifest(&self, reference: &TagOrDigest, manifest: &Manifest) -> Result<()> {
        self.store_manifest(manifest).await?;
        let layout = self.clone();
        let descriptor = manifest.descriptor();
        let name = match reference {
            TagOrDigest::Tag(tag) => Some(self.ref_name(tag)),
            TagOrDigest::Digest(_) => None,
        };
        blocking(move || layout.list_manifest(name.as_deref(), &descriptor)).await
    }

    /// Stores a manifest as a blob only, not listed in `index.json`: an index's child, or a
    /// referrer, each reached through the manifest that lists it (the index; the referrers
    /// tag schema's fallback tag).
    ///
    /// # Errors
    /// A referenced blob or child manifest is missing, or the layout cannot be written.
    pub async fn store_manifest(&self, manifest: &Manifest) -> Result<()> {
        self.check_references(manifest).await?;
        let size = manifest.bytes.len() as u64;
        if !self.head_blob(&manifest.digest, size).await? {
            let body: crate::registry::ByteStream =
                Box::pin(futures_util::stream::once(std::future::ready(Ok(manifest
                    .bytes
                    .clone()))));
            self.push_blob(&manifest.digest, size, body).await?;
        }
        Ok(())
    }

    async fn check_references(&self, manifest: &Manifest) -> Result<()> {
        let parse = |e: crate::registry::Error| {
            Error::new(&self.dir, format!("manifest {}: {e}", manifest.digest))
        };
        let needed: Vec<Descriptor> = if manifest.is_index() {
            manifest.children().map_err(parse)?
        } else {
            manifest
                .blobs()
                .map_err(parse)?
                .into_iter()
                .filter(|b| !b.is_foreign())
                .collect()
        };
        for blob in needed {
            if !self.head_blob(&blob.digest, blob.size).await? {
                return Err(Error::not_found(
                    &self.blob_path(&blob.digest),
                    format!(
                        "manifest {} references {}, which the layout does not hold; it was not \
                         tagged",
                        manifest.digest, blob.digest
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether the blob is present with the expected size (`size` 0: any size).
    ///
    /// # Errors
    /// The blob's path exists but cannot be examined.
    pub async fn head_blob(&self, digest: &Digest, size: u64) -> Result<bool> {
        blobs::present(&self.blob_path(digest), size).await
    }

    /// The blob's content as a stream verified against `digest` and `size`: content that does
    /// not match its name ends the stream with an error naming the file.
    ///
    /// # Errors
    /// The blob is missing or cannot be opened.
    pub async fn get_blob(&self, digest: &Digest, size: u64) -> Result<BlobStream> {
        blobs::open(&self.blob_path(digest), digest, size).await
    }

    /// Writes a blob from a stream: into a temporary file in `blobs/`, renamed into place only
    /// once `size` bytes with the sha256 `digest` were written and synced. On any failure the
    /// temporary file is removed and nothing else changes.
    ///
    /// # Errors
    /// The stream fails or does not match, or the file system refuses (read-only, full).
    pub async fn push_blob(
        &self,
        digest: &Digest,
        size: u64,
        content: crate::registry::ByteStream,
    ) -> Result<()> {
        blobs::write(&self.dir, &self.blob_path(digest), digest, size, content).await
    }

    /// Makes a blob that `from` (another layout, on the same file system) holds present here
    /// by a hard link; `false` when it could not be linked (another file system, a file system
    /// without hard links), and the caller copies it instead ([`Layout::copy_blob`]).
    ///
    /// # Errors
    /// Only when this layout's blob directory cannot be created.
    pub async fn link_blob(&self, from: &Layout, digest: &Digest) -> Result<bool> {
        blobs::link(&from.blob_path(digest), &self.blob_path(digest)).await
    }

    /// Copies a blob `from` holds into this layout, verified as any blob written: for when
    /// [`Layout::link_blob`] could not link it.
    ///
    /// # Errors
    /// As [`Layout::get_blob`] and [`Layout::push_blob`].
    pub async fn copy_blob(&self, from: &Layout, digest: &Digest, size: u64) -> Result<()> {
        let content = from.get_blob(digest, size).await?;
        self.push_blob(digest, size, content).await
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs").join("sha256").join(digest.hex())
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join("index.json")
    }

    /// Checks that `oci-layout` says this is an image layout (version 1.x).
    fn check_marker(&self) -> Result<()> {
        let path = self.dir.join(OCI_LAYOUT_FILE);
        let text = std::fs::read(&path).map_err(|e| Error::io(&path, "reading", &e))?;
        let version = serde_json::from_slice::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("imageLayoutVersion")?.as_str().map(str::to_owned));
        match version {
            Some(v) if v.starts_with("1.") => Ok(()),
            Some(v) => Err(Error::new(
                &path,
                format!("image layout version {v} is not supported (1.x is)"),
            )),
            None => Err(Error::new(
                &path,
                "is not an image layout marker (expected JSON with \"imageLayoutVersion\")",
            )),
        }
    }

    /// Creates the directory, `oci-layout`, `blobs/sha256` and an empty `index.json` where
    /// missing, each file atomically; checks an existing layout's marker and index.
    fn initialise(&self) -> Result<()> {
        let blobs = self.dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| Error::io(&blobs, "creating", &e))?;
        let marker = self.dir.join(OCI_LAYOUT_FILE);
        if !marker.exists() {
            index::create_atomically(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        self.check_marker()?;
        let index = self.index_path();
        {
            // Under the lock no other writer is replacing index.json: a temporary index file
            // now is what a killed writer left.
            let _lock = index::lock(&marker)?;
            index::remove_abandoned(&self.dir);
            if !index.exists() {
                index::write_atomically(&index, &index::Index::empty().to_bytes(&index)?)?;
            }
        }
        self.read_index()?;
        blobs::remove_abandoned(&self.dir.join("blobs"));
        Ok(())
    }

    fn read_index(&self) -> Result<index::Index> {
        index::Index::read(&self.index_path())
    }

    /// Lists `descriptor` under the lock: re-reads `index.json`, points `name` at it (replacing
    /// the entries of that name) or, without a name, adds an unnamed entry unless there is one,
    /// and writes it back atomically when that changed it.
    fn list_manifest(&self, name: Option<&str>, descriptor: &Descriptor) -> Result<()> {
        let _lock = index::lock(&self.dir.join(OCI_LAYOUT_FILE))?;
        let path = self.index_path();
        let mut index = index::Index::read(&path)?;
        let changed = match name {
            Some(name) => index.set(name, descriptor),
            None => index.list(descriptor),
        };
        if changed {
            index::write_atomically(&path, &index.to_bytes(&path)?)?;
        }
        Ok(())
    }
}

/// Whether a media type names a manifest (the ones `index.json` entries may point at).
fn is_manifest_type(media: &str) -> bool {
    media_type::ALL.contains(&media)
}

#[cfg(test)]
mod tests;
