//! Issue 2, point 1: runc's command line. Global flags, Go-style single-dash long flags,
//! `--flag=false`, options after the container id, any 1.x ociVersion, --help and --version,
//! list on an empty root, and the create/run flags --no-new-keyring and --preserve-fds.
//! (`spec` is in spec.rs.) Needs root for the tests that run containers.

mod support;

use std::process::Command;

use support::runner::{command, run_command};
use support::{run_bare, runtime_bin, unique_id, Bundle, Runtime, TIMEOUT};

#[test]
fn version_prints_the_version_and_the_spec_version() {
    for flag in ["--version", "-v"] {
        let out = run_bare(&[flag]);
        out.ok();
        let first = out.stdout.lines().next().unwrap_or("");
        assert!(first.contains(" version "), "{out}");
        assert!(
            out.stdout.lines().any(|l| l.starts_with("spec: 1.")),
            "{out}"
        );
    }
}

#[test]
fn help_lists_the_subcommands_and_global_flags() {
    for flag in ["--help", "-h"] {
        let out = run_bare(&[flag]);
        out.ok();
        for word in [
            "create",
            "start",
            "run",
            "state",
            "kill",
            "delete",
            "list",
            "spec",
            "--root",
            "--log",
            "--log-format",
            "--debug",
            "--systemd-cgroup",
            "--rootless",
            "--version",
        ] {
            assert!(out.stdout.contains(word), "{flag} lacks {word}:\n{out}");
        }
    }
}

#[test]
fn every_subcommand_has_help_naming_its_flags() {
    let create = [
        "--bundle",
        "--pid-file",
        "--no-pivot",
        "--no-new-keyring",
        "--preserve-fds",
    ];
    let cases: [(&str, &[&str]); 8] = [
        ("create", &create),
        (
            "run",
            &[
                "--bundle",
                "--pid-file",
                "--no-pivot",
                "--no-new-keyring",
                "--preserve-fds",
                "--detach",
                "--keep",
            ],
        ),
        ("start", &[]),
        ("state", &[]),
        ("kill", &["--all"]),
        ("delete", &["--force"]),
        ("list", &["--format", "--quiet"]),
        ("spec", &["--bundle", "--rootless"]),
    ];
    for (sub, flags) in cases {
        let out = run_bare(&[sub, "--help"]);
        out.ok();
        assert!(out.stdout.contains(sub), "{out}");
        for flag in flags {
            assert!(
                out.stdout.contains(flag),
                "{sub} --help lacks {flag}:\n{out}"
            );
        }
    }
}

#[test]
fn global_flags_are_accepted() {
    let rt = Runtime::new();
    let logs = support::host_tempdir("log");
    let log = logs.path().join("log");
    let log = log.to_str().unwrap();
    for args in [
        vec![
            "--log",
            log,
            "--log-format",
            "text",
            "--debug",
            "list",
            "-q",
        ],
        vec!["--log-format", "json", "--systemd-cgroup", "list", "-q"],
        vec!["--rootless", "false", "list", "-q"],
        vec!["--rootless", "auto", "list", "-q"],
        vec!["--rootless=true", "--debug=false", "list", "-q"],
    ] {
        let out = rt.run(&args);
        out.ok();
        assert_eq!(out.stdout, "", "{out}");
    }
}

#[test]
fn an_invalid_log_format_is_refused() {
    let out = Runtime::new().run(&["--log-format", "yaml", "list"]);
    out.code_is(1);
    assert!(out.stderr.contains("yaml"), "{out}");
}

#[test]
fn unknown_flags_and_subcommands_fail() {
    let rt = Runtime::new();
    rt.run(&["list", "--no-such-flag"]).code_is(1);
    let out = rt.run(&["no-such-command"]);
    assert!(!out.status.success(), "{out}");
    assert!(out.stderr.contains("no-such-command"), "{out}");
}

#[test]
fn a_missing_container_id_is_a_usage_error() {
    let rt = Runtime::new();
    for sub in ["create", "start", "state", "kill", "delete"] {
        let out = rt.run(&[sub]);
        out.code_is(1);
        assert!(!out.stderr.trim().is_empty(), "{out}");
    }
}

#[test]
fn list_on_an_empty_root() {
    let rt = Runtime::new();
    let table = rt.run(&["list"]);
    let header: Vec<&str> = table.ok().stdout.split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
        "{table}"
    );
    assert_eq!(rt.run(&["list", "-f", "json"]).ok().stdout.trim(), "null");
    assert_eq!(
        rt.run(&["list", "--format=json"]).ok().stdout.trim(),
        "null"
    );
    assert_eq!(rt.run(&["list", "-q"]).ok().stdout, "");
}

