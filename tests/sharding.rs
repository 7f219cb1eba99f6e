//! Sharding across processes (docs/behaviour.md#sharding): several dregsy processes
//! with one config, each copying only the target repositories its shard owns.
//!
//! Each process sends its registry traffic through its own forward proxy (`HTTP_PROXY`), so
//! the proxies' request logs say which process touched which target repository.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;

use support::dregsy::{Dregsy, log_lines, text};
use support::{FaultProxy, ImageOptions, Registry, manifest_digest, push_image};

const REPOSITORIES: usize = 30;

fn name(i: usize) -> String {
    format!("r{i:02}")
}

/// One one-off task with a mapping per repository: `src/rNN` to `dst/rNN`.
fn config(source: &Registry, target: &Registry) -> String {
    let mappings: String = (0..REPOSITORIES)
        .map(|i| format!("  - from: src/{0}\n    to: dst/{0}\n", name(i)))
        .collect();
    format!(
        "tasks:\n- name: mirror\n  source:\n    registry: http://{}\n  target:\n    registry: http://{}\n  mappings:\n{mappings}",
        source.host(),
        target.host()
    )
}

/// How a process learns its shard.
#[derive(Clone, Copy)]
enum Told {
    /// `-shard=INDEX/COUNT` for every process.
    ByFlag,
    /// Shard 0 by the flag, shard 1 as an Indexed Job pod (`JOB_COMPLETION_INDEX`), shard 2 as
    /// a StatefulSet pod (`HOSTNAME=dregsy-2`), both with `DREGSY_SHARDS`.
    Mixed,
}

/// Runs `count` shards of `config` at once, each through its own forward proxy; returns each
/// process's output and the target repositories (`dst/rNN`) its proxy saw requests for.
fn run_shards(
    config: &str,
    count: u32,
    told: Told,
    target: &Registry,
) -> Vec<(Output, BTreeSet<String>)> {
    let proxies: Vec<FaultProxy> = (0..count).map(|_| FaultProxy::forward()).collect();
    let outputs: Vec<Output> = std::thread::scope(|scope| {
        let runs: Vec<_> = proxies
            .iter()
            .enumerate()
            .map(|(index, proxy)| {
                let url = proxy.url();
                scope.spawn(move || {
                    let run = Dregsy::with_config(config)
                        .env_remove("JOB_COMPLETION_INDEX")
                        .env_remove("DREGSY_SHARDS");
                    let shards = count.to_string();
                    let run = match (told, index) {
                        (Told::Mixed, 1) => run
                            .env("DREGSY_SHARDS", &shards)
                            .env("JOB_COMPLETION_INDEX", "1"),
                        (Told::Mixed, 2) => run
                            .env("DREGSY_SHARDS", &shards)
                            .env("HOSTNAME", "dregsy-2"),
                        _ => run.args(&[&format!("-shard={index}/{count}")]),
                    };
                    run.env("HTTP_PROXY", &url)
                        .env_remove("http_proxy")
                        .env_remove("NO_PROXY")
                        .env_remove("no_proxy")
                        .output()
                })
            })
            .collect();
        runs.into_iter()
            .map(|run| run.join().expect("a dregsy run"))
            .collect()
    });
    outputs
        .into_iter()
        .zip(&proxies)
        .map(|(out, proxy)| {
            let requests = proxy.requests();
            assert!(!requests.is_empty(), "no request went through the proxy");
            let touched = requests
                .iter()
                .filter(|r| r.host.as_deref() == Some(target.host().as_str()))
                .filter_map(|r| r.path.strip_prefix("/v2/dst/"))
                .filter_map(|rest| rest.split('/').next())
                .map(str::to_string)
                .collect();
            (out, touched)
        })
        .collect()
}

/// Which process (shard index) touched each target repository; fails when two did.
fn owners(runs: &[(Output, BTreeSet<String>)]) -> BTreeMap<String, u32> {
    let mut owners = BTreeMap::new();
    for (index, (_, touched)) in runs.iter().enumerate() {
        for repository in touched {
            if let Some(other) = owners.insert(repository.clone(), index as u32) {
                panic!("dst/{repository} was touched by shards {other} and {index}");
            }
        }
    }
    owners
}

