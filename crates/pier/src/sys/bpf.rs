//! `bpf(2)`: load a cgroup device program and attach it to a cgroup v2 directory. The two
//! commands pier needs, with their `union bpf_attr` members laid out as `<linux/bpf.h>`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// `BPF_F_ALLOW_MULTI`: programs of ancestors and of this cgroup all run.
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The `BPF_PROG_LOAD` member of `union bpf_attr` (fields up to `expected_attach_type`).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The `BPF_PROG_ATTACH` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// `bpf(BPF_PROG_LOAD)` of a `BPF_PROG_TYPE_CGROUP_DEVICE` program given as encoded
/// `struct bpf_insn`s (8 bytes each). Returns the program fd.
///
/// # Errors
/// `EINVAL`/`EACCES` when the verifier rejects the program, `EPERM` without `CAP_BPF` or
/// `CAP_SYS_ADMIN`.
pub fn prog_load_cgroup_device(insns: &[[u8; 8]], name: &str) -> io::Result<OwnedFd> {
    let license = c"Apache-2.0";
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: u32::try_from(insns.len())
            .map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..ProgLoadAttr::default()
    };
    for (dst, src) in attr.prog_name.iter_mut().take(15).zip(name.bytes()) {
        *dst = if src.is_ascii_alphanumeric() || src == b'_' {
            src
        } else {
            b'_'
        };
    }
    // SAFETY: `attr` is a valid, zero-padded bpf_attr prefix of the size passed; `insns` and
    // `license` point to memory that outlives the call and is only read by the kernel.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            std::ptr::addr_of_mut!(attr),
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success BPF_PROG_LOAD returns a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as i32) })
}

/// `bpf(BPF_PROG_ATTACH)` of a device program to a cgroup v2 directory fd, with
/// `BPF_F_ALLOW_MULTI`. The attachment lives as long as the cgroup; the fds may be closed.
///
/// # Errors
/// `EBADF`/`EINVAL` for a wrong fd or program type, `EPERM` without privilege.
pub fn prog_attach_cgroup_device(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = ProgAttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..ProgAttachAttr::default()
    };
    // SAFETY: `attr` is a valid bpf_attr prefix of the size passed; the kernel only reads it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            std::ptr::addr_of_mut!(attr),
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
