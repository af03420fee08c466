//! The cgroup v2 device filter: device rules compiled to a `BPF_PROG_TYPE_CGROUP_DEVICE`
//! program (`struct bpf_cgroup_dev_ctx` in `include/uapi/linux/bpf.h`; instruction encoding
//! in the kernel's `Documentation/bpf/standard/instruction-set.rst`).
//!
//! The program reads the request from its context (`access_type` = access << 16 | type,
//! `major`, `minor`), tries the rules from last to first and returns 1 (allow) or 0 (deny)
//! for the first that matches, or the default. It is the same decision as
//! [`super::devices::decide`], which the tests check instruction by instruction.

use super::devices::{effective, DeviceRule, DeviceType};

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// The 8 bytes of `struct bpf_insn` on a little-endian machine (dst in the low nibble).
    pub fn encode(&self) -> [u8; 8] {
        let mut out = [0u8; 8];
        out[0] = self.code;
        out[1] = (self.src << 4) | (self.dst & 0x0f);
        out[2..4].copy_from_slice(&self.off.to_le_bytes());
        out[4..8].copy_from_slice(&self.imm.to_le_bytes());
        out
    }
}

/// Opcodes used (class | op | source).
pub const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
pub const ALU64_AND_K: u8 = 0x57;
pub const ALU64_RSH_K: u8 = 0x77;
pub const ALU64_MOV_K: u8 = 0xb7;
pub const ALU64_MOV_X: u8 = 0xbf;
pub const JMP_JEQ_K: u8 = 0x15;
pub const JMP_JNE_K: u8 = 0x55;
pub const JMP_EXIT: u8 = 0x95;

/// `BPF_DEVCG_DEV_BLOCK` and `BPF_DEVCG_DEV_CHAR`.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        dst,
        src,
        off,
        imm,
    }
}

/// Registers after the prologue: r2 type, r3 access, r4 major, r5 minor; r1 is scratch.
const PROLOGUE: [Insn; 6] = [
    insn(LDX_MEM_W, 2, 1, 0, 0),
    insn(ALU64_AND_K, 2, 0, 0, 0xffff),
    insn(LDX_MEM_W, 3, 1, 0, 0),
    insn(ALU64_RSH_K, 3, 0, 0, 16),
    insn(LDX_MEM_W, 4, 1, 4, 0),
    insn(LDX_MEM_W, 5, 1, 8, 0),
];

/// Compile the rules; `None` when they restrict nothing (no program is needed).
pub fn program(rules: &[DeviceRule]) -> Option<Vec<Insn>> {
    let (default, exceptions) = effective(rules);
    if default && exceptions.iter().all(|r| r.allow) {
        return None;
    }
    let mut out = PROLOGUE.to_vec();
    for rule in exceptions.iter().rev() {
        out.extend(block(rule));
    }
    out.push(insn(ALU64_MOV_K, 0, 0, 0, i32::from(default)));
    out.push(insn(JMP_EXIT, 0, 0, 0, 0));
    Some(out)
}

