//! Syncs across an air gap: the dregsy binary copies registry -> OCI image layouts -> registry
//! with every digest kept, reads layouts skopeo wrote, survives a kill -9 in the middle of a
//! blob, and writes nothing on a second run. Real registries, skopeo and oci-image-tool.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use support::dregsy::{Dregsy, assert_success, log_lines, run_dregsy, text};
use support::layouts::{RoundTrip, index_entries, layout_tags, run, sha256, validate};
use support::{FaultProxy, ImageOptions, Registry, Rule};

fn registry_side(registry: &Registry) -> String {
    format!(
        "    registry: {}\n    skip-tls-verify: true\n",
        registry.host()
    )
}

fn layout_side(dir: &Path) -> String {
    format!("    registry: oci:{}\n", dir.display())
}

fn config(source: &str, target: &str, mappings: &str) -> String {
    format!(
        "relay: native\ntasks:\n- name: carry\n  source:\n{source}  target:\n{target}  mappings:\n{mappings}"
    )
}

/// Every file under `dir` with its size and modification time (none while `dir` does not
/// exist; a file renamed while it is listed is left out).
fn files(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else {
                found.push((
                    path,
                    meta.len(),
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                ));
            }
        }
    }
    found.sort();
    found
}

fn temporary_files(dir: &Path) -> Vec<PathBuf> {
    files(dir)
        .into_iter()
        .map(|(path, _, _)| path)
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect()
}

#[test]
fn registry_to_layout_to_registry_keeps_every_digest_and_a_second_run_writes_nothing() {
    let trip = RoundTrip::start("app/single:1.0", "app/multi:2.0");
    let arm = trip.child("linux/arm64/v8");
    let RoundTrip {
        source,
        back: inside,
        image: single,
        index,
        dir,
    } = trip;
    let mirror = dir.path().join("mirror");
    support::tag(&source, "app/single", "1.0", &["1.1"]);
    // A target directory that does not exist is created.
    assert!(!mirror.exists());

    // Step 1, outside: registry -> directory.
    let outside = config(
        &registry_side(&source),
        &layout_side(&mirror),
        "  - from: app/single\n  - from: app/multi\n    platform: all\n  - from: app/multi\n    \
         to: app/multi-arm\n    platform: linux/arm64/v8\n",
    );
    let out = run_dregsy(&outside, &[]);
    assert_success(&out);
    assert_eq!(log_lines(&out, "image copied").len(), 4, "{}", text(&out));
    let single_dir = mirror.join("app/single");
    for tag in ["1.0", "1.1"] {
        validate(&single_dir, tag);
        let raw = run(
            "skopeo",
            &[
                "inspect",
                "--raw",
                &format!("oci:{}:{tag}", single_dir.display()),
            ],
        );
        assert_eq!(sha256(raw.as_bytes()), single.digest);
    }
    validate(&mirror.join("app/multi-arm"), "2.0");
    validate(&mirror.join("app/multi"), "2.0");
    let raw = run(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci:{}:2.0", mirror.join("app/multi").display()),
        ],
    );
    assert_eq!(sha256(raw.as_bytes()), index.digest);
    let raw = run(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci:{}:2.0", mirror.join("app/multi-arm").display()),
        ],
    );
    assert_eq!(sha256(raw.as_bytes()), arm);

    // The arm64 image's blobs are in both repositories, stored once: hard links.
    {
        use std::os::unix::fs::MetadataExt;
        let blobs = |repository: &str| -> Vec<(String, u64)> {
            let dir = mirror.join(repository).join("blobs/sha256");
            std::fs::read_dir(&dir)
                .expect("blobs")
                .flatten()
                .map(|e| {
                    let inode = e.metadata().expect("metadata").ino();
                    (e.file_name().to_string_lossy().into_owned(), inode)
                })
                .collect()
        };
        let whole = blobs("app/multi");
        let arm_only = blobs("app/multi-arm");
        let shared: Vec<_> = arm_only
            .iter()
            .filter(|(name, _)| whole.iter().any(|(n, _)| n == name))
            .collect();
        // The config and the layer are linked; the manifest is written by each repository.
        let linked = shared
            .iter()
            .filter(|(name, inode)| whole.contains(&(name.clone(), *inode)))
            .count();
        assert_eq!((shared.len(), linked), (3, 2), "{arm_only:?} {whole:?}");
    }

    // The same run again writes nothing: every file as it was, and no new one.
    let before = files(&mirror);
    std::thread::sleep(Duration::from_millis(20));
    let again = run_dregsy(&outside, &[]);
    assert_success(&again);
    assert_eq!(
        log_lines(&again, "image copied").len(),
        0,
        "{}",
        text(&again)
    );
    assert_eq!(
        log_lines(&again, "image up to date").len(),
        4,
        "{}",
        text(&again)
    );
    assert_eq!(files(&mirror), before);

    // Step 2, inside: directory -> registry, every repository through the layout lister.
    let inside_config = config(
        &layout_side(&mirror),
        &registry_side(&inside),
        "  - from: 'regex:app/.*'\n    platform: all\n",
    );
    let out = run_dregsy(&inside_config, &[]);
    assert_success(&out);
    assert_eq!(log_lines(&out, "image copied").len(), 4, "{}", text(&out));
    for (repository, tag, digest) in [
        ("app/single", "1.0", &single.digest),
        ("app/single", "1.1", &single.digest),
        ("app/multi", "2.0", &index.digest),
        ("app/multi-arm", "2.0", &arm),
    ] {
        assert_eq!(
            support::manifest_digest(&inside, repository, tag).as_ref(),
            Some(digest),
            "{repository}:{tag}"
        );
    }
    let out = run_dregsy(&inside_config, &[]);
    assert_success(&out);
    assert_eq!(
        log_lines(&out, "image up to date").len(),
        4,
        "{}",
        text(&out)
    );

    // `dregsy plan` reads the layout side as it reads a registry.
    let plan = Dregsy::with_config(&inside_config)
        .args(&["plan", "-config={config}"])
        .output();
    assert_success(&plan);
    assert!(text(&plan).contains("up to date"), "{}", text(&plan));
    // A layout side has no credentials to look up, and says so.
    assert!(
        text(&plan).contains("none (a directory of OCI image layouts)"),
        "{}",
        text(&plan)
    );
}