/// A container whose state.json cannot be read is named on stderr and skipped: `list` still
/// shows the others and succeeds, as runc's does ("load container ID: ...").
#[test]
fn list_skips_a_container_whose_state_is_unreadable() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("exec sleep 1000");
    let good = unique_id("listgood");
    rt.ok(&["create", "--bundle", b.save(), &good]);
    let bad = unique_id("listbad");
    std::fs::create_dir(rt.root().join(&bad)).unwrap();
    std::fs::write(rt.root().join(&bad).join("state.json"), "{bad").unwrap();
    let quiet = rt.run(&["list", "-q"]);
    let table = rt.run(&["list"]);
    std::fs::remove_dir_all(rt.root().join(&bad)).unwrap();
    rt.ok(&["delete", "-f", &good]);
    assert_eq!(quiet.ok().stdout.trim(), good, "{quiet}");
    assert!(quiet.stderr.contains(&bad), "{quiet}");
    assert!(table.ok().stdout.contains(&good), "{table}");
}

/// `list` creates a missing root (0700) and fails, as runc 1.1 does ("mkdir /proc/nope: no
/// such file or directory"), on one it cannot create, rootless or not.
#[test]
fn list_creates_its_root_or_fails_like_runc() {
    use std::os::unix::fs::PermissionsExt;
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("a/b");
    let root_s = root.to_str().unwrap();
    let bare = |args: &[&str]| run_command(command(&runtime_bin(), args), TIMEOUT);
    bare(&["--root", root_s, "list", "-q"]).ok();
    let mode = std::fs::metadata(&root).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    for rootless in ["false", "true"] {
        let out = bare(&["--rootless", rootless, "--root", "/proc/pier-nope", "list"]);
        out.code_is(1);
        assert!(out.stderr.contains("mkdir /proc/pier-nope"), "{out}");
    }
}

#[test]
fn go_style_single_dash_long_flags_work() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("exec sleep 1000");
    let id = unique_id("godash");
    let root = rt.root_str().to_owned();
    let bare = |args: &[&str]| run_command(command(&runtime_bin(), args), TIMEOUT);
    bare(&["-root", &root, "create", "-bundle", b.save(), &id]).ok();
    let quiet = bare(&[&format!("-root={root}"), "list", "-quiet"]);
    assert_eq!(quiet.ok().stdout.trim(), id);
    let json = bare(&["-root", &root, "list", "-format", "json"]);
    assert!(
        json.ok().stdout.contains(&format!("\"id\":\"{id}\"")),
        "{json}"
    );
    bare(&["-root", &root, "delete", "-force", &id]).ok();
    rt.assert_clean(&b, &id);
}

#[test]
fn bool_flags_accept_an_explicit_false() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("echo in-foreground");
    let id = unique_id("eqfalse");
    // --detach=false means a foreground run: the output comes back and the container is gone.
    let out = rt.run(&["run", "--detach=false", "--bundle", b.save(), &id]);
    assert_eq!(out.ok().stdout, "in-foreground\n");
    rt.assert_clean(&b, &id);

    b.sh("echo started > /events; exec sleep 1000");
    let mut events = b.events();
    let id = unique_id("eqfalse");
    rt.run(&["run", "-d", "--bundle", b.save(), &id]).ok();
    events.expect("started");
    rt.run(&["delete", "--force=false", &id]).code_is(1);
    assert_eq!(rt.state(&id)["status"], "running");
    rt.run(&["delete", "--force=true", &id]).ok();
    rt.assert_clean(&b, &id);
}

#[test]
fn options_may_follow_the_container_id() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("echo started > /events; exec sleep 1000");
    let mut events = b.events();
    let id = unique_id("after");
    rt.run(&["create", &id, "--bundle", b.save()]).ok();
    assert_eq!(rt.state(&id)["status"], "created");
    rt.run(&["start", &id]).ok();
    events.expect("started");
    rt.run(&["kill", &id, "KILL", "--all"]).ok();
    rt.wait_gone(rt.state(&id)["pid"].as_i64().unwrap_or(0) as i32);
    rt.run(&["delete", &id, "--force"]).ok();
    rt.assert_clean(&b, &id);

    let id = unique_id("after");
    rt.run(&["run", &id, "-d", "-b", b.save()]).ok();
    events.expect("started");
    rt.run(&["delete", &id, "-f"]).ok();
    rt.assert_clean(&b, &id);
}

