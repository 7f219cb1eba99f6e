//! The original's end-to-end tag-set scenarios (range, prune, regex, regex-inverted, limit, digest;
//! docs/behaviour.md#tag-filters) against a local repository carrying busybox's tag names (the list
//! L of src/plan/tags.rs' table test), and `dregsy plan` / `dregsy tags` on the same data.

mod support;

use std::collections::BTreeSet;
use std::process::Output;

use support::dregsy::{Dregsy, text};
use support::{ImageOptions, Registry, catalog, list_tags, manifest_digest, push_image, tag};

/// The list L without `1.0.0+build5`, which a registry refuses as a tag (`+` is not
/// allowed).
fn spec_list() -> Vec<&'static str> {
    include_str!("fixtures/tags/spec-4.4-list.txt")
        .lines()
        .filter(|tag| !tag.contains('+'))
        .collect()
}

/// A source whose `library/busybox` carries every name of L (one image), and a second image
/// tagged `1.35.0-uclibc`; returns the digests of both.
fn busybox_source() -> (Registry, String, String) {
    let source = Registry::start();
    let list = spec_list();
    let main = push_image(&source, "library/busybox", list[0], ImageOptions::default());
    tag(&source, "library/busybox", list[0], &list[1..]);
    let uclibc = push_image(
        &source,
        "library/busybox",
        "1.35.0-uclibc",
        ImageOptions::default(),
    );
    (source, main.digest, uclibc.digest)
}