/// `skopeo copy [--all] docker://<source>/<reference> oci:<shared>:<reference>`: one shared
/// layout, as skopeo writes it.
fn skopeo_into_shared(source: &Registry, shared: &Path, reference: &str, all: bool) {
    let from = format!("docker://{}/{reference}", source.host());
    let to = format!("oci:{}:{reference}", shared.display());
    let mut args = vec!["--insecure-policy", "copy", "--src-tls-verify=false"];
    if all {
        args.push("--all");
    }
    args.extend([from.as_str(), to.as_str()]);
    run("skopeo", &args);
}

#[test]
fn a_layout_skopeo_wrote_is_a_source() {
    let RoundTrip {
        source,
        back: inside,
        image,
        index,
        dir,
    } = RoundTrip::start("tools/jq:1.7", "library/busybox:1.36");
    let shared = dir.path().join("shared");
    for (reference, all) in [("tools/jq:1.7", false), ("library/busybox:1.36", true)] {
        skopeo_into_shared(&source, &shared, reference, all);
    }
    let out = run_dregsy(
        &config(
            &layout_side(&shared),
            &registry_side(&inside),
            "  - from: 'regex:.*'\n    platform: all\n",
        ),
        &[],
    );
    assert_success(&out);
    assert_eq!(
        support::manifest_digest(&inside, "tools/jq", "1.7"),
        Some(image.digest)
    );
    assert_eq!(
        support::manifest_digest(&inside, "library/busybox", "1.36"),
        Some(index.digest)
    );
}

