//! Where the static sd_notify test sender (notify-relay's `examples/sd-notify-send.rs`) is:
//! built once per test process with the workspace's own cargo and `.cargo/config.toml` (so it
//! is static and runs in a bare busybox image), into `<target>/test-sender`. That is a target
//! dir of its own: the `cargo test` running the caller holds the lock of the caller's one.
//! pier's tests pull this file in with `#[path]` (`tests/support/mod.rs`); scripts/test.sh
//! builds the same example with `--release` instead.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The path of the built `sd-notify-send`; panics (with cargo's output) if it cannot be built.
pub fn sender() -> &'static Path {
    static SENDER: OnceLock<PathBuf> = OnceLock::new();
    SENDER.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        // A test binary is <target>/<triple>/<profile>/deps/<name>.
        let exe = std::env::current_exe().expect("current_exe");
        let target = exe
            .ancestors()
            .find(|p| p.file_name().is_some_and(|n| n == "target"))
            .map_or_else(|| workspace.join("target"), Path::to_path_buf);
        let dir = target.join("test-sender");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let out = Command::new(cargo)
            .current_dir(&workspace)
            .args(["build", "--frozen", "-p", "notify-relay"])
            .args(["--example", "sd-notify-send"])
            .args([
                "--config",
                "profile.dev.strip=true",
                "--config",
                "profile.dev.debug=0",
            ])
            .arg("--target-dir")
            .arg(&dir)
            .output()
            .expect("run cargo build for sd-notify-send");
        assert!(
            out.status.success(),
            "cargo build -p notify-relay --example sd-notify-send failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        ["x86_64-unknown-linux-gnu/debug", "debug"]
            .iter()
            .map(|sub| dir.join(sub).join("examples/sd-notify-send"))
            .find(|p| p.exists())
            .expect("cargo built sd-notify-send but it is not where expected")
    })
}
