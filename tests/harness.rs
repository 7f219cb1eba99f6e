//! Proves the test harness against the real registry, so other tests can trust it.

mod support;

use support::*;

#[test]
fn open_registry_answers() {
    let registry = Registry::start();
    let pushed = push_image(&registry, "smoke/one", "v1", ImageOptions::default());
    assert_eq!(
        manifest_digest(&registry, "smoke/one", "v1"),
        Some(pushed.digest)
    );
}
