//! v2 device controller: the rules compiled to a `BPF_PROG_TYPE_CGROUP_DEVICE` program, attached
//! with `BPF_F_ALLOW_MULTI` and replacing the programs we attached before (the new one is
//! attached first, so the cgroup is never left unfiltered).
//!
//! The program decides each requested access bit (mknod, read, write) on its own: for a bit, the
//! rules are scanned from the last to the first (a later rule overrides an earlier one) and the
//! first rule naming that bit and matching the device decides; when none matches, the access is
//! allowed, as in a fresh v1 cgroup — but the manager always puts "deny all" first
//! ([`crate::devices::effective_rules`]), which matches everything. The request is allowed only
//! if every bit it asks for is.
//!
//! Context (`struct bpf_cgroup_dev_ctx`): `access_type` = access << 16 | type (1 block,
//! 2 char), `major`, `minor`, each u32. Registers: r2 type, r3 access, r4 major, r5 minor, r6
//! scratch.

use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use berth_sys::bpf::{self, Insn};

use crate::devices::{access, DeviceKind, DeviceRule};
use crate::error::{CgroupError, Result};

pub(crate) const LDX_MEM_W: u8 = 0x61;
pub(crate) const ALU32_AND_K: u8 = 0x54;
pub(crate) const ALU32_RSH_K: u8 = 0x74;
pub(crate) const ALU32_MOV_X: u8 = 0xbc;
pub(crate) const ALU32_MOV_K: u8 = 0xb4;
pub(crate) const JMP_JA: u8 = 0x05;
pub(crate) const JMP_JEQ_K: u8 = 0x15;
pub(crate) const JMP_JNE_K: u8 = 0x55;
pub(crate) const JMP_EXIT: u8 = 0x95;

const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

/// A tiny assembler with forward labels.
struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, usize)>,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn bind(&mut self, l: usize) {
        self.labels[l] = Some(self.insns.len());
    }
    fn emit(&mut self, i: Insn) {
        self.insns.push(i);
    }
    fn jump(&mut self, code: u8, dst: u8, imm: i32, l: usize) {
        self.fixups.push((self.insns.len(), l));
        self.insns.push(Insn::new(code, dst, 0, 0, imm));
    }
    fn finish(mut self) -> Result<Vec<Insn>> {
        for (at, l) in self.fixups {
            let target = self.labels[l].expect("every referenced label is bound");
            let off =
                i16::try_from(target as i64 - at as i64 - 1).map_err(|_| CgroupError::Invalid {
                    field: "linux.resources.devices".into(),
                    reason: "too many rules for one device program".into(),
                })?;
            self.insns[at].off = off;
        }
        Ok(self.insns)
    }
}

fn imm(n: u32) -> Result<i32> {
    i32::try_from(n).map_err(|_| CgroupError::Invalid {
        field: "linux.resources.devices".into(),
        reason: format!("device number {n} is out of range"),
    })
}