#[test]
fn three_shards_at_once_write_each_repository_once_and_all_of_them() {
    let source = Registry::start();
    let target = Registry::start();
    let digests: Vec<String> = (0..REPOSITORIES)
        .map(|i| {
            push_image(
                &source,
                &format!("src/{}", name(i)),
                "1",
                ImageOptions::default(),
            )
            .digest
        })
        .collect();
    let config = config(&source, &target);

    let runs = run_shards(&config, 3, Told::Mixed, &target);
    let owned = owners(&runs);
    // The union is complete: every repository had exactly one shard (owners() checks "one").
    assert_eq!(owned.len(), REPOSITORIES, "{owned:?}");
    for (index, (out, touched)) in runs.iter().enumerate() {
        assert_eq!(out.status.code(), Some(0), "shard {index}:\n{}", text(out));
        // It copied exactly what it touched, skipped the rest without failing, and said so.
        let summary = format!(
            "shard {index}/3: {} of {REPOSITORIES} repositories are ours",
            touched.len()
        );
        assert_eq!(
            log_lines(out, &summary).len(),
            1,
            "{summary}:\n{}",
            text(out)
        );
        let done = log_lines(out, "task done");
        assert_eq!(done.len(), 1, "{}", text(out));
        assert_eq!(done[0]["copied"], touched.len(), "{}", text(out));
        assert_eq!(done[0]["failed"], 0, "{}", text(out));
        assert!(!touched.is_empty(), "shard {index} owns nothing of 30");
        // The owner is the one the documented hash names.
        for repository in touched {
            let expected = dregsy::shard::owner(&format!("dst/{repository}"), 3);
            assert_eq!(expected, index as u32, "dst/{repository}");
        }
    }
    // Digest-identical.
    for (i, digest) in digests.iter().enumerate() {
        assert_eq!(
            manifest_digest(&target, &format!("dst/{}", name(i)), "1").as_deref(),
            Some(digest.as_str()),
            "dst/{}",
            name(i)
        );
    }

    // `dregsy plan` shows the same owners, and one shard's share.
    let plan = Dregsy::with_config(&config)
        .args(&["plan", "-shard=all/3"])
        .output();
    let plan_text = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    for (repository, index) in &owned {
        let line = format!("/dst/{repository}  (shard {index}/3)");
        assert!(
            plan_text.lines().any(|l| l.ends_with(&line)),
            "{line}:\n{plan_text}"
        );
    }
    let plan = Dregsy::with_config(&config)
        .args(&["plan", "-shard=1/3", "--json"])
        .output();
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let json: serde_json::Value = serde_json::from_slice(&plan.stdout).expect("plan JSON");
    let shown: BTreeSet<String> = json["tasks"][0]["mappings"]
        .as_array()
        .expect("mappings")
        .iter()
        .flat_map(|m| m["repositories"].as_array().cloned().unwrap_or_default())
        .map(|r| {
            assert_eq!(r["shard"], 1, "{r}");
            r["target"]
                .as_str()
                .unwrap_or_default()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(&shown, &runs[1].1);

    // Growing to 4 shards: a repository either stays with its shard or moves to the new one.
    let runs4 = run_shards(&config, 4, Told::ByFlag, &target);
    for (index, (out, _)) in runs4.iter().enumerate() {
        assert_eq!(
            out.status.code(),
            Some(0),
            "shard {index}/4:\n{}",
            text(out)
        );
        let done = log_lines(out, "task done");
        assert_eq!(done[0]["copied"], 0, "all up to date: {}", text(out));
    }
    let owned4 = owners(&runs4);
    assert_eq!(owned4.len(), REPOSITORIES);
    let moved: Vec<&String> = owned4
        .iter()
        .filter(|(repository, index)| owned[*repository] != **index)
        .map(|(repository, _)| repository)
        .collect();
    for repository in &moved {
        assert_eq!(
            owned4[*repository], 3,
            "{repository} moved, but not to the new shard"
        );
    }
    // About a quarter (7.5 of 30); the hash is fixed, so the exact set is known.
    let expected: Vec<String> = (0..REPOSITORIES)
        .map(name)
        .filter(|r| {
            let full = format!("dst/{r}");
            dregsy::shard::owner(&full, 3) != dregsy::shard::owner(&full, 4)
        })
        .collect();
    assert_eq!(moved, expected.iter().collect::<Vec<_>>());
    assert!((3..=12).contains(&moved.len()), "{moved:?}");
}

#[test]
fn invalid_shards_are_a_clear_error_and_exit_1() {
    let source = Registry::start();
    let target = Registry::start();
    let config = config(&source, &target);
    for (args, env, says) in [
        (
            &["-shard=3/3"][..],
            &[][..],
            "-shard: '3/3': shard index 3 is out of range",
        ),
        (
            &["-shard=0/0"][..],
            &[][..],
            "-shard: '0/0': the shard count must be at least 1",
        ),
        (
            &["-shard=x/2"][..],
            &[][..],
            "-shard: 'x/2' is not INDEX/COUNT: the index 'x'",
        ),
        (
            &[][..],
            &[("JOB_COMPLETION_INDEX", "1")][..],
            "JOB_COMPLETION_INDEX=1 is set but DREGSY_SHARDS is not",
        ),
        (
            &[][..],
            &[("DREGSY_SHARDS", "3"), ("HOSTNAME", "dregsy-7")][..],
            "the ordinal of HOSTNAME='dregsy-7' with DREGSY_SHARDS=3: shard index 7 is out of range",
        ),
        (
            &["plan", "-shard=3/3"][..],
            &[][..],
            "-shard: '3/3': shard index 3 is out of range",
        ),
    ] {
        let out = Dregsy::with_config(&config)
            .args(args)
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("DREGSY_SHARDS")
            .envs(env)
            .output();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?} {env:?}:\n{}",
            text(&out)
        );
        assert!(
            text(&out).contains(says),
            "{args:?} {env:?}: {says}\n{}",
            text(&out)
        );
        assert!(!text(&out).contains("syncing task"), "{}", text(&out));
    }
    assert!(support::catalog(&target).is_empty());
}
