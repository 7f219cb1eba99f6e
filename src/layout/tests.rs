use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;

use super::*;
use crate::registry::ByteStream;

fn stream(bytes: &[u8]) -> ByteStream {
    let bytes = Bytes::copy_from_slice(bytes);
    Box::pin(futures_util::stream::once(std::future::ready(Ok(bytes))))
}

fn repo(name: &str) -> Repository {
    Repository::parse(name).expect("valid repository")
}

fn tag(name: &str) -> TagOrDigest {
    TagOrDigest::tag(name).expect("valid tag")
}

/// A small OCI image: its config and layer blobs and its manifest.
struct Image {
    blobs: Vec<Vec<u8>>,
    manifest: Manifest,
}

fn image(seed: &str) -> Image {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#).into_bytes();
    let layer = format!("layer of {seed}").into_bytes();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        media_type::OCI_MANIFEST,
        Digest::of(&config),
        config.len(),
        Digest::of(&layer),
        layer.len()
    );
    Image {
        blobs: vec![config, layer],
        manifest: Manifest::from_bytes(None, Bytes::from(manifest)).expect("manifest"),
    }
}

async fn push(layout: &Layout, image: &Image, reference: &TagOrDigest) -> Result<()> {
    for blob in &image.blobs {
        let digest = Digest::of(blob);
        if !layout.head_blob(&digest, blob.len() as u64).await? {
            layout
                .push_blob(&digest, blob.len() as u64, stream(blob))
                .await?;
        }
    }
    layout.put_manifest(reference, &image.manifest).await
}

/// A new layout for the repository `app` in a temporary directory (removed when dropped).
async fn app_layout() -> (tempfile::TempDir, Layout) {
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = LayoutRoot::new(dir.path())
        .create(&repo("app"))
        .await
        .expect("created");
    (dir, layout)
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(
                    path.strip_prefix(dir)
                        .unwrap_or(&path)
                        .display()
                        .to_string(),
                );
            }
        }
    }
    found.sort();
    found
}

#[test]
fn the_oci_form_cannot_be_confused_with_a_host() {
    assert_eq!(
        parse_location("oci:/srv/mirror"),
        Some(Ok(PathBuf::from("/srv/mirror")))
    );
    assert_eq!(
        parse_location(" oci:./mirror "),
        Some(Ok(PathBuf::from("./mirror")))
    );
    assert_eq!(parse_location("oci:../m"), Some(Ok(PathBuf::from("../m"))));
    // A host called "oci" with a port stays a host.
    assert_eq!(parse_location("oci:5000"), None);
    assert_eq!(parse_location("oci:5000/prefix"), None);
    assert_eq!(parse_location("registry.example.com/oci"), None);
    let err = parse_location("oci:mirror").expect("oci form").unwrap_err();
    assert!(err.contains("oci:/absolute/path"), "{err}");
    assert!(parse_location("oci:").expect("oci form").is_err());
}

#[tokio::test]
async fn an_image_written_reads_back_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = LayoutRoot::new(dir.path().join("mirror"));
    let layout = root
        .create(&repo("library/busybox"))
        .await
        .expect("created");
    let image = image("a");
    push(&layout, &image, &tag("1.0")).await.expect("pushed");

    let reader = root.open(&repo("library/busybox")).expect("opens");
    assert_eq!(reader.tags().await.expect("tags"), vec!["1.0".to_string()]);
    let head = reader.head_manifest(&tag("1.0")).await.expect("head");
    assert_eq!(head, Some(image.manifest.descriptor()));
    let got = reader.get_manifest(&tag("1.0")).await.expect("manifest");
    assert_eq!(got, image.manifest);
    let by_digest = TagOrDigest::Digest(image.manifest.digest.clone());
    assert_eq!(
        reader.head_manifest(&by_digest).await.expect("head"),
        Some(image.manifest.descriptor())
    );
    let layer = &image.blobs[1];
    let content: Vec<Bytes> = reader
        .get_blob(&Digest::of(layer), layer.len() as u64)
        .await
        .expect("blob")
        .try_collect()
        .await
        .expect("verified");
    assert_eq!(content.concat(), *layer);
    assert_eq!(reader.head_manifest(&tag("2.0")).await.expect("head"), None);
    assert_eq!(
        root.repositories().await.expect("listed"),
        vec!["library/busybox".to_string()]
    );
    // Nothing but the layout's files: no temporary file left.
    let files = files_under(&layout.dir);
    assert_eq!(files.len(), 5, "{files:?}");
    assert!(files.iter().all(|f| !f.contains(".tmp")), "{files:?}");
}

