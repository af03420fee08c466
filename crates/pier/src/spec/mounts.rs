//! `mounts[].options` and `linux.rootfsPropagation` parsing (runtime-spec "Mounts",
//! `mount(8)` option names). Every option runc and crun accept is understood (runc's
//! `features` mountOptions list plus crun's `copy-symlink` and `r{sync,async,dirsync,mand,nomand}`;
//! [`MOUNT_OPTIONS`]); anything else is filesystem data, passed to `mount(2)` as runc does.

use anyhow::Result;

use super::plan::{BindKind, Mount, MountAttrs, MountFlags, Propagation, PropagationKind};

/// Every option name pier understands, sorted: what `pier features` lists as mountOptions.
pub const MOUNT_OPTIONS: &[&str] = &[
    "acl",
    "async",
    "atime",
    "bind",
    "copy-symlink",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "idmap",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noacl",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "rasync",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "rdirsync",
    "relatime",
    "remount",
    "rexec",
    "ridmap",
    "rmand",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnomand",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "rsync",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
];

/// `MOUNT_ATTR_*` of `<linux/mount.h>` (`mount_setattr(2)`).
pub mod attr {
    pub const RDONLY: u64 = 0x1;
    pub const NOSUID: u64 = 0x2;
    pub const NODEV: u64 = 0x4;
    pub const NOEXEC: u64 = 0x8;
    /// The atime field: one of RELATIME (0), NOATIME, STRICTATIME.
    pub const ATIME_MASK: u64 = 0x70;
    pub const RELATIME: u64 = 0x0;
    pub const NOATIME: u64 = 0x10;
    pub const STRICTATIME: u64 = 0x20;
    pub const NODIRATIME: u64 = 0x80;
    pub const NOSYMFOLLOW: u64 = 0x0020_0000;
}

/// Parse one mount's options into flags, bind kind, propagation, recursive attributes,
/// extensions and leftover data. Later options win over earlier ones.
///
/// # Errors
/// None yet (kept for options that cannot be applied).
pub fn parse_mount(
    destination: &str,
    fstype: &str,
    source: &str,
    options: &[String],
) -> Result<Mount> {
    let mut mount = Mount {
        destination: destination.to_string(),
        fstype: fstype.to_string(),
        source: source.to_string(),
        bind: None,
        flags: MountFlags::default(),
        recursive: MountAttrs::default(),
        propagation: None,
        tmpcopyup: false,
        copy_symlink: false,
        idmap: None,
        data: String::new(),
    };
    let mut data = Vec::new();
    for option in options {
        let option = option.as_str();
        if apply_flag(&mut mount.flags, option) {
            continue;
        }
        let recursive = option
            .strip_prefix('r')
            .filter(|f| MOUNT_OPTIONS.contains(&option) && apply_flag(&mut mount.flags, f));
        if let Some(flag) = recursive {
            apply_recursive(&mut mount.recursive, flag);
            continue;
        }
        match option {
            "bind" => mount.bind = Some(BindKind::Single),
            "rbind" => mount.bind = Some(BindKind::Recursive),
            "tmpcopyup" => mount.tmpcopyup = true,
            "copy-symlink" => mount.copy_symlink = true,
            "idmap" | "ridmap" => {
                mount.idmap = Some(super::plan::MountIdmap {
                    recursive: option == "ridmap",
                    ..Default::default()
                })
            }
            other => match parse_propagation(other) {
                Some(p) => mount.propagation = Some(p),
                None => data.push(other.to_string()),
            },
        }
    }
    if fstype == "bind" {
        mount.bind.get_or_insert(BindKind::Single);
    }
    mount.data = data.join(",");
    Ok(mount)
}

