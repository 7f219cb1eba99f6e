//! podman's Docker-compatible Engine API on a private socket, for the docker relay's tests (podman
//! from Debian's `podman` package): its own vfs storage, runtime dirs and `registries.conf` in a
//! temp dir, so nothing touches the machine's podman state, and the harness registries it must
//! reach over plain HTTP are listed as insecure.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Registry;

/// A running `podman system service`, stopped on drop.
pub struct Podman {
    child: Child,
    dir: tempfile::TempDir,
}

/// Writes a private podman configuration into `root` (vfs storage and runtime directories
/// under it, no event log), so nothing touches the machine's podman state; returns the
/// environment that points podman at it.
pub fn private_config(root: &Path) -> Vec<(&'static str, PathBuf)> {
    std::fs::write(
        root.join("storage.conf"),
        format!(
            "[storage]\ndriver = \"vfs\"\nrunroot = \"{0}/run\"\ngraphroot = \"{0}/graph\"\n",
            root.display()
        ),
    )
    .expect("storage.conf");
    std::fs::write(
        root.join("containers.conf"),
        format!(
            "[engine]\ntmp_dir = \"{0}/tmp\"\nevents_logger = \"none\"\n",
            root.display()
        ),
    )
    .expect("containers.conf");
    vec![
        ("CONTAINERS_STORAGE_CONF", root.join("storage.conf")),
        ("CONTAINERS_CONF", root.join("containers.conf")),
        ("TMPDIR", root.to_path_buf()),
    ]
}

impl Podman {
    /// Starts the service; `registries` are the harness registries it may talk to (plain-HTTP
    /// ones are marked insecure). Panics with an install hint when podman is missing.
    pub fn start(registries: &[&Registry]) -> Podman {
        Podman::start_with_plain_hosts(registries, &[])
    }

    /// [`Podman::start`], and `plain_hosts` (`host:port`, proxies say) are spoken to over
    /// plain HTTP too.
    pub fn start_with_plain_hosts(registries: &[&Registry], plain_hosts: &[String]) -> Podman {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let environment = private_config(root);
        let mut registries_conf = String::from("unqualified-search-registries = []\n");
        for registry in registries {
            registries_conf.push_str(&format!(
                "[[registry]]\nlocation = \"{}\"\ninsecure = {}\n",
                registry.host(),
                !registry.is_tls()
            ));
        }
        for host in plain_hosts {
            registries_conf.push_str(&format!(
                "[[registry]]\nlocation = \"{host}\"\ninsecure = true\n"
            ));
        }
        std::fs::write(root.join("registries.conf"), registries_conf).expect("registries.conf");
        let socket = root.join("podman.sock");
        let child = Command::new("podman")
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .envs(environment)
            .env("CONTAINERS_REGISTRIES_CONF", root.join("registries.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(root.join("podman.log")).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start podman ({e}): install it with 'apt-get install -y podman' (scripts/test does)")
            });
        let podman = Podman { child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while podman.get("/_ping").is_none() {
            assert!(
                Instant::now() < deadline,
                "podman's API did not answer within 30 s; its log:\n{}",
                podman.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        podman
    }

    /// The address for dregsy's `docker.dockerhost`.
    pub fn dockerhost(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("podman.sock")
    }

    /// The service's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("podman.log")).unwrap_or_default()
    }

    /// Every `repo:tag` the daemon holds (`/v1.41/images/json`).
    pub fn image_tags(&self) -> Vec<String> {
        let body = self.get("/v1.41/images/json").expect("podman answers");
        let images: serde_json::Value = serde_json::from_str(&body).expect("JSON image list");
        images
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|i| i["RepoTags"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t.as_str().map(str::to_string))
            .filter(|t| t != "<none>:<none>")
            .collect()
    }

    /// Number of images the daemon holds, tagged or not.
    pub fn image_count(&self) -> usize {
        let body = self
            .get("/v1.41/images/json?all=true")
            .expect("podman answers");
        let images: serde_json::Value = serde_json::from_str(&body).expect("JSON image list");
        images.as_array().map_or(0, Vec::len)
    }

    /// A GET over the socket (HTTP/1.0, so the body ends with the connection).
    fn get(&self, path: &str) -> Option<String> {
        get_unix(&self.socket(), path)
    }
}

fn get_unix(socket: &Path, path: &str) -> Option<String> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: d\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| body.to_string())
        .or_else(|| head.starts_with("HTTP/1.0 200").then(|| body.to_string()))
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `podman login --authfile <authfile>` against `registry` (password on standard input,
/// TLS verification off for plain-HTTP registries), with podman's storage and config in a
/// temp dir: the real `auth.json` podman writes, for tests that read it. Panics with podman's
/// output when the login fails, and with an install hint when podman is missing.
pub fn login(authfile: &Path, registry: &Registry, user: &str, password: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let environment = private_config(root);
    let mut child = Command::new("podman")
        .arg("login")
        .arg(format!("--authfile={}", authfile.display()))
        .arg(format!("--tls-verify={}", registry.is_tls()))
        .args(["--username", user, "--password-stdin"])
        .arg(registry.host())
        .envs(environment)
        .env("XDG_RUNTIME_DIR", root)
        .env("HOME", root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run podman ({e}): install it with 'apt-get install -y podman' (scripts/test does)")
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(password.as_bytes())
        .expect("write the password");
    let out = child.wait_with_output().expect("podman login finishes");
    assert!(
        out.status.success(),
        "podman login failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