#[tokio::test]
async fn the_same_tag_again_writes_nothing_and_a_moved_tag_replaces_its_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = LayoutRoot::new(dir.path());
    let layout = root.create(&repo("app")).await.expect("created");
    push(&layout, &image("a"), &tag("v1"))
        .await
        .expect("pushed");
    let index = layout.index_path();
    let before = std::fs::metadata(&index)
        .and_then(|m| m.modified())
        .expect("mtime");
    std::thread::sleep(std::time::Duration::from_millis(20));
    push(&layout, &image("a"), &tag("v1"))
        .await
        .expect("pushed again");
    let after = std::fs::metadata(&index)
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(before, after, "index.json was rewritten for nothing");

    let moved = image("b");
    push(&layout, &moved, &tag("v1")).await.expect("moved");
    let text = std::fs::read_to_string(&index).expect("index");
    assert_eq!(text.matches(REF_NAME).count(), 1, "{text}");
    assert_eq!(
        layout.head_manifest(&tag("v1")).await.expect("head"),
        Some(moved.manifest.descriptor())
    );
}

#[tokio::test]
async fn a_manifest_whose_blobs_are_missing_is_not_tagged() {
    let (_dir, layout) = app_layout().await;
    let image = image("a");
    let error = layout
        .put_manifest(&tag("v1"), &image.manifest)
        .await
        .unwrap_err();
    assert!(error.is_not_found());
    assert!(error.to_string().contains("does not hold"), "{error}");
    assert!(layout.tags().await.expect("tags").is_empty());
    assert!(
        !layout
            .head_blob(&image.manifest.digest, 0)
            .await
            .expect("head")
    );
}

#[tokio::test]
async fn content_that_does_not_match_its_digest_is_never_stored() {
    let (_dir, layout) = app_layout().await;
    let claimed = Digest::of(b"the real content");
    for body in [
        &b"other content..."[..],
        b"short",
        b"far longer than the real content",
    ] {
        let error = layout
            .push_blob(&claimed, 16, stream(body))
            .await
            .unwrap_err();
        assert!(error.to_string().contains(claimed.as_str()), "{error}");
    }
    assert!(!layout.head_blob(&claimed, 0).await.expect("head"));
    let files = files_under(&layout.dir);
    assert_eq!(files, vec!["index.json", "oci-layout"], "{files:?}");
}

#[tokio::test]
async fn a_blob_on_disk_that_does_not_match_its_name_fails_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = LayoutRoot::new(dir.path());
    let layout = root.create(&repo("app")).await.expect("created");
    let image = image("a");
    push(&layout, &image, &tag("v1")).await.expect("pushed");
    let layer = Digest::of(&image.blobs[1]);
    let size = image.blobs[1].len() as u64;
    std::fs::write(layout.blob_path(&layer), vec![b'x'; size as usize]).expect("corrupted");
    let read: std::result::Result<Vec<Bytes>, _> = layout
        .get_blob(&layer, size)
        .await
        .expect("opens")
        .try_collect()
        .await;
    let error = read.unwrap_err().to_string();
    assert!(error.contains("does not match its digest"), "{error}");
    assert!(
        error.contains(&layout.blob_path(&layer).display().to_string()),
        "{error}"
    );

    std::fs::write(layout.blob_path(&image.manifest.digest), b"{}").expect("corrupted");
    let error = layout
        .get_manifest(&tag("v1"))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("does not match its name"), "{error}");
}

#[tokio::test]
async fn bad_layouts_fail_with_the_path_and_what_is_wrong() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = LayoutRoot::new(dir.path().join("nowhere"));
    let error = missing.open(&repo("app")).unwrap_err().to_string();
    assert!(
        error.contains("nowhere") && error.contains("no such file"),
        "{error}"
    );
    assert!(missing.repositories().await.is_err());

    let root = LayoutRoot::new(dir.path());
    std::fs::create_dir_all(dir.path().join("plain")).expect("dir");
    let error = root.open(&repo("plain")).unwrap_err().to_string();
    assert!(
        error.contains("no image layout for repository 'plain'"),
        "{error}"
    );

    let app = root.create(&repo("app")).await.expect("created");
    std::fs::write(app.index_path(), "not json").expect("written");
    let error = app.tags().await.unwrap_err().to_string();
    assert!(
        error.contains("index.json") && error.contains("not valid JSON"),
        "{error}"
    );
    // A target whose index.json is broken is not overwritten.
    assert!(root.create(&repo("app")).await.is_err());
    assert_eq!(
        std::fs::read_to_string(app.index_path()).expect("kept"),
        "not json"
    );

    std::fs::write(app.dir.join(OCI_LAYOUT_FILE), "{}").expect("written");
    let error = root.open(&repo("app")).unwrap_err().to_string();
    assert!(
        error.contains("oci-layout") && error.contains("imageLayoutVersion"),
        "{error}"
    );
}