/// Set or clear the flag an option names; false when `option` is not a flag option.
fn apply_flag(flags: &mut MountFlags, option: &str) -> bool {
    let (field, value) = match option {
        "ro" => (&mut flags.readonly, true),
        "rw" => (&mut flags.readonly, false),
        "nosuid" => (&mut flags.nosuid, true),
        "suid" => (&mut flags.nosuid, false),
        "nodev" => (&mut flags.nodev, true),
        "dev" => (&mut flags.nodev, false),
        "noexec" => (&mut flags.noexec, true),
        "exec" => (&mut flags.noexec, false),
        "sync" => (&mut flags.sync, true),
        "async" => (&mut flags.sync, false),
        "dirsync" => (&mut flags.dirsync, true),
        "mand" => (&mut flags.mand, true),
        "nomand" => (&mut flags.mand, false),
        "noatime" => (&mut flags.noatime, true),
        "atime" => (&mut flags.noatime, false),
        "nodiratime" => (&mut flags.nodiratime, true),
        "diratime" => (&mut flags.nodiratime, false),
        "relatime" => (&mut flags.relatime, true),
        "norelatime" => (&mut flags.relatime, false),
        "strictatime" => (&mut flags.strictatime, true),
        "nostrictatime" => (&mut flags.strictatime, false),
        "nosymfollow" => (&mut flags.nosymfollow, true),
        "symfollow" => (&mut flags.nosymfollow, false),
        "lazytime" => (&mut flags.lazytime, true),
        "nolazytime" => (&mut flags.lazytime, false),
        "iversion" => (&mut flags.iversion, true),
        "noiversion" => (&mut flags.iversion, false),
        "silent" => (&mut flags.silent, true),
        "loud" => (&mut flags.silent, false),
        "acl" => (&mut flags.posixacl, true),
        "noacl" => (&mut flags.posixacl, false),
        "remount" => (&mut flags.remount, true),
        "defaults" => return true,
        _ => return false,
    };
    *field = value;
    true
}

/// The `mount_setattr(2)` change of an `r<flag>` option (runc's recursive attributes). Flags
/// without a mount attribute (sync, dirsync, mand: superblock flags) only apply to the mount
/// itself, as crun does. Any atime option clears the whole atime field (the kernel wants
/// that); the ones that only turn a mode off (`ratime`, `rnorelatime`, `rnostrictatime`)
/// leave the default, relatime.
fn apply_recursive(a: &mut MountAttrs, flag: &str) {
    let (bit, on) = match flag {
        "ro" => (attr::RDONLY, true),
        "rw" => (attr::RDONLY, false),
        "nosuid" => (attr::NOSUID, true),
        "suid" => (attr::NOSUID, false),
        "nodev" => (attr::NODEV, true),
        "dev" => (attr::NODEV, false),
        "noexec" => (attr::NOEXEC, true),
        "exec" => (attr::NOEXEC, false),
        "nodiratime" => (attr::NODIRATIME, true),
        "diratime" => (attr::NODIRATIME, false),
        "nosymfollow" => (attr::NOSYMFOLLOW, true),
        "symfollow" => (attr::NOSYMFOLLOW, false),
        "relatime" | "atime" | "norelatime" | "nostrictatime" => (attr::RELATIME, true),
        "noatime" => (attr::NOATIME, true),
        "strictatime" => (attr::STRICTATIME, true),
        _ => return,
    };
    let atime = matches!(
        flag,
        "relatime" | "atime" | "norelatime" | "nostrictatime" | "noatime" | "strictatime"
    );
    if atime {
        a.set = (a.set & !attr::ATIME_MASK) | bit;
        a.clear |= attr::ATIME_MASK;
    } else if on {
        a.set |= bit;
        a.clear &= !bit;
    } else {
        a.clear |= bit;
        a.set &= !bit;
    }
}