/// One rule: each test jumps past the block when it fails; the end returns the verdict.
fn block(rule: &DeviceRule) -> Vec<Insn> {
    // Tests as (instructions before the jump, jump opcode, register, immediate); the jump
    // offset is filled in once the block length is known.
    let mut tests: Vec<(Vec<Insn>, u8, u8, i32)> = Vec::new();
    match rule.kind {
        DeviceType::Char => tests.push((vec![], JMP_JNE_K, 2, DEV_CHAR)),
        DeviceType::Block => tests.push((vec![], JMP_JNE_K, 2, DEV_BLOCK)),
        DeviceType::All => {}
    }
    let all = i32::from(super::devices::MKNOD | super::devices::READ | super::devices::WRITE);
    let bits = i32::from(rule.access);
    if rule.allow && bits != all {
        // Requested access outside the rule's -> no match.
        tests.push((
            vec![
                insn(ALU64_MOV_X, 1, 3, 0, 0),
                insn(ALU64_AND_K, 1, 0, 0, all & !bits),
            ],
            JMP_JNE_K,
            1,
            0,
        ));
    } else if !rule.allow && bits != all {
        // No requested access inside the rule's -> no match.
        tests.push((
            vec![
                insn(ALU64_MOV_X, 1, 3, 0, 0),
                insn(ALU64_AND_K, 1, 0, 0, bits),
            ],
            JMP_JEQ_K,
            1,
            0,
        ));
    }
    let mut out = Vec::new();
    let mut jumps = Vec::new();
    for (prefix, jump, reg, imm) in tests {
        out.extend(prefix);
        jumps.push(out.len());
        out.push(insn(jump, reg, 0, 0, imm));
    }
    if let Some(major) = rule.major {
        jumps.push(out.len());
        out.push(insn(JMP_JNE_K, 4, 0, 0, major as i32));
    }
    if let Some(minor) = rule.minor {
        jumps.push(out.len());
        out.push(insn(JMP_JNE_K, 5, 0, 0, minor as i32));
    }
    out.push(insn(ALU64_MOV_K, 0, 0, 0, i32::from(rule.allow)));
    out.push(insn(JMP_EXIT, 0, 0, 0, 0));
    let len = out.len();
    for at in jumps {
        out[at].off = (len - at - 1) as i16;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::devices::{decide, DeviceRule, DeviceType, MKNOD, READ, WRITE};
    use super::*;

    /// A tiny interpreter for the instructions [`program`] emits.
    fn run(prog: &[Insn], ctx: [u32; 3]) -> u64 {
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (d, s) = (usize::from(i.dst), usize::from(i.src));
            let imm = i.imm as i64 as u64;
            let mut next = pc + 1;
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(s, 1, "loads only from the context");
                    r[d] = u64::from(ctx[(i.off / 4) as usize]);
                }
                ALU64_AND_K => r[d] &= imm,
                ALU64_RSH_K => r[d] >>= imm,
                ALU64_MOV_K => r[d] = imm,
                ALU64_MOV_X => r[d] = r[s],
                JMP_JEQ_K | JMP_JNE_K => {
                    if (r[d] == imm) == (i.code == JMP_JEQ_K) {
                        next = (pc as i64 + 1 + i64::from(i.off)) as usize;
                    }
                }
                JMP_EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
            pc = next;
        }
    }

    #[test]
    fn the_program_decides_like_the_rules() {
        let rules = [
            DeviceRule {
                allow: false,
                kind: DeviceType::All,
                major: None,
                minor: None,
                access: MKNOD | READ | WRITE,
            },
            DeviceRule {
                allow: true,
                kind: DeviceType::Char,
                major: Some(1),
                minor: None,
                access: READ | WRITE,
            },
            DeviceRule {
                allow: false,
                kind: DeviceType::Char,
                major: Some(1),
                minor: Some(5),
                access: WRITE,
            },
            DeviceRule {
                allow: true,
                kind: DeviceType::Block,
                major: None,
                minor: None,
                access: MKNOD,
            },
        ];
        let prog = program(&rules).unwrap();
        for kind in [DeviceType::Char, DeviceType::Block] {
            for (major, minor) in [(1, 3), (1, 5), (8, 0), (136, 2)] {
                for access in 1..=7u8 {
                    let ty = if kind == DeviceType::Char {
                        DEV_CHAR
                    } else {
                        DEV_BLOCK
                    } as u32;
                    let got = run(&prog, [(u32::from(access) << 16) | ty, major, minor]) == 1;
                    assert_eq!(
                        got,
                        decide(&rules, kind, major, minor, access),
                        "{kind:?} {major}:{minor} {access}"
                    );
                }
            }
        }
    }

    #[test]
    fn allow_everything_needs_no_program() {
        assert!(program(&[]).is_none());
    }

    #[test]
    fn encoding_puts_dst_in_the_low_nibble() {
        assert_eq!(
            insn(LDX_MEM_W, 2, 1, 4, 0).encode(),
            [0x61, 0x12, 4, 0, 0, 0, 0, 0]
        );
    }
}