#[tokio::test]
async fn a_shared_layout_is_read_and_never_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Build one repository layout, then make its directory a shared layout by naming the tags
    // as skopeo does for `oci:<dir>:<repository>:<tag>`.
    let built = LayoutRoot::new(dir.path().join("build"))
        .create(&repo("x"))
        .await
        .expect("created");
    let image = image("a");
    push(&built, &image, &tag("1")).await.expect("pushed");
    let shared = dir.path().join("shared");
    std::fs::rename(&built.dir, &shared).expect("moved");
    let index = index::Index::read(&shared.join("index.json")).expect("index");
    let mut renamed = index::Index::empty();
    let descriptor = image.manifest.descriptor();
    renamed.set("library/busybox:1.36", &descriptor);
    renamed.set("library/busybox:latest", &descriptor);
    renamed.set("tools/jq:1", &descriptor);
    renamed.set("bare-tag", &descriptor);
    drop(index);
    std::fs::write(
        shared.join("index.json"),
        renamed.to_bytes(&shared).expect("bytes"),
    )
    .expect("written");

    let root = LayoutRoot::new(&shared);
    assert_eq!(
        root.repositories().await.expect("listed"),
        vec!["library/busybox".to_string(), "tools/jq".to_string()]
    );
    let busybox = root.open(&repo("library/busybox")).expect("opens");
    assert_eq!(
        busybox.tags().await.expect("tags"),
        vec!["1.36".to_string(), "latest".to_string()]
    );
    assert_eq!(
        busybox
            .get_manifest(&tag("latest"))
            .await
            .expect("manifest"),
        image.manifest
    );
    let error = root.create(&repo("library/busybox")).await.unwrap_err();
    assert!(
        error.to_string().contains("one shared image layout"),
        "{error}"
    );

    // A repository no reference name names is not found, and the names that are a tag alone
    // are said to be read from the parent directory, where the layout is one repository.
    let error = root
        .open(&repo("absent"))
        .expect("opens")
        .tags()
        .await
        .unwrap_err();
    assert!(error.is_not_found());
    let text = error.to_string();
    assert!(
        text.contains("'absent:<tag>'")
            && text.contains("'bare-tag'")
            && text.contains(&format!("oci:{}", dir.path().display()))
            && text.contains("from: shared"),
        "{text}"
    );
    let parent = LayoutRoot::new(dir.path());
    assert_eq!(
        parent
            .open(&repo("shared"))
            .expect("opens")
            .tags()
            .await
            .expect("tags"),
        vec!["bare-tag".to_string()]
    );
}

#[tokio::test]
async fn an_image_put_by_digest_is_listed_without_a_name_and_a_child_is_not_listed() {
    let (_dir, layout) = app_layout().await;
    let pinned = image("pinned");
    let by_digest = TagOrDigest::Digest(pinned.manifest.digest.clone());
    push(&layout, &pinned, &by_digest).await.expect("pushed");
    push(&layout, &pinned, &tag("v1")).await.expect("tagged");
    let child = image("child");
    for blob in &child.blobs {
        let digest = Digest::of(blob);
        layout
            .push_blob(&digest, blob.len() as u64, stream(blob))
            .await
            .expect("blob");
    }
    layout
        .store_manifest(&child.manifest)
        .await
        .expect("stored");
    let index = layout.index_path();
    let before = std::fs::read(&index).expect("index");
    // Again: nothing to write.
    push(&layout, &pinned, &by_digest)
        .await
        .expect("pushed again");
    assert_eq!(std::fs::read(&index).expect("index"), before);

    let value: serde_json::Value = serde_json::from_slice(&before).expect("JSON");
    let entries: Vec<(&str, Option<&str>)> = value["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|e| {
            (
                e["digest"].as_str().expect("digest"),
                e["annotations"][REF_NAME].as_str(),
            )
        })
        .collect();
    let digest = pinned.manifest.digest.as_str();
    assert_eq!(entries, vec![(digest, None), (digest, Some("v1"))]);
    assert_eq!(layout.tags().await.expect("tags"), vec!["v1"]);
    // The child is there, by digest.
    let child_ref = TagOrDigest::Digest(child.manifest.digest.clone());
    assert_eq!(
        layout.get_manifest(&child_ref).await.expect("child"),
        child.manifest
    );
}

