//! `pier create` SIGKILLed half-way (an engine's timeout) and then `delete --force` of the id:
//! nothing of the container is left (no state dir, cgroup directory, mount or process), and
//! the id can be created again. create records its cgroup paths (cgroup.json) before it makes
//! the cgroups, so a delete that finds no state.json still finds them; the half-made init
//! dies with its parent (parent-death signal, EOF on the channel). A create stuck half-way
//! blocks neither `list`, `state` nor `delete --force`. Needs root.

mod support;

use std::path::Path;
use std::time::Instant;

use rustix::process::Signal;
use serde_json::json;
use support::leftovers::{cgroup_dirs_named, find_leftovers};
use support::stage::{
    block_create_on_passwd, mkfifo, read_pid, wait_blocked_on_fifo, SweepCgroups,
};
use support::{unique_id, Bundle, Running, Runtime, TIMEOUT};

#[test]
fn delete_after_a_killed_create_leaves_nothing() {
    let rt = Runtime::new();
    let id = unique_id("killed-create");
    let _sweep = SweepCgroups(id.clone());
    let b = Bundle::new();
    block_create_on_passwd(&b);
    let create = rt.spawn(&["create", "--bundle", b.save(), &id]);
    wait_blocked_on_fifo(&b);
    create.signal(Signal::KILL);
    // delete first: a container that got as far as created holds create's stdout pipe.
    rt.run(&["delete", "--force", &id]).ok();
    create.wait();
    rt.assert_clean(&b, &id);
}

/// Where [`sigkill_of_create_at_each_point_then_delete_force_leaves_nothing`] stops a create.
#[derive(Debug, Clone, Copy)]
enum Point {
    /// Reading config.json (a FIFO): nothing made yet.
    ReadingConfig,
    /// Opening a pid namespace path (a FIFO) just before the clone: the state dir,
    /// cgroup.json, the cgroup in every hierarchy and exec.fifo are made, no init yet.
    JoiningPidNamespace,
    /// In the prestart hook (pier's side, after the init set up its mounts): the init lives
    /// in the cgroup, state.json is not written.
    Prestart,
    /// In the createRuntime hook (the same stage, the next hook list).
    CreateRuntime,
    /// In the init's HOME lookup (the image's /etc/passwd is a FIFO): pier waits for its
    /// child.
    InitSetup,
    /// After create returned: state.json written, the init blocked on exec.fifo.
    Created,
}