#[test]
fn a_run_killed_in_the_middle_of_a_blob_leaves_a_valid_layout_that_the_next_run_completes() {
    let source = Registry::start();
    support::push_image(&source, "app/done", "1", ImageOptions::default());
    support::push_image(
        &source,
        "app/big",
        "1",
        ImageOptions {
            layers: 1,
            layer_size: 4 * 1024 * 1024,
            ..ImageOptions::default()
        },
    );
    // The big layer stalls after 1 MiB: the run is caught with a blob half written.
    let proxy = FaultProxy::start(
        &source.url(),
        vec![Rule::stall_after("/v2/app/big/blobs/sha256:", 1024 * 1024)],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mirror = dir.path().join("mirror");
    let mappings = "  - from: app/done\n  - from: app/big\n";
    let through_proxy = config(
        &format!(
            "    registry: {}\n    skip-tls-verify: true\n",
            proxy.host()
        ),
        &layout_side(&mirror),
        mappings,
    );
    let config_file = dir.path().join("config.yaml");
    std::fs::write(&config_file, &through_proxy).expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dregsy"))
        .arg(format!("-config={}", config_file.display()))
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .env("HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dregsy runs");
    let started = Instant::now();
    let big = mirror.join("app/big");
    while temporary_files(&mirror).is_empty() || !big.join("blobs").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no blob was being written within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Some bytes in the temporary file, then kill -9.
    std::thread::sleep(Duration::from_millis(300));
    run("kill", &["-9", &child.id().to_string()]);
    let _ = child.wait();
    assert!(!temporary_files(&mirror).is_empty(), "killed mid-blob");
    // What is listed is complete: every listed tag validates; the big image is not listed.
    for tag in layout_tags(&mirror.join("app/done")) {
        validate(&mirror.join("app/done"), &tag);
    }
    if big.join("index.json").exists() {
        assert!(layout_tags(&big).is_empty());
    }

    // The next run (the network is fine again) completes it and leaves no temporary file.
    let direct = config(&registry_side(&source), &layout_side(&mirror), mappings);
    let out = run_dregsy(&direct, &[]);
    assert_success(&out);
    assert_eq!(layout_tags(&big), vec!["1"]);
    validate(&big, "1");
    validate(&mirror.join("app/done"), "1");
    assert_eq!(temporary_files(&mirror), Vec::<PathBuf>::new());
}

#[test]
fn layout_sides_fail_clearly_on_bad_input() {
    let target = Registry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing");
    let out = run_dregsy(
        &config(
            &layout_side(&missing),
            &registry_side(&target),
            "  - from: app\n",
        ),
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains(&missing.display().to_string()) && shown.contains("no such file"),
        "{shown}"
    );

    // index.json that is not JSON: that image fails, naming the file; nothing is changed.
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(broken.join("app/blobs/sha256")).expect("dirs");
    std::fs::write(
        broken.join("app/oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("marker");
    std::fs::write(broken.join("app/index.json"), "{not json").expect("index");
    let out = run_dregsy(
        &config(
            &layout_side(&broken),
            &registry_side(&target),
            "  - from: app\n    tags: ['1']\n",
        ),
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains("index.json") && shown.contains("not valid JSON"),
        "{shown}"
    );
    assert_eq!(
        std::fs::read_to_string(broken.join("app/index.json")).expect("kept"),
        "{not json"
    );

    // A repository directory without `oci-layout` is no layout: that mapping fails, naming it.
    let unmarked = dir.path().join("unmarked");
    std::fs::create_dir_all(unmarked.join("app/blobs/sha256")).expect("dirs");
    std::fs::write(
        unmarked.join("app/index.json"),
        r#"{"schemaVersion":2,"manifests":[]}"#,
    )
    .expect("index");
    let out = run_dregsy(
        &config(
            &layout_side(&unmarked),
            &registry_side(&target),
            "  - from: app
",
        ),
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains("no image layout for repository 'app'")
            && shown.contains(&unmarked.join("app/oci-layout").display().to_string()),
        "{shown}"
    );
}

#[test]
fn the_skopeo_relay_copies_into_and_out_of_layouts_with_oci_references() {
    let RoundTrip {
        source,
        back: inside,
        image,
        index,
        dir,
    } = RoundTrip::start("app/web:1.0", "app/multi:2.0");
    let mirror = dir.path().join("mirror");
    let skopeo = |source: String, target: String| {
        format!(
            "relay: skopeo\ntasks:\n- name: carry\n  source:\n{source}  target:\n{target}  \
             mappings:\n  - from: app/web\n  - from: app/multi\n    platform: all\n"
        )
    };
    let outside = skopeo(registry_side(&source), layout_side(&mirror));
    let out = run_dregsy(&outside, &[]);
    assert_success(&out);
    assert_eq!(log_lines(&out, "image copied").len(), 2, "{}", text(&out));
    validate(&mirror.join("app/web"), "1.0");
    // The pre-check reads the layout: nothing to do the second time.
    let out = run_dregsy(&outside, &[]);
    assert_success(&out);
    assert_eq!(
        log_lines(&out, "image up to date").len(),
        2,
        "{}",
        text(&out)
    );

    let out = run_dregsy(&skopeo(layout_side(&mirror), registry_side(&inside)), &[]);
    assert_success(&out);
    assert_eq!(
        support::manifest_digest(&inside, "app/web", "1.0"),
        Some(image.digest)
    );
    assert_eq!(
        support::manifest_digest(&inside, "app/multi", "2.0"),
        Some(index.digest)
    );
}

#[test]
fn digest_pinned_tags_cross_a_layout_both_ways() {
    let RoundTrip {
        source,
        back: inside,
        image,
        index,
        dir,
    } = RoundTrip::start("app/pinned:1.0", "app/pinned:2.0");
    let mirror = dir.path().join("mirror");
    // `name@digest` pulls by digest and pushes the name; a bare digest pins the target too.
    let mappings = format!(
        "  - from: app/pinned\n    tags: ['release@{}', '{}']\n",
        image.digest, index.digest
    );
    let out = run_dregsy(
        &config(&registry_side(&source), &layout_side(&mirror), &mappings),
        &[],
    );
    assert_success(&out);
    let pinned = mirror.join("app/pinned");
    assert_eq!(layout_tags(&pinned), vec!["release"]);
    validate(&pinned, "release");
    // The index pinned by digest is stored whole (with its children), reached by digest.
    let hex = index.digest.trim_start_matches("sha256:");
    assert!(pinned.join("blobs/sha256").join(hex).is_file());
    let again = run_dregsy(
        &config(&registry_side(&source), &layout_side(&mirror), &mappings),
        &[],
    );
    assert_success(&again);
    assert_eq!(
        log_lines(&again, "image up to date").len(),
        2,
        "{}",
        text(&again)
    );

    let out = run_dregsy(
        &config(&layout_side(&mirror), &registry_side(&inside), &mappings),
        &[],
    );
    assert_success(&out);
    assert_eq!(
        support::manifest_digest(&inside, "app/pinned", "release"),
        Some(image.digest.clone())
    );
    assert_eq!(
        support::manifest_digest(&inside, "app/pinned", &index.digest),
        Some(index.digest.clone())
    );
}

#[test]
fn two_processes_writing_one_layout_lose_no_tag() {
    let source = Registry::start();
    let image = support::push_image(&source, "app/shared", "t0", ImageOptions::default());
    let tags: Vec<String> = (1..=12).map(|n| format!("t{n}")).collect();
    let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    support::tag(&source, "app/shared", "t0", &refs);
    let dir = tempfile::tempdir().expect("tempdir");
    let mirror = dir.path().join("mirror");
    let half = |part: &[String]| {
        let list = part
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        config(
            &registry_side(&source),
            &layout_side(&mirror),
            &format!("  - from: app/shared\n    tags: [{list}]\n"),
        )
    };
    let (first, second) = (half(&tags[..6]), half(&tags[6..]));
    let one = std::thread::spawn(move || run_dregsy(&first, &[]));
    let two = std::thread::spawn(move || run_dregsy(&second, &[]));
    assert_success(&one.join().expect("first run"));
    assert_success(&two.join().expect("second run"));
    let mut expected = tags.clone();
    expected.sort();
    assert_eq!(layout_tags(&mirror.join("app/shared")), expected);
    // Read back with skopeo: oci-image-tool 1.0.0~rc1 refuses any layout of three or more
    // tags (tests/layout.rs shows it refuses skopeo's alike).
    for tag in &tags {
        let raw = run(
            "skopeo",
            &[
                "inspect",
                "--raw",
                &format!("oci:{}:{tag}", mirror.join("app/shared").display()),
            ],
        );
        assert_eq!(sha256(raw.as_bytes()), image.digest);
    }
}

#[test]
fn a_corrupt_blob_in_a_layout_source_fails_its_image_naming_the_file_and_pushes_no_tag() {
    let source = Registry::start();
    let inside = Registry::start();
    support::push_image(&source, "app/good", "1", ImageOptions::default());
    let bad = support::push_image(&source, "app/bad", "1", ImageOptions::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let mirror = dir.path().join("mirror");
    let mappings = "  - from: app/good\n  - from: app/bad\n";
    let out = run_dregsy(
        &config(&registry_side(&source), &layout_side(&mirror), mappings),
        &[],
    );
    assert_success(&out);
    // Flip the layer's bytes, keeping its size.
    let (layer, size) = bad.blobs.last().expect("a layer").clone();
    let path = mirror
        .join("app/bad/blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    std::fs::write(&path, vec![0u8; size as usize]).expect("corrupted");

    let out = run_dregsy(
        &config(&layout_side(&mirror), &registry_side(&inside), mappings),
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failed = log_lines(&out, "image failed");
    assert_eq!(failed.len(), 1, "{}", text(&out));
    let message = failed[0]["msg"].as_str().unwrap_or_default();
    assert!(
        message.contains(&path.display().to_string()) && message.contains("does not match"),
        "{message}"
    );
    assert_eq!(support::manifest_digest(&inside, "app/bad", "1"), None);
    assert!(support::manifest_digest(&inside, "app/good", "1").is_some());
}

#[test]
fn digest_pinned_images_are_listed_unnamed_alike_by_both_relays_and_cross_back_with_skopeo() {
    let RoundTrip {
        source,
        back,
        image,
        index,
        dir,
    } = RoundTrip::start("app/pinned:1.0", "app/pinned:2.0");
    let mappings = format!(
        "  - from: app/pinned\n    tags: ['release@{}', '{}']\n    platform: all\n  - from: \
         app/pinned\n    to: app/by-digest\n    tags: ['{}']\n    platform: all\n",
        image.digest, index.digest, index.digest
    );
    let with = |relay: &str, source: String, target: String| {
        config(&source, &target, &mappings).replace("relay: native", relay)
    };
    let native = dir.path().join("native");
    let skopeo = dir.path().join("skopeo");
    for (relay, mirror) in [("relay: native", &native), ("relay: skopeo", &skopeo)] {
        let out = run_dregsy(
            &with(relay, registry_side(&source), layout_side(mirror)),
            &[],
        );
        assert_success(&out);
        assert_eq!(log_lines(&out, "image copied").len(), 3, "{}", text(&out));
    }
    // The tag is named; the image pinned by digest is listed without a name (the index's
    // children are reached through it); both relays write the same index.json entries.
    for mirror in [&native, &skopeo] {
        let mut entries = index_entries(&mirror.join("app/pinned"));
        entries.sort();
        let mut expected = vec![
            (image.digest.clone(), Some("release".to_string())),
            (index.digest.clone(), None),
        ];
        expected.sort();
        assert_eq!(entries, expected, "{}", mirror.display());
        assert_eq!(
            index_entries(&mirror.join("app/by-digest")),
            vec![(index.digest.clone(), None)],
            "{}",
            mirror.display()
        );
    }
    // The real tools see it: skopeo reads the one unnamed image of a layout without a name,
    // oci-image-tool validates the tag beside an unnamed entry, and umoci's garbage collection
    // keeps every blob, as index.json reaches them all.
    let by_digest = native.join("app/by-digest");
    let raw = run(
        "skopeo",
        &["inspect", "--raw", &format!("oci:{}", by_digest.display())],
    );
    assert_eq!(sha256(raw.as_bytes()), index.digest);
    validate(&native.join("app/pinned"), "release");
    let before = files(&native);
    for repository in ["app/pinned", "app/by-digest"] {
        let layout = native.join(repository);
        run(
            "umoci",
            &["gc", "--layout", layout.to_str().expect("utf-8")],
        );
    }
    let names = |list: &[(PathBuf, u64, SystemTime)]| -> Vec<PathBuf> {
        list.iter().map(|(path, _, _)| path.clone()).collect()
    };
    assert_eq!(names(&files(&native)), names(&before));

    // The skopeo relay again: the pre-check finds all three.
    let out = run_dregsy(
        &with(
            "relay: skopeo",
            registry_side(&source),
            layout_side(&skopeo),
        ),
        &[],
    );
    assert_success(&out);
    assert_eq!(
        log_lines(&out, "image up to date").len(),
        3,
        "{}",
        text(&out)
    );
    // Back out of the layout with skopeo, reading each digest through a view that names it
    // (made in the temporary directory).
    let temporary = dir.path().join("tmp");
    std::fs::create_dir_all(&temporary).expect("dir");
    let out = run_dregsy(
        &with("relay: skopeo", layout_side(&native), registry_side(&back)),
        &[("TMPDIR", temporary.to_str().expect("utf-8"))],
    );
    assert_success(&out);
    assert_eq!(
        support::manifest_digest(&back, "app/pinned", "release"),
        Some(image.digest.clone())
    );
    for repository in ["app/pinned", "app/by-digest"] {
        assert_eq!(
            support::manifest_digest(&back, repository, &index.digest),
            Some(index.digest.clone()),
            "{repository}"
        );
    }
    // Nothing is left of the views.
    assert_eq!(files(&temporary), Vec::new());
}

#[test]
fn a_blob_an_earlier_run_stored_in_another_repository_is_linked_not_sent() {
    use std::os::unix::fs::MetadataExt;
    let source = Registry::start();
    let options = ImageOptions {
        layers: 2,
        seed: Some(16),
        ..ImageOptions::default()
    };
    let one = support::push_image(&source, "app/one", "1", options.clone());
    let two = support::push_image(&source, "app/two", "1", options);
    assert_eq!(one.blobs, two.blobs, "the two images share their blobs");
    let dir = tempfile::tempdir().expect("tempdir");
    let mirror = dir.path().join("mirror");
    for repository in ["app/one", "app/two"] {
        let out = run_dregsy(
            &config(
                &registry_side(&source),
                &layout_side(&mirror),
                &format!("  - from: {repository}\n"),
            ),
            &[],
        );
        assert_success(&out);
        let copied = log_lines(&out, "image copied");
        assert_eq!(copied.len(), 1, "{}", text(&out));
        if repository == "app/two" {
            // No blob came from the source: only the manifest's bytes travelled.
            let message = copied[0]["msg"].as_str().unwrap_or_default();
            assert!(
                message.contains("of manifests transferred")
                    && message.contains("3 blobs already on the target"),
                "{message}"
            );
        }
    }
    for (digest, _) in &two.blobs {
        let hex = digest.trim_start_matches("sha256:");
        let meta = |repository: &str| {
            std::fs::metadata(mirror.join(repository).join("blobs/sha256").join(hex))
                .expect("the blob is there")
        };
        let (first, second) = (meta("app/one"), meta("app/two"));
        assert_eq!(first.ino(), second.ino(), "{digest}");
        assert_eq!(second.nlink(), 2, "{digest}");
    }
    validate(&mirror.join("app/two"), "1");
}

/// README "Air-gapped mirrors": step 2 lists the directory's tags, and a tag listing never shows
/// the images step 1 pinned by digest (listed in `index.json` without a name). Each repository
/// that holds such images says so, with how to select them; listing their digests in `tags`
/// carries them across.
#[test]
fn a_tag_listing_of_a_layout_says_which_digest_pinned_images_it_leaves_behind() {
    let RoundTrip {
        source,
        back: inside,
        image,
        index,
        dir,
    } = RoundTrip::start("app/pinned:1.0", "app/pinned:2.0");
    let mirror = dir.path().join("mirror");
    let out = run_dregsy(
        &config(
            &registry_side(&source),
            &layout_side(&mirror),
            &format!(
                "  - from: app/pinned\n    tags: ['release@{}', '{}']\n",
                image.digest, index.digest
            ),
        ),
        &[],
    );
    assert_success(&out);

    let step2 = |tags: &str| {
        config(
            &layout_side(&mirror),
            &registry_side(&inside),
            &format!("  - from: 'regex:.*'\n{tags}"),
        )
    };
    let expected = format!(
        "the source holds 1 image(s) under a digest only (no tag names them), which this mapping \
         does not select: a tag listing never shows them; to copy them, list their digests in \
         'tags' (e.g. '{}')",
        index.digest
    );
    let plan = Dregsy::with_config(&step2("")).args(&["plan"]).output();
    let plan_text = String::from_utf8_lossy(&plan.stdout).to_string();
    assert!(plan_text.contains(&expected), "{plan_text}");
    let out = run_dregsy(&step2(""), &[]);
    assert_success(&out);
    let warned: Vec<String> = log_lines(&out, "the source holds")
        .iter()
        .map(|l| format!("{} {}", l["level"], l["repository"]))
        .collect();
    assert_eq!(warned, ["\"warning\" \"/app/pinned\""], "{}", text(&out));
    assert_eq!(
        support::manifest_digest(&inside, "app/pinned", &index.digest),
        None
    );

    // Listed in `tags`, the digest crosses and the warning is gone.
    let with_digest = step2(&format!("    tags: ['regex:.*', '{}']\n", index.digest));
    let out = run_dregsy(&with_digest, &[]);
    assert_success(&out);
    assert!(
        log_lines(&out, "the source holds").is_empty(),
        "{}",
        text(&out)
    );
    assert_eq!(
        support::manifest_digest(&inside, "app/pinned", &index.digest),
        Some(index.digest.clone())
    );
}

/// A shared layout (one skopeo wrote with `oci:<dir>:<repository>:<tag>`) is refused as a
/// target; `dregsy plan` shows each image failing with the reason the sync gives, not `copy`.
#[test]
fn plan_shows_a_shared_layout_target_failing_as_the_sync_does() {
    let RoundTrip { source, dir, .. } = RoundTrip::start("tools/jq:1.7", "library/busybox:1.36");
    let shared = dir.path().join("shared");
    skopeo_into_shared(&source, &shared, "tools/jq:1.7", false);
    let before = std::fs::read(shared.join("index.json")).expect("index.json");
    let config = config(
        &registry_side(&source),
        &layout_side(&shared),
        "  - from: library/busybox\n    tags: ['1.36']\n",
    );
    let reason = "is one shared image layout";
    let plan = Dregsy::with_config(&config).args(&["plan"]).output();
    let plan_text = String::from_utf8_lossy(&plan.stdout).to_string();
    assert_eq!(plan.status.code(), Some(1), "{plan_text}");
    assert!(
        plan_text
            .lines()
            .any(|l| l.trim_start().starts_with("failed") && l.contains(reason)),
        "{plan_text}"
    );
    assert!(plan_text.contains("0 image(s) to copy"), "{plan_text}");
    let out = run_dregsy(&config, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains(reason), "{}", text(&out));
    assert_eq!(
        std::fs::read(shared.join("index.json")).expect("index.json"),
        before,
        "nothing written"
    );
}