/// Runs dregsy with `args` (`{config}` stands for the config file) and `stdin`.
fn run(args: &[&str], config: &str, stdin: Option<&str>) -> Output {
    let run = if config.is_empty() {
        Dregsy::without_config()
    } else {
        Dregsy::with_config(config)
    };
    run.args(args).stdin(stdin.unwrap_or_default()).output()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn tags_of(registry: &Registry, repo: &str) -> BTreeSet<String> {
    list_tags(registry, repo).into_iter().collect()
}

fn location(registry: &Registry) -> String {
    format!(
        "    registry: {}\n    skip-tls-verify: true\n",
        registry.host()
    )
}

#[test]
fn the_originals_tag_set_scenarios() {
    let (source, _, uclibc) = busybox_source();
    let target = Registry::start();
    let mapping = |to: &str, tags: &[&str]| {
        let tags: Vec<String> = tags.iter().map(|t| format!("'{t}'")).collect();
        format!(
            "  - from: library/busybox\n    to: {to}\n    tags: [{}]\n",
            tags.join(", ")
        )
    };
    let d1 = push_image(&source, "library/busybox", "", ImageOptions::default()).digest;
    let digest_tags = [
        d1.as_str(),
        &format!("1.35.0-uclibc@{uclibc}"),
        "keep: all.+",
    ];
    let mappings = [
        mapping("range", &["semver: >=1.31.0 <1.31.9", "latest"]),
        mapping(
            "prune",
            &["semver: >=1.31.0 <1.31.9", "keep: .+(glibc|musl)"],
        ),
        mapping("regex", &[r"regex: 1\.26\.1-(glibc|uclibc|musl)"]),
        mapping(
            "limit",
            &["glibc", "semver: >=1.33.0 <=1.36.0", "keep: latest 5"],
        ),
        mapping("digest", &digest_tags),
    ]
    .concat();
    let config = format!(
        "tasks:\n- name: busybox\n  source:\n{}  target:\n{}  mappings:\n{mappings}\
         - name: inverted\n  source:\n{}  target:\n{}  mappings:\n{}",
        location(&source),
        location(&target),
        location(&target),
        location(&target),
        mapping("regex-inverted", &["regex: !.+(glibc|musl)"])
            .replace("from: library/busybox", "from: regex"),
    );
    let out = run(&["-config={config}"], &config, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    assert_eq!(
        tags_of(&target, "range"),
        set(&[
            "latest",
            "1.31",
            "1.31.0",
            "1.31.1-musl",
            "1.31.1",
            "1.31.1-uclibc",
            "1.31.1-glibc"
        ])
    );
    assert_eq!(
        tags_of(&target, "prune"),
        set(&["1.31.1-musl", "1.31.1-glibc"])
    );
    assert_eq!(
        tags_of(&target, "regex"),
        set(&["1.26.1-glibc", "1.26.1-uclibc", "1.26.1-musl"])
    );
    assert_eq!(tags_of(&target, "regex-inverted"), set(&["1.26.1-uclibc"]));
    assert_eq!(
        tags_of(&target, "limit"),
        set(&[
            "1.36",
            "1.36.0",
            "1.36.0-glibc",
            "1.36.0-musl",
            "1.36.0-uclibc",
            "glibc"
        ])
    );
    // Digest: only the pinned tag is a tag at the target; both digests resolve there.
    assert_eq!(tags_of(&target, "digest"), set(&["1.35.0-uclibc"]));
    assert_eq!(
        manifest_digest(&target, "digest", &d1).as_deref(),
        Some(d1.as_str())
    );
    assert_eq!(
        manifest_digest(&target, "digest", "1.35.0-uclibc").as_deref(),
        Some(uclibc.as_str())
    );
}

#[test]
fn plan_shows_matches_selection_drops_and_what_is_up_to_date_and_copies_nothing() {
    let (source, _, _) = busybox_source();
    let target = Registry::start();
    let config = format!(
        "tasks:\n- name: bb\n  source:\n{}  target:\n{}  mappings:\n\
         \x20 - from: regex:library/.*\n    to: regex:^/library/,/mirror/\n    tags: ['semver: >=1.31.0 <1.31.9', 'keep: .+(glibc|musl)']\n\
         \x20 - from: nothing/here\n    tags: ['semver: >=1.0.0']\n",
        location(&source),
        location(&target),
    );
    // One of the two selected tags is already there.
    let src_digest = manifest_digest(&source, "library/busybox", "1.31.1-musl").expect("pushed");
    let image = support::get_manifest(&source, "library/busybox", "1.31.1-musl").expect("read");
    assert_eq!(image.digest, src_digest);
    let out = run(
        &["-config={config}"],
        &format!(
            "tasks:\n- name: seed\n  source:\n{}  target:\n{}  mappings:\n  - from: library/busybox\n    to: mirror/busybox\n    tags: ['1.31.1-musl']\n",
            location(&source),
            location(&target)
        ),
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let out = run(&["plan", "-config={config}"], &config, None);
    let plan = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the missing repository fails:\n{}",
        text(&out)
    );
    assert!(plan.contains("task 'bb': "), "{plan}");
    assert!(plan.contains("1 repositories listed, 1 matched"), "{plan}");
    let target_ref = |tag: &str| format!("{}/mirror/busybox:{tag}", target.host());
    let line = |status: &str, tag: &str| {
        plan.lines().any(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            l.trim_start().starts_with(status)
                && words.contains(&tag)
                && l.ends_with(&target_ref(tag))
        })
    };
    assert!(line("up to date", "1.31.1-musl"), "{plan}");
    assert!(line("copy", "1.31.1-glibc"), "{plan}");
    assert!(
        plan.lines().any(|l| l.contains("dropped")
            && l.contains("1.31.1-uclibc")
            && l.ends_with("by keep: .+(glibc|musl)")),
        "{plan}"
    );
    assert!(
        plan.lines().any(|l| l.contains("dropped")
            && l.contains("latest")
            && l.ends_with("by semver: >=1.31.0 <1.31.9")),
        "{plan}"
    );
    assert!(plan.contains("failed: failed listing tags"), "{plan}");
    assert!(
        plan.lines()
            .last()
            .unwrap_or_default()
            .starts_with("1 image(s) to copy, 1 up to date, 1 failed;"),
        "{plan}"
    );

    let out = run(&["plan", "-config={config}", "--json"], &config, None);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let repo = &json["tasks"][0]["mappings"][0]["repositories"][0];
    assert_eq!(repo["target"], format!("{}/mirror/busybox", target.host()));
    let statuses: Vec<(String, String)> = repo["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| {
            (
                i["target"].as_str().unwrap_or_default().to_string(),
                i["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            (target_ref("1.31.1-glibc"), "copy".to_string()),
            (target_ref("1.31.1-musl"), "up-to-date".to_string()),
        ]
    );
    assert_eq!(json["totals"]["copy"], 1);
    assert_eq!(json["totals"]["up_to_date"], 1);
    assert_eq!(json["totals"]["failed"], 1);
    assert!(json["tasks"][0]["mappings"][1]["repositories"][0]["error"].is_string());

    // Nothing was copied by planning.
    assert_eq!(catalog(&target), vec!["mirror/busybox".to_string()]);
    assert_eq!(tags_of(&target, "mirror/busybox"), set(&["1.31.1-musl"]));
}

#[test]
fn tags_command_expands_filters_over_stdin() {
    let input = format!("{}\n1.35.0-uclibc\n", spec_list().join("\n"));
    let out = run(
        &[
            "tags",
            "--filter",
            "glibc",
            "--filter=semver: >=1.33.0 <=1.36.0",
            "--filter",
            "keep: latest 5",
        ],
        "",
        Some(&input),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(
            "selected (6):\n  1.36\n  1.36.0\n  1.36.0-glibc\n  1.36.0-musl\n  1.36.0-uclibc\n  glibc\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("  1.35.0-uclibc ") && l.ends_with("by keep: latest 5")),
        "{stdout}"
    );

    let out = run(
        &["tags", "--json", "--filter", r"regex: glibc|musl"],
        "",
        Some(&input),
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["tags"], serde_json::json!(["glibc", "musl"]), "D1");

    let out = run(&["tags", "--filter", "semver: >=1.31"], "", Some(&input));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "'tags' uses invalid format: entry #1 'semver: >=1.31': Could not parse Range \">=1.31\": Could not parse version \"1.31\" in \">=1.31\": No Major.Minor.Patch elements found"
        ),
        "{}",
        text(&out)
    );
}

/// A misspelt filter prefix (`semvr:`) was a verbatim tag in the original, which failed only
/// when copied (`invalid digest 'semvr: >=1.2.0'`). It is a config error now, before any
/// registry is asked: naming the file, line, task, mapping and entry, with the filter meant.
#[test]
fn a_misspelt_filter_prefix_is_a_config_error_naming_the_filter_meant() {
    let source = Registry::builder().access_log().start();
    let target = Registry::start();
    push_image(&source, "app", "1.2.0", ImageOptions::default());
    let config = format!(
        "tasks:\n- name: app\n  source:\n{}  target:\n{}  mappings:\n  - from: app\n    \
         tags:\n    - latest\n    - 'semvr: >=1.2.0'\n    - ''\n",
        location(&source),
        location(&target)
    );
    let want = "'tags' uses invalid format: 2 invalid entries: entry #2 'semvr: >=1.2.0' \
                (line 13): neither a tag (1 to 128 letters, digits, '_', '.' or '-', not \
                starting with '.' or '-'), a digest ('sha256:<hex>', 'tag@sha256:<hex>') nor a \
                filter ('semver: RANGE', 'regex: RE', 'keep: RE', 'keep: latest N'); did you \
                mean 'semver:'?; entry #3 '' (line 14): an empty entry is not a tag: remove \
                it, or name the tag (task 'app', mapping #1) (config file '";
    source.clear_requests();
    for args in [&["-config={config}"][..], &["plan", "-config={config}"]] {
        let out = run(args, &config, None);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let all = text(&out);
        let at = all
            .find(want)
            .unwrap_or_else(|| panic!("want {want}\nin {all}"));
        assert!(
            all[at + want.len()..].contains("config.yaml', line 11)"),
            "points at the tags key: {all}"
        );
    }
    assert!(source.requests().is_empty(), "{:?}", source.requests());
    assert!(catalog(&target).is_empty(), "{:?}", catalog(&target));

    // `dregsy tags` refuses the entry alike, instead of printing it as selected.
    let out = run(&["tags", "--filter", "semvr: >=1.0.0"], "", Some("1.0.0\n"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("entry #1 'semvr: >=1.0.0': neither a tag")
            && stderr.contains("did you mean 'semver:'?"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("selected"));
}