/// `private`, `rprivate`, `shared`, `rshared`, `slave`, `rslave`, `unbindable`,
/// `runbindable`; None for anything else.
pub fn parse_propagation(option: &str) -> Option<Propagation> {
    let (recursive, name) = match option.strip_prefix('r') {
        Some(rest) if rest != "o" && rest != "w" && rest != "bind" => (true, rest),
        _ => (false, option),
    };
    let kind = match name {
        "private" => PropagationKind::Private,
        "shared" => PropagationKind::Shared,
        "slave" => PropagationKind::Slave,
        "unbindable" => PropagationKind::Unbindable,
        _ => return None,
    };
    Some(Propagation { kind, recursive })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn runc_default_dev_tmpfs() {
        let m = parse_mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &opts(&["nosuid", "strictatime", "mode=755", "size=65536k"]),
        )
        .unwrap();
        assert!(m.flags.nosuid && m.flags.strictatime && !m.flags.readonly);
        assert_eq!(m.data, "mode=755,size=65536k");
        assert_eq!(m.bind, None);
    }

    #[test]
    fn bind_options_and_propagation() {
        let m = parse_mount(
            "/m",
            "none",
            "/src",
            &opts(&["rbind", "ro", "nodev", "rslave"]),
        )
        .unwrap();
        assert_eq!(m.bind, Some(BindKind::Recursive));
        assert!(m.flags.readonly && m.flags.nodev);
        assert_eq!(
            m.propagation,
            Some(Propagation {
                kind: PropagationKind::Slave,
                recursive: true
            })
        );
        let m = parse_mount("/m", "bind", "/src", &opts(&["rw"])).unwrap();
        assert_eq!(m.bind, Some(BindKind::Single));
        assert!(!m.flags.readonly);
    }

    #[test]
    fn later_options_win() {
        let m = parse_mount("/m", "tmpfs", "t", &opts(&["ro", "rw", "exec", "noexec"])).unwrap();
        assert!(!m.flags.readonly && m.flags.noexec);
    }

    #[test]
    fn recursive_options_set_the_mount_and_its_submounts() {
        let m = parse_mount(
            "/m",
            "none",
            "/s",
            &opts(&["rbind", "rro", "rnosuid", "rnoatime"]),
        )
        .unwrap();
        assert!(m.flags.readonly && m.flags.nosuid && m.flags.noatime);
        assert_eq!(m.recursive.set, attr::RDONLY | attr::NOSUID | attr::NOATIME);
        assert_eq!(m.recursive.clear, attr::ATIME_MASK);
        let m = parse_mount("/m", "none", "/s", &opts(&["rro", "rrw", "rexec"])).unwrap();
        assert_eq!(
            (m.recursive.set, m.recursive.clear),
            (0, attr::RDONLY | attr::NOEXEC)
        );
        let m = parse_mount("/m", "none", "/s", &opts(&["rsync"])).unwrap();
        assert!(m.flags.sync);
        assert_eq!(m.recursive, MountAttrs::default());
        assert!(m.data.is_empty());
    }

    #[test]
    fn extensions_and_extra_flags_never_reach_the_data() {
        let all: Vec<String> = MOUNT_OPTIONS.iter().map(|s| s.to_string()).collect();
        let m = parse_mount("/m", "tmpfs", "tmpfs", &all).unwrap();
        assert_eq!(m.data, "", "every listed option is understood");
        assert!(m.tmpcopyup && m.copy_symlink);
        let m = parse_mount("/m", "tmpfs", "tmpfs", &opts(&["tmpcopyup", "mode=755"])).unwrap();
        assert_eq!(m.data, "mode=755");
        let mut sorted = MOUNT_OPTIONS.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, MOUNT_OPTIONS);
    }

    #[test]
    fn idmap_options_mark_the_mount() {
        let m = parse_mount("/m", "none", "/s", &opts(&["bind", "idmap"])).unwrap();
        assert!(!m.idmap.unwrap().recursive);
        let m = parse_mount("/m", "none", "/s", &opts(&["rbind", "ridmap"])).unwrap();
        assert!(m.idmap.unwrap().recursive);
    }

    #[test]
    fn propagation_names() {
        assert_eq!(
            parse_propagation("private").unwrap().kind,
            PropagationKind::Private
        );
        assert!(parse_propagation("runbindable").unwrap().recursive);
        assert!(parse_propagation("ro").is_none());
        assert!(parse_propagation("rw").is_none());
        assert!(parse_propagation("relatime").is_none());
    }
}