/// Compiles `rules` (in config order) to the device program.
pub fn program(rules: &[DeviceRule]) -> Result<Vec<Insn>> {
    let mut a = Asm {
        insns: Vec::new(),
        labels: Vec::new(),
        fixups: Vec::new(),
    };
    a.emit(Insn::new(LDX_MEM_W, 2, 1, 0, 0));
    a.emit(Insn::new(ALU32_AND_K, 2, 0, 0, 0xffff));
    a.emit(Insn::new(LDX_MEM_W, 3, 1, 0, 0));
    a.emit(Insn::new(ALU32_RSH_K, 3, 0, 0, 16));
    a.emit(Insn::new(LDX_MEM_W, 4, 1, 4, 0));
    a.emit(Insn::new(LDX_MEM_W, 5, 1, 8, 0));
    let deny = a.label();
    let mut deny_used = false;
    for bit in [access::MKNOD, access::READ, access::WRITE] {
        let next_bit = a.label();
        a.emit(Insn::new(ALU32_MOV_X, 6, 3, 0, 0));
        a.emit(Insn::new(ALU32_AND_K, 6, 0, 0, i32::from(bit)));
        a.jump(JMP_JEQ_K, 6, 0, next_bit);
        for r in rules.iter().rev().filter(|r| r.access & bit != 0) {
            let next_rule = a.label();
            let mut conditional = false;
            match r.kind {
                DeviceKind::All => {}
                DeviceKind::Block => {
                    a.jump(JMP_JNE_K, 2, DEV_BLOCK, next_rule);
                    conditional = true;
                }
                DeviceKind::Char => {
                    a.jump(JMP_JNE_K, 2, DEV_CHAR, next_rule);
                    conditional = true;
                }
            }
            if let Some(m) = r.major {
                a.jump(JMP_JNE_K, 4, imm(m)?, next_rule);
                conditional = true;
            }
            if let Some(m) = r.minor {
                a.jump(JMP_JNE_K, 5, imm(m)?, next_rule);
                conditional = true;
            }
            if r.allow {
                a.jump(JMP_JA, 0, 0, next_bit);
            } else {
                a.jump(JMP_JA, 0, 0, deny);
                deny_used = true;
            }
            a.bind(next_rule);
            if !conditional {
                // Matches every device: the rules before it can never decide this bit, and
                // emitting them would leave unreachable code the verifier refuses.
                break;
            }
        }
        a.bind(next_bit);
    }
    a.emit(Insn::new(ALU32_MOV_K, 0, 0, 0, 1));
    a.emit(Insn::new(JMP_EXIT, 0, 0, 0, 0));
    if deny_used {
        a.bind(deny);
        a.emit(Insn::new(ALU32_MOV_K, 0, 0, 0, 0));
        a.emit(Insn::new(JMP_EXIT, 0, 0, 0, 0));
    }
    a.finish()
}

/// Loads the program for `rules` and attaches it to the v2 cgroup `dir`, detaching the device
/// programs that were attached there before.
pub fn apply(rules: &[DeviceRule], dir: &Path) -> Result<()> {
    let insns = program(rules)?;
    let err = |step: &'static str, e: Box<dyn std::error::Error + Send + Sync>| CgroupError::Bpf {
        step,
        path: dir.to_path_buf(),
        source: e,
    };
    let prog =
        bpf::prog_load_cgroup_device(&insns, c"Apache-2.0").map_err(|e| err("load", e.into()))?;
    let dirfd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
        .map_err(|e| err("open cgroup directory", e.into()))?;
    let old = bpf::prog_query_cgroup_device(dirfd.as_fd()).map_err(|e| err("query", e.into()))?;
    bpf::prog_attach_cgroup_device(dirfd.as_fd(), prog.as_fd(), bpf::F_ALLOW_MULTI)
        .map_err(|e| err("attach", e.into()))?;
    for id in old {
        let old_fd = match bpf::prog_get_fd_by_id(id) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => return Err(err("get old program", e.into())),
        };
        match bpf::prog_detach_cgroup_device(dirfd.as_fd(), old_fd.as_fd()) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(err("detach old program", e.into())),
        }
    }
    Ok(())
}

