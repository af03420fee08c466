//! `mounts[].options` and `linux.rootfsPropagation` parsing (runtime-spec "Mounts",
//! `mount(8)` option names).

use super::plan::{BindKind, Mount, MountFlags, Propagation, PropagationKind};

/// Parse one mount's options into flags, bind kind, propagation and leftover data.
pub fn parse_mount(destination: &str, fstype: &str, source: &str, options: &[String]) -> Mount {
    let mut mount = Mount {
        destination: destination.to_string(),
        fstype: fstype.to_string(),
        source: source.to_string(),
        bind: None,
        flags: MountFlags::default(),
        propagation: None,
        data: String::new(),
    };
    let mut data = Vec::new();
    for option in options {
        if !apply_flag(&mut mount.flags, option) {
            match option.as_str() {
                "bind" => mount.bind = Some(BindKind::Single),
                "rbind" => mount.bind = Some(BindKind::Recursive),
                other => match parse_propagation(other) {
                    Some(p) => mount.propagation = Some(p),
                    None => data.push(other.to_string()),
                },
            }
        }
    }
    if fstype == "bind" {
        mount.bind.get_or_insert(BindKind::Single);
    }
    mount.data = data.join(",");
    mount
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
        "defaults" => return true,
        _ => return false,
    };
    *field = value;
    true
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
        );
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
        );
        assert_eq!(m.bind, Some(BindKind::Recursive));
        assert!(m.flags.readonly && m.flags.nodev);
        assert_eq!(
            m.propagation,
            Some(Propagation {
                kind: PropagationKind::Slave,
                recursive: true
            })
        );
        let m = parse_mount("/m", "bind", "/src", &opts(&["rw"]));
        assert_eq!(m.bind, Some(BindKind::Single));
        assert!(!m.flags.readonly);
    }

    #[test]
    fn later_options_win() {
        let m = parse_mount("/m", "tmpfs", "t", &opts(&["ro", "rw", "exec", "noexec"]));
        assert!(!m.flags.readonly && m.flags.noexec);
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