/// The FIFO at `path` is opened for writing by a thread, which returns once a reader (the
/// create under test) opened it. Bounded by the suite's TIMEOUT (a create that fails before
/// getting there would leave the opener blocked forever).
#[track_caller]
fn wait_until_opened_for_reading(path: &Path, create: &Running) {
    let (tx, rx) = std::sync::mpsc::channel();
    let fifo = path.to_owned();
    std::thread::spawn(move || {
        // Dropped at once: the reader gets EOF and fails, which is fine, it is killed anyway.
        let opened = std::fs::OpenOptions::new().write(true).open(&fifo);
        let _ = tx.send(opened.map(drop));
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(opened) => opened.expect("open the FIFO for writing"),
        Err(_) => panic!(
            "create (pid {}) never opened {} within {TIMEOUT:?}",
            create.pid(),
            path.display()
        ),
    }
}

/// A hook (`/bin/sh` on the host) that writes its pid into the FIFO `at`, then blocks until
/// the test writes a line into the FIFO `gate`.
fn blocking_hook(at: &Path, gate: &Path) -> serde_json::Value {
    let script = format!("echo $$ > {}; read _ < {}", at.display(), gate.display());
    json!({"path": "/bin/sh", "args": ["sh", "-c", script]})
}

/// Issue 9: `create` SIGKILLed at each [`Point`] (known by a FIFO it opens or a hook that
/// reports, never by time), then `delete --force`, leaves no state dir, cgroup directory on
/// any hierarchy, mount or process, and the same id can be created again each time.
#[test]
fn sigkill_of_create_at_each_point_then_delete_force_leaves_nothing() {
    let rt = Runtime::new();
    let id = unique_id("killed-create-at");
    let _sweep = SweepCgroups(id.clone());
    let fifos = support::host_tempdir("killed-create");
    for point in [
        Point::ReadingConfig,
        Point::JoiningPidNamespace,
        Point::Prestart,
        Point::CreateRuntime,
        Point::InitSetup,
        Point::Created,
    ] {
        let ctx = format!("killed at {point:?}");
        let mut b = Bundle::new();
        b.args(&["sleep", "1000"]);
        let (at, gate) = (fifos.path().join("at"), fifos.path().join("gate"));
        let _ = std::fs::remove_file(&at);
        let _ = std::fs::remove_file(&gate);
        mkfifo(&at, 0o600);
        mkfifo(&gate, 0o600);
        let ns = fifos.path().join("pidns");
        match point {
            Point::ReadingConfig => {}
            Point::JoiningPidNamespace => {
                let _ = std::fs::remove_file(&ns);
                mkfifo(&ns, 0o600);
                let namespaces = b.config["linux"]["namespaces"].as_array_mut().unwrap();
                namespaces.retain(|n| n["type"] != "pid");
                namespaces.push(json!({"type": "pid", "path": ns}));
            }
            Point::Prestart => b.config["hooks"] = json!({"prestart": [blocking_hook(&at, &gate)]}),
            Point::CreateRuntime => {
                b.config["hooks"] = json!({"createRuntime": [blocking_hook(&at, &gate)]})
            }
            Point::InitSetup => block_create_on_passwd(&b),
            Point::Created => {}
        }
        let path = b.path().to_owned();
        if let Point::ReadingConfig = point {
            b.save();
            let config = Path::new(&path).join("config.json");
            std::fs::remove_file(&config).unwrap();
            mkfifo(&config, 0o644);
        } else {
            b.save();
        }
        let create = rt.spawn(&["create", "--bundle", &path, &id]);
        let mut hook = None;
        match point {
            Point::ReadingConfig => {
                wait_until_opened_for_reading(&Path::new(&path).join("config.json"), &create)
            }
            Point::JoiningPidNamespace => wait_until_opened_for_reading(&ns, &create),
            Point::Prestart | Point::CreateRuntime => {
                // Blocks until the hook has written its pid and closed the FIFO.
                let pid = read_pid(&at);
                let pidfd = rustix::process::pidfd_open(
                    rustix::process::Pid::from_raw(pid).expect("hook pid"),
                    rustix::process::PidfdFlags::empty(),
                )
                .expect("pidfd of the hook");
                hook = Some(pidfd);
            }
            Point::InitSetup => wait_blocked_on_fifo(&b),
            Point::Created => {
                // create's own exit says it is done; the init holds its stdout, so only the
                // status is waited for here (wait_pid_gone), the streams after delete.
                assert!(
                    support::runner::wait_pid_gone(create.pid(), Instant::now() + TIMEOUT),
                    "{ctx}: create did not finish"
                );
            }
        }
        // The point is where it says: the cgroups exist from JoiningPidNamespace on, nothing
        // at ReadingConfig.
        let made = cgroup_dirs_named(&id);
        match point {
            Point::ReadingConfig => {
                assert!(made.is_empty(), "{ctx}: {made:?}");
                assert!(!rt.root().join(&id).exists(), "{ctx}: a state dir already");
            }
            _ => assert!(!made.is_empty(), "{ctx}: no cgroup made yet"),
        }
        create.signal(Signal::KILL);
        // delete first: a container that got as far as created holds create's stdout pipe.
        rt.run(&["delete", "--force", &id]).ok();
        if let Some(pidfd) = hook {
            // The hook is the caller's process, not the container's: let it finish.
            let mut release = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&gate)
                .unwrap();
            std::io::Write::write_all(&mut release, b"go\n").unwrap();
            assert!(
                support::runner::wait_pidfd(&pidfd, Instant::now() + TIMEOUT),
                "{ctx}: the hook did not finish"
            );
        }
        create.wait();
        let found = find_leftovers(rt.root(), &id, &path, Instant::now() + TIMEOUT);
        assert!(
            found.is_empty(),
            "{ctx}: leftovers:\n  {}",
            found.join("\n  ")
        );
    }
    // And the id works again after the last crash.
    let b = Bundle::new();
    rt.run(&["create", "--bundle", b.save(), &id]).ok();
    rt.run(&["delete", "--force", &id]).ok();
    rt.assert_clean(&b, &id);
}

/// A `create` that cannot finish (here: the image's /etc/passwd is a FIFO nobody writes, so
/// the HOME lookup blocks) does not stop `list` (every container), `state` and `delete
/// --force` of that id, as runc answers all three; `delete --force` kills the half-created
/// container and nothing is left. (They once blocked on the container directory's lock for
/// as long as the create lasted, so an engine could neither see nor clean up.)
#[test]
fn list_state_and_delete_force_answer_while_a_create_is_stuck() {
    let rt = Runtime::new();
    let id = unique_id("stuck-create");
    let _sweep = SweepCgroups(id.clone());
    let b = Bundle::new();
    block_create_on_passwd(&b);
    let create = rt.spawn(&["create", "--bundle", b.save(), &id]);
    wait_blocked_on_fifo(&b);

    rt.run(&["list"]).ok();
    rt.run(&["state", &id]).ok();
    rt.run(&["delete", "--force", &id]).ok();
    create.wait();
    rt.assert_clean(&b, &id);
}