/// Number of device programs attached directly to `dir`.
pub fn attached_count(dir: &Path) -> Result<usize> {
    let f = std::fs::File::open(dir).map_err(|source| CgroupError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    bpf::prog_query_cgroup_device(f.as_fd())
        .map(|v| v.len())
        .map_err(|e| CgroupError::Bpf {
            step: "query",
            path: dir.to_path_buf(),
            source: e.into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::DEFAULT_RULES;

    /// Runs the program the way the kernel would for one request (just the opcodes we emit).
    fn run(prog: &[Insn], typ: u32, acc: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(acc << 16) | typ, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps < 10_000, "program loops");
            let i = prog[pc];
            let (d, s) = (i.dst() as usize, i.src() as usize);
            let k = i.imm as i64 as u64;
            let jump = |cond: bool, pc: usize| {
                if cond {
                    (pc as i64 + 1 + i64::from(i.off)) as usize
                } else {
                    pc + 1
                }
            };
            pc = match i.code {
                LDX_MEM_W => {
                    assert_eq!(s, 1, "loads only from the context");
                    r[d] = u64::from(ctx[i.off as usize / 4]);
                    pc + 1
                }
                ALU32_AND_K => {
                    r[d] = (r[d] as u32 & i.imm as u32) as u64;
                    pc + 1
                }
                ALU32_RSH_K => {
                    r[d] = ((r[d] as u32) >> i.imm) as u64;
                    pc + 1
                }
                ALU32_MOV_X => {
                    r[d] = r[s] as u32 as u64;
                    pc + 1
                }
                ALU32_MOV_K => {
                    r[d] = i.imm as u32 as u64;
                    pc + 1
                }
                JMP_JA => jump(true, pc),
                JMP_JEQ_K => jump(r[d] == k, pc),
                JMP_JNE_K => jump(r[d] != k, pc),
                JMP_EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            };
        }
    }

    /// Every instruction is reachable (the verifier refuses dead code).
    fn assert_all_reachable(prog: &[Insn]) {
        let mut seen = vec![false; prog.len()];
        let mut todo = vec![0usize];
        while let Some(pc) = todo.pop() {
            if pc >= prog.len() || seen[pc] {
                continue;
            }
            seen[pc] = true;
            let i = prog[pc];
            let target = (pc as i64 + 1 + i64::from(i.off)) as usize;
            match i.code {
                JMP_EXIT => {}
                JMP_JA => todo.push(target),
                JMP_JEQ_K | JMP_JNE_K => {
                    todo.push(pc + 1);
                    todo.push(target);
                }
                _ => todo.push(pc + 1),
            }
        }
        assert!(
            seen.iter().all(|&s| s),
            "unreachable instructions in {prog:?}"
        );
    }

    const C: u32 = 2;
    const B: u32 = 1;
    const R: u32 = access::READ as u32;
    const W: u32 = access::WRITE as u32;
    const M: u32 = access::MKNOD as u32;

    fn rule(
        allow: bool,
        kind: DeviceKind,
        major: Option<u32>,
        minor: Option<u32>,
        access: u8,
    ) -> DeviceRule {
        DeviceRule {
            allow,
            kind,
            major,
            minor,
            access,
        }
    }

    #[test]
    fn exact_instructions_for_one_rule() {
        let p = program(&[rule(
            false,
            DeviceKind::Char,
            Some(1),
            Some(3),
            access::WRITE,
        )])
        .unwrap();
        let expect = [
            Insn::new(LDX_MEM_W, 2, 1, 0, 0),
            Insn::new(ALU32_AND_K, 2, 0, 0, 0xffff),
            Insn::new(LDX_MEM_W, 3, 1, 0, 0),
            Insn::new(ALU32_RSH_K, 3, 0, 0, 16),
            Insn::new(LDX_MEM_W, 4, 1, 4, 0),
            Insn::new(LDX_MEM_W, 5, 1, 8, 0),
            // mknod: no rule names it
            Insn::new(ALU32_MOV_X, 6, 3, 0, 0),
            Insn::new(ALU32_AND_K, 6, 0, 0, 1),
            Insn::new(JMP_JEQ_K, 6, 0, 0, 0),
            // read: no rule names it
            Insn::new(ALU32_MOV_X, 6, 3, 0, 0),
            Insn::new(ALU32_AND_K, 6, 0, 0, 2),
            Insn::new(JMP_JEQ_K, 6, 0, 0, 0),
            // write: c 1:3 → deny
            Insn::new(ALU32_MOV_X, 6, 3, 0, 0),
            Insn::new(ALU32_AND_K, 6, 0, 0, 4),
            Insn::new(JMP_JEQ_K, 6, 0, 4, 0),
            Insn::new(JMP_JNE_K, 2, 0, 3, 2),
            Insn::new(JMP_JNE_K, 4, 0, 2, 1),
            Insn::new(JMP_JNE_K, 5, 0, 1, 3),
            Insn::new(JMP_JA, 0, 0, 2, 0),
            Insn::new(ALU32_MOV_K, 0, 0, 0, 1),
            Insn::new(JMP_EXIT, 0, 0, 0, 0),
            Insn::new(ALU32_MOV_K, 0, 0, 0, 0),
            Insn::new(JMP_EXIT, 0, 0, 0, 0),
        ];
        assert_eq!(p, expect);
        assert_all_reachable(&p);
    }

    #[test]
    fn deny_all_then_allow_list_with_defaults() {
        let mut rules = vec![
            rule(false, DeviceKind::All, None, None, access::ALL),
            rule(true, DeviceKind::Char, Some(10), Some(229), access::ALL),
            rule(
                true,
                DeviceKind::Block,
                Some(8),
                Some(20),
                access::READ | access::WRITE,
            ),
            rule(true, DeviceKind::Block, Some(10), Some(200), access::READ),
        ];
        rules.extend_from_slice(&DEFAULT_RULES);
        let p = program(&rules).unwrap();
        assert_all_reachable(&p);
        assert_eq!(run(&p, C, R | W, 10, 229), 1);
        assert_eq!(run(&p, B, R | W, 8, 20), 1);
        assert_eq!(run(&p, B, R, 10, 200), 1);
        assert_eq!(run(&p, B, R | W, 10, 200), 0, "write not granted");
        assert_eq!(run(&p, C, R | W, 1, 3), 1, "/dev/null by default");
        assert_eq!(run(&p, C, R | W, 136, 7), 1, "any pts");
        assert_eq!(run(&p, C, M, 99, 99), 1, "mknod of anything");
        assert_eq!(run(&p, B, M, 99, 99), 1);
        assert_eq!(run(&p, C, R, 1, 11), 0, "kmsg denied");
        assert_eq!(run(&p, B, R, 8, 0), 0, "disk denied");
    }

    #[test]
    fn later_rules_override_earlier_ones() {
        let p = program(&[
            rule(true, DeviceKind::All, None, None, access::ALL),
            rule(false, DeviceKind::Char, Some(1), None, access::WRITE),
            rule(true, DeviceKind::Char, Some(1), Some(5), access::WRITE),
        ])
        .unwrap();
        assert_all_reachable(&p);
        assert_eq!(run(&p, C, R, 1, 3), 1);
        assert_eq!(run(&p, C, W, 1, 3), 0);
        assert_eq!(
            run(&p, C, R | W, 1, 3),
            0,
            "every asked bit must be allowed"
        );
        assert_eq!(run(&p, C, W, 1, 5), 1, "the later allow wins");
        assert_eq!(run(&p, B, W, 1, 3), 1);
        // Reversed order: the deny comes last and wins.
        let p = program(&[
            rule(true, DeviceKind::Char, Some(1), Some(5), access::WRITE),
            rule(false, DeviceKind::Char, Some(1), None, access::WRITE),
        ])
        .unwrap();
        assert_eq!(run(&p, C, W, 1, 5), 0);
    }

    #[test]
    fn an_empty_config_allows_only_the_defaults() {
        let p = program(&crate::devices::effective_rules(&[]).unwrap()).unwrap();
        assert_all_reachable(&p);
        assert_eq!(run(&p, C, R | W, 1, 3), 1);
        assert_eq!(run(&p, C, R, 1, 11), 0);
        assert_eq!(run(&p, B, R, 254, 0), 0);
        assert_eq!(run(&p, B, M, 254, 0), 1);
    }

    #[test]
    fn no_rules_allows_everything_and_a_catch_all_deny_stops_the_scan() {
        let p = program(&[]).unwrap();
        assert_all_reachable(&p);
        assert_eq!(run(&p, C, R | W | M, 1, 1), 1);
        let p = program(&[
            rule(true, DeviceKind::Char, Some(1), Some(3), access::ALL),
            rule(false, DeviceKind::All, None, None, access::ALL),
        ])
        .unwrap();
        assert_all_reachable(&p);
        assert_eq!(run(&p, C, R, 1, 3), 0);
    }
}