#[test]
fn any_1x_oci_version_is_accepted() {
    let rt = Runtime::new();
    for version in ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.0", "1.2.1", "1.3.0"] {
        let mut b = Bundle::new();
        b.config["ociVersion"] = version.into();
        b.sh("echo ok");
        let id = unique_id("ociver");
        let out = rt.run_fg(&b, &id);
        assert_eq!(out.ok().stdout, "ok\n", "ociVersion {version}");
        rt.assert_clean(&b, &id);
    }
}

#[test]
fn the_default_root_is_run_pier() {
    let mut b = Bundle::new();
    b.sh("exec sleep 1000");
    let id = unique_id("defroot");
    struct Cleanup<'a>(&'a str);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = run_bare(&["delete", "--force", self.0]);
        }
    }
    let _cleanup = Cleanup(&id);
    run_bare(&["create", "--bundle", b.save(), &id]).ok();
    assert!(
        std::path::Path::new("/run/pier").join(&id).is_dir(),
        "no /run/pier/{id} after create without --root"
    );
    run_bare(&["delete", &id]).ok();
    support::assert_no_leftovers(std::path::Path::new("/run/pier"), &id, b.path());
}

#[test]
fn no_new_keyring_keeps_the_callers_session_keyring() {
    // By default the init joins a new session keyring named after the container (runc names
    // it "_ses.<id>"), which /proc/keys then lists; --no-new-keyring must not create one.
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["linux"]["maskedPaths"] = serde_json::json!([]);
    b.sh("cat /proc/keys");
    let keyrings_naming_the_id = |flags: &[&str]| -> Vec<String> {
        let id = unique_id("keyring");
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--bundle", b.save(), &id]);
        let out = rt.run(&args);
        out.ok();
        rt.assert_clean(&b, &id);
        // serial flags usage timeout perm uid gid type description: summary
        let rows = out
            .stdout
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>());
        rows.filter(|f| f.len() > 8 && f[7] == "keyring" && f[8].contains(id.as_str()))
            .map(|f| f.join(" "))
            .collect()
    };
    let fresh = keyrings_naming_the_id(&[]);
    assert_eq!(
        fresh.len(),
        1,
        "no session keyring named after the container: {fresh:?}"
    );
    let kept = keyrings_naming_the_id(&["--no-new-keyring"]);
    assert!(kept.is_empty(), "--no-new-keyring still made {kept:?}");
}

#[test]
fn preserve_fds_passes_extra_descriptors() {
    let rt = Runtime::new();
    let files = support::host_tempdir("fds");
    let data = files.path().join("fd3.txt");
    std::fs::write(&data, "through-fd-3\n").unwrap();
    let mut b = Bundle::new();
    b.sh("cat <&3 2>/dev/null || echo no-fd-3");
    let path = b.save().to_owned();
    // The host shell opens fd 3 and execs the runtime, which must hand it on.
    let with_fd3 = |flags: &[&str], id: &str| {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(format!("exec \"$@\" 3<{}", data.display()))
            .arg("sh");
        cmd.arg(runtime_bin())
            .args(["--root", rt.root_str(), "run"]);
        cmd.args(flags).args(["--bundle", &path, id]);
        run_command(cmd, TIMEOUT)
    };
    let id = unique_id("fds");
    assert_eq!(
        with_fd3(&["--preserve-fds", "1"], &id).ok().stdout,
        "through-fd-3\n"
    );
    rt.assert_clean(&b, &id);
    let id = unique_id("fds");
    assert_eq!(with_fd3(&[], &id).ok().stdout, "no-fd-3\n");
    rt.assert_clean(&b, &id);
}

#[test]
fn features_prints_only_a_json_document_with_the_version_range() {
    // CRI-O parses stdout with json.Unmarshal and requires ociVersionMin/Max.
    let out = run_bare(&["features"]);
    out.ok();
    let doc: serde_json::Value =
        serde_json::from_str(&out.stdout).expect("stdout is one JSON document");
    assert!(
        doc["ociVersionMin"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{doc}"
    );
    assert!(
        doc["ociVersionMax"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{doc}"
    );
    assert!(doc["linux"]["namespaces"]
        .as_array()
        .is_some_and(|n| n.iter().any(|x| x == "pid")));
}
