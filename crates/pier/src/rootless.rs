//! Rootless pier: run by an unprivileged user, with runc's rules (runc `main.go`,
//! `rootless_linux.go`, `libcontainer/configs/validate/rootless.go`).
//!
//! Two separate questions, as in runc: whether pier's effective uid is not 0 (then the id
//! maps must be the caller's own or written by newuidmap/newgidmap, and config.json is
//! checked by [`crate::spec::check_rootless`]), and whether the rootless cgroup manager is used
//! (`--rootless`, [`uses_rootless_cgroups`]: cgroups it may not create are skipped).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// `--rootless`: `true`, `false` or `auto` (the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootlessFlag {
    /// Decide from the euid and the user namespace pier runs in.
    Auto,
    /// Always the rootless cgroup manager.
    Yes,
    /// Never.
    No,
}

/// Parse `--rootless` as runc does: `auto` (any case) or empty, else Go's `strconv.ParseBool`
/// spellings (`1 t T TRUE true True`, `0 f F FALSE false False`).
///
/// # Errors
/// Anything else.
pub fn parse_flag(s: &str) -> Result<RootlessFlag, String> {
    match s {
        "" => Ok(RootlessFlag::Auto),
        _ if s.eq_ignore_ascii_case("auto") => Ok(RootlessFlag::Auto),
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(RootlessFlag::Yes),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(RootlessFlag::No),
        _ => Err(format!("{s:?} is not true, false or auto")),
    }
}

/// Whether pier's effective uid is not 0 (runc's `RootlessEUID`).
pub fn unprivileged() -> bool {
    !rustix::process::geteuid().is_root()
}

/// Whether pier runs inside a user namespace other than the initial one: its
/// `/proc/self/uid_map` is not the identity map of all 2^32 ids (runc's `RunningInUserNS`).
/// Read once per process: a container init that asked before the clone keeps pier's answer
/// (what the host side is), whatever namespace it enters later.
pub fn in_user_namespace() -> bool {
    static IN_USERNS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN_USERNS.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| !is_initial_uid_map(&m))
    })
}

/// Whether the container's processes live in a user namespace other than the initial one:
/// the plan has one (new or joined), or pier itself runs in one (rootless podman's, whose
/// config has none). Then the kernel refuses mknod, sysfs without an owned netns, and so on,
/// and the init uses runc's fallbacks (`userns.RunningInUserNS() || NEWUSER`).
pub fn userns_rules(plan: &crate::spec::Plan) -> bool {
    plan.has_namespace(crate::spec::NamespaceKind::User) || in_user_namespace()
}

fn is_initial_uid_map(map: &str) -> bool {
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

/// Whether the rootless cgroup manager is used (runc's `shouldUseRootlessCgroupManager`):
/// `true`/`false` as given; `auto` is true for a non-zero euid or inside a user namespace.
pub fn uses_rootless_cgroups(flag: RootlessFlag) -> bool {
    match flag {
        RootlessFlag::Yes => true,
        RootlessFlag::No => false,
        RootlessFlag::Auto => unprivileged() || in_user_namespace(),
    }
}

/// The default `--root`: `$XDG_RUNTIME_DIR/pier` when runc would use `$XDG_RUNTIME_DIR`
/// (a non-zero euid, or uid 0 in a user namespace with `$USER` unset or not `root`),
/// else `/run/pier`.
pub fn default_root() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() && honors_xdg_runtime_dir() => PathBuf::from(dir).join("pier"),
        _ => PathBuf::from("/run/pier"),
    }
}

fn honors_xdg_runtime_dir() -> bool {
    if unprivileged() {
        return true;
    }
    if !in_user_namespace() {
        return false;
    }
    std::env::var("USER").map_or(true, |u| u != "root")
}

/// With `$XDG_RUNTIME_DIR` honoured, make `root` (mode 0700) and set its sticky bit, as runc
/// does: the XDG Base Directory spec lets the session manager clean files there that are not
/// sticky. Nothing to do otherwise.
///
/// # Errors
/// The directory cannot be made or its mode set.
pub fn prepare_root(root: &Path) -> Result<()> {
    let xdg_set = std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| !d.is_empty());
    if !xdg_set || !honors_xdg_runtime_dir() {
        return Ok(());
    }
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .with_context(|| format!("create state root {}", root.display()))?;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o1700))
        .with_context(|| format!("chmod state root {}", root.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_takes_go_booleans_and_auto() {
        assert_eq!(parse_flag("auto"), Ok(RootlessFlag::Auto));
        assert_eq!(parse_flag("AUTO"), Ok(RootlessFlag::Auto));
        assert_eq!(parse_flag(""), Ok(RootlessFlag::Auto));
        assert_eq!(parse_flag("true"), Ok(RootlessFlag::Yes));
        assert_eq!(parse_flag("1"), Ok(RootlessFlag::Yes));
        assert_eq!(parse_flag("F"), Ok(RootlessFlag::No));
        assert!(parse_flag("yes").is_err());
        assert!(parse_flag("tRue").is_err());
    }

    #[test]
    fn only_the_identity_map_of_all_ids_is_the_initial_namespace() {
        assert!(is_initial_uid_map("         0          0 4294967295\n"));
        assert!(!is_initial_uid_map("         0       1000          1\n"));
        assert!(!is_initial_uid_map("0 0 4294967295\n1 1 1\n"));
    }
}