#[tokio::test]
async fn a_view_names_a_manifest_by_digest_and_links_the_blobs() {
    let (_dir, layout) = app_layout().await;
    let image = image("a");
    push(&layout, &image, &tag("v1")).await.expect("pushed");
    let view = layout
        .digest_view(&image.manifest.digest)
        .await
        .expect("view");
    let name = view.skopeo_name();
    let (view_dir, reference) = name
        .strip_prefix("oci:")
        .and_then(|n| n.rsplit_once(':'))
        .expect("oci:<dir>:<name>");
    let viewed = Layout::new(view_dir.into(), None);
    viewed.check_marker().expect("a layout");
    assert_eq!(
        viewed.get_manifest(&tag(reference)).await.expect("read"),
        image.manifest
    );
    drop(view);
    assert!(!Path::new(view_dir).exists(), "the view is removed");
    assert!(layout.blob_path(&image.manifest.digest).is_file());
    let absent = layout
        .digest_view(&Digest::of(b"absent"))
        .await
        .unwrap_err();
    assert!(absent.is_not_found(), "{absent}");
}

#[tokio::test]
async fn repositories_are_the_nested_layout_directories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = LayoutRoot::new(dir.path());
    for name in ["b/c", "a", "b", "b/c/d"] {
        root.create(&repo(name)).await.expect("created");
    }
    std::fs::create_dir_all(dir.path().join("not-a-layout/x")).expect("dir");
    std::fs::create_dir_all(dir.path().join("Upper")).expect("dir");
    std::fs::write(dir.path().join("Upper/oci-layout"), "{}").expect("written");
    assert_eq!(
        root.repositories().await.expect("listed"),
        vec!["a", "b", "b/c", "b/c/d"]
    );
}

#[test]
fn two_writers_of_one_layout_lose_no_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = LayoutRoot::new(dir.path());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let layout = runtime
        .block_on(root.create(&repo("app")))
        .expect("created");
    let image = Arc::new(image("a"));
    runtime
        .block_on(push(&layout, &image, &tag("seed")))
        .expect("pushed");
    // Threads stand in for processes: the lock is a flock on separately opened files, which
    // excludes each other within one process as across processes.
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let layout = layout.clone();
            let image = image.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Runtime::new().expect("runtime");
                for t in 0..10 {
                    let name = format!("w{w}-t{t}");
                    runtime
                        .block_on(layout.put_manifest(&tag(&name), &image.manifest))
                        .expect("tagged");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("writer finished");
    }
    let tags = runtime.block_on(layout.tags()).expect("tags");
    assert_eq!(tags.len(), 61, "{tags:?}");
}

#[tokio::test]
async fn temporary_blobs_of_dead_writers_are_removed_and_live_ones_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = LayoutRoot::new(dir.path());
    let layout = root.create(&repo("app")).await.expect("created");
    let blobs = layout.dir.join("blobs");
    // Process ids above the kernel's limit (4194304) belong to no process.
    let dead = blobs.join(".sha256-aa.4000000000-0.tmp");
    let live = blobs.join(".sha256-bb.4000000001-0.tmp");
    // A file of a running process (this one) that is not locked yet: created an instant ago.
    let starting = blobs.join(format!(".sha256-cc.{}-0.tmp", std::process::id()));
    std::fs::write(&starting, "").expect("written");
    std::fs::write(&dead, "half a blob").expect("written");
    std::fs::write(&live, "being written").expect("written");
    let holder = std::fs::File::open(&live).expect("open");
    holder.lock().expect("locked");
    let index = layout.dir.join(".index.json.1-0.tmp");
    std::fs::write(&index, "half an index").expect("written");
    root.create(&repo("app")).await.expect("opened again");
    assert!(!dead.exists());
    assert!(live.exists());
    assert!(starting.exists());
    assert!(!index.exists());
}

#[tokio::test]
async fn a_blob_another_repository_holds_is_linked_not_copied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = LayoutRoot::new(dir.path());
    let first = root.create(&repo("one")).await.expect("created");
    let second = root.create(&repo("two")).await.expect("created");
    let image = image("a");
    push(&first, &image, &tag("v1")).await.expect("pushed");
    let layer = Digest::of(&image.blobs[1]);
    assert!(second.link_blob(&first, &layer).await.expect("linked"));
    use std::os::unix::fs::MetadataExt;
    let a = std::fs::metadata(first.blob_path(&layer)).expect("meta");
    let b = std::fs::metadata(second.blob_path(&layer)).expect("meta");
    assert_eq!(a.ino(), b.ino());
    assert!(
        !second
            .link_blob(&first, &Digest::of(b"absent"))
            .await
            .expect("not linked")
    );

    // Found by a stat per repository, this one left out.
    let names = ["one".to_string(), "two".to_string()];
    let size = image.blobs[1].len() as u64;
    let holder = root.holder_of(&layer, size, &names, &repo("two")).await;
    assert_eq!(holder.expect("looked").map(|l| l.dir), Some(first.dir));
    let wrong_size = root.holder_of(&layer, size + 1, &names, &repo("two")).await;
    assert_eq!(wrong_size.expect("looked"), None);
}
