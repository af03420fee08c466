//! The host programs pier runs for a rootless caller, as runc does: `newuidmap`/`newgidmap`
//! (ranges from /etc/subuid, `spawn::userns`) and `systemctl --user show-environment` (the
//! user bus address, `cgroups::dbus`). Each is found on `$PATH` and forked through
//! [`crate::sys::fork_exec`], the one fork path for executables.

use std::os::fd::{AsFd, OwnedFd};

use anyhow::{Context, Result};
use rustix::fs::{Mode, OFlags};

/// The most of a tool's output that is kept (the rest is read and dropped).
const MAX_OUTPUT: u64 = 64 << 10;

/// Fork and exec `tool` (looked up on `$PATH`) with `argv` (`argv[0]` included) and pier's
/// environment; stdin is /dev/null, stdout and stderr go to one pipe (Go's
/// `CombinedOutput`, which runc uses for these tools). Waits for it; returns its status and
/// the first 64 KiB of its output.
///
/// # Errors
/// The tool is not on `$PATH`, an argument holds a NUL, the fork or the exec fails.
pub fn run(tool: &str, argv: &[String]) -> Result<(rustix::process::WaitIdStatus, String)> {
    let path = find_on_path(tool).with_context(|| format!("{tool} not found"))?;
    let cstring = |s: &[u8]| std::ffi::CString::new(s).context("NUL in an argument");
    let image = crate::sys::ExecImage {
        path: cstring(path.as_os_str().as_encoded_bytes())?,
        argv: crate::sys::CStringArray::new(
            argv.iter()
                .map(|a| cstring(a.as_bytes()))
                .collect::<Result<_>>()?,
        ),
        envp: crate::sys::CStringArray::new(
            std::env::vars_os()
                .filter_map(|(k, v)| {
                    let mut kv = k.into_encoded_bytes();
                    kv.push(b'=');
                    kv.extend(v.into_encoded_bytes());
                    std::ffi::CString::new(kv).ok()
                })
                .collect(),
        ),
        cwd: None,
    };
    // Every fd the child gets is above 2, so placing them on 0-2 overwrites none of them.
    let high = |fd: OwnedFd| rustix::io::fcntl_dupfd_cloexec(&fd, 10).context("F_DUPFD_CLOEXEC");
    let null = high(rustix::fs::open(
        "/dev/null",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)?;
    let pipe = || rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).context("pipe");
    let (out_r, out_w) = pipe()?;
    let out_w = high(out_w)?;
    let (exec_r, exec_w) = pipe()?;
    let exec_w = high(exec_w)?;
    let child = crate::sys::fork_exec(
        &image,
        [null.as_fd(), out_w.as_fd(), out_w.as_fd()],
        exec_w.as_fd(),
    )
    .context("fork")?;
    drop((out_w, exec_w));
    let exec_failed = crate::sys::exec_error(exec_r);
    let mut said = Vec::new();
    let mut out = std::fs::File::from(out_r);
    let _ = std::io::Read::read_to_end(&mut std::io::Read::take(&mut out, MAX_OUTPUT), &mut said);
    let _ = std::io::copy(&mut out, &mut std::io::sink()); // never block the tool on a full pipe
    let status = loop {
        match rustix::process::waitid(
            rustix::process::WaitId::PidFd(child.pidfd.as_fd()),
            rustix::process::WaitIdOptions::EXITED,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other.context("waitid")?.context("no exit status")?,
        }
    };
    if let Some(error) = exec_failed {
        return Err(error).with_context(|| format!("exec {}", path.display()));
    }
    Ok((status, String::from_utf8_lossy(&said).into_owned()))
}

/// The first executable regular file named `tool` in a directory of `$PATH` (the default
/// `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` when unset), as `execvp(3)`
/// searches.
fn find_on_path(tool: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(tool))
        .find(|candidate| {
            rustix::fs::access(candidate, rustix::fs::Access::EXEC_OK).is_ok()
                && candidate.is_file()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_of_both_streams_and_the_status() {
        let (status, said) = run(
            "sh",
            &["sh", "-c", "echo out; echo err >&2; exit 3"].map(String::from),
        )
        .unwrap();
        assert_eq!(status.exit_status(), Some(3));
        assert_eq!(said, "out\nerr\n");
        let err = run("pier-no-such-tool", &["x".into()]).unwrap_err();
        assert!(format!("{err:#}").contains("pier-no-such-tool not found"));
    }
}
