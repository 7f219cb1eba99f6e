//! OCI image layouts in tests: the real tools that read them (skopeo, umoci, oci-image-tool),
//! what an `index.json` lists, and the images a round trip through a layout starts from.

use std::path::Path;
use std::process::Command;

use super::{Format, ImageOptions, Pushed, PushedIndex, Registry};

/// The platforms of the index every round trip copies.
pub const INDEX_PLATFORMS: [&str; 2] = ["linux/amd64", "linux/arm64/v8"];

/// Runs a tool that must succeed and returns its standard output; a missing tool fails with
/// how to install it.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} did not start ({e}): run scripts/test, or apt-get install it")
        });
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The digest of some bytes, `sha256:<hex>`.
pub fn sha256(bytes: &[u8]) -> String {
    dregsy::registry::Digest::of(bytes).to_string()
}

/// `oci-image-tool validate --type image --ref name=<tag> <layout>`, which must pass. The
/// Debian build (1.0.0~rc1) refuses any layout with three or more tagged entries
/// ("descriptor retrieved by refs [name=<tag>] is not unique"), skopeo's as well: validate
/// layouts of at most two tags ([`validation`] shows the refusal).
pub fn validate(layout: &Path, tag: &str) {
    if let Err(e) = validation(layout, tag) {
        panic!(
            "oci-image-tool validate of {} ({tag}) failed: {e}",
            layout.display()
        );
    }
}

/// What `oci-image-tool validate --type image --ref name=<tag> <layout>` says: `Ok` when it
/// passes, else its output.
pub fn validation(layout: &Path, tag: &str) -> Result<(), String> {
    let output = Command::new("oci-image-tool")
        .args([
            "validate",
            "--type",
            "image",
            "--ref",
            &format!("name={tag}"),
            layout.to_str().expect("utf-8 path"),
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run oci-image-tool: {e}; run scripts/test, or `apt-get install -y oci-image-tool`")
        });
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// The entries of a layout's `index.json`: each digest with its reference name, in order.
pub fn index_entries(layout: &Path) -> Vec<(String, Option<String>)> {
    let text = std::fs::read_to_string(layout.join("index.json")).expect("index.json");
    let index: serde_json::Value = serde_json::from_str(&text).expect("index.json is JSON");
    index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            (
                m["digest"].as_str().expect("a digest").to_owned(),
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .map(str::to_owned),
            )
        })
        .collect()
}

/// The tags `index.json` of a layout lists, sorted.
pub fn layout_tags(layout: &Path) -> Vec<String> {
    let mut tags: Vec<String> = index_entries(layout)
        .into_iter()
        .filter_map(|(_, name)| name)
        .collect();
    tags.sort();
    tags
}

/// What a round trip through a layout starts from: a source registry holding an image of two
/// layers and a two-platform OCI index ([`INDEX_PLATFORMS`]), an empty registry to copy back
/// into, and a scratch directory.
pub struct RoundTrip {
    pub source: Registry,
    pub back: Registry,
    pub image: Pushed,
    pub index: PushedIndex,
    pub dir: tempfile::TempDir,
}

impl RoundTrip {
    /// Pushes the image as `image` and the index as `index` (each `<repository>:<tag>`).
    pub fn start(image: &str, index: &str) -> RoundTrip {
        let source = Registry::start();
        let back = Registry::start();
        let (repository, tag) = image.split_once(':').expect("<repository>:<tag>");
        let image = super::push_image(
            &source,
            repository,
            tag,
            ImageOptions {
                layers: 2,
                ..ImageOptions::default()
            },
        );
        let (repository, tag) = index.split_once(':').expect("<repository>:<tag>");
        let index = super::push_index(&source, repository, tag, &INDEX_PLATFORMS, Format::Oci);
        let dir = tempfile::tempdir().expect("tempdir");
        RoundTrip {
            source,
            back,
            image,
            index,
            dir,
        }
    }

    /// The digest of the index's child for `platform`.
    pub fn child(&self, platform: &str) -> String {
        self.index
            .children
            .iter()
            .find(|(p, _)| p == platform)
            .map(|(_, digest)| digest.clone())
            .unwrap_or_else(|| panic!("no {platform} child"))
    }
}
