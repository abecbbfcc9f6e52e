//! Scheduling-type attributes: the scheduler policy (`sched_setattr`), the I/O priority
//! (`ioprio_set`), the execution domain (`personality`) and CPU affinity.

use berth_sys::attr::{self, IoprioClass, SchedAttr};
use nix::sched::{sched_setaffinity, CpuSet};
use nix::sys::personality::{self, Persona};
use nix::unistd::Pid;
use oci_spec::runtime::{
    ExecCPUAffinity, IOPriorityClass, LinuxIOPriority, LinuxPersonality, LinuxPersonalityDomain,
    LinuxSchedulerFlag, LinuxSchedulerPolicy, Scheduler,
};

use super::ProcessError;

/// `PER_LINUX32` from linux/personality.h (nix's `Persona` has only the flag bits).
const PER_LINUX32: i32 = 0x0008;

/// Sets the I/O scheduling class and priority of the calling process.
pub fn set_io_priority(prio: &LinuxIOPriority) -> Result<(), ProcessError> {
    let (class, name) = match prio.class() {
        IOPriorityClass::IoprioClassRt => (IoprioClass::Realtime, "IOPRIO_CLASS_RT"),
        IOPriorityClass::IoprioClassBe => (IoprioClass::BestEffort, "IOPRIO_CLASS_BE"),
        IOPriorityClass::IoprioClassIdle => (IoprioClass::Idle, "IOPRIO_CLASS_IDLE"),
    };
    let priority = prio.priority();
    let level = u16::try_from(priority)
        .ok()
        .filter(|l| *l <= 7)
        .ok_or(ProcessError::IoPriorityRange(priority))?;
    attr::ioprio_set(class, level).map_err(|source| ProcessError::IoPriority {
        class: name.to_string(),
        priority,
        source,
    })
}

fn policy_number(policy: LinuxSchedulerPolicy) -> Result<u32, ProcessError> {
    Ok(match policy {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => {
            return Err(ProcessError::SchedulerInvalid(
                "policy SCHED_ISO is not implemented by Linux".to_string(),
            ))
        }
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    })
}

fn flag_bit(flag: LinuxSchedulerFlag) -> u64 {
    match flag {
        LinuxSchedulerFlag::SchedResetOnFork => 0x01,
        LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
        LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
        LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
        LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
        LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
        LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
    }
}

/// Translates the spec's `process.scheduler` into a `struct sched_attr`, checking what the
/// kernel would only answer EINVAL to.
pub(crate) fn sched_attr(s: &Scheduler) -> Result<SchedAttr, ProcessError> {
    let policy = policy_number(*s.policy())?;
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err(ProcessError::SchedulerInvalid(format!(
            "nice {nice} is outside -20..=19"
        )));
    }
    let priority = s.priority().unwrap_or(0);
    let realtime = matches!(policy, 1 | 2);
    if realtime && !(1..=99).contains(&priority) {
        return Err(ProcessError::SchedulerInvalid(format!(
            "priority {priority} is outside 1..=99 for {}",
            s.policy()
        )));
    }
    if !realtime && priority != 0 {
        return Err(ProcessError::SchedulerInvalid(format!(
            "priority {priority} must be 0 for {}",
            s.policy()
        )));
    }
    let (runtime, deadline, period) = (
        s.runtime().unwrap_or(0),
        s.deadline().unwrap_or(0),
        s.period().unwrap_or(0),
    );
    if policy == 6 {
        let period_or_deadline = if period == 0 { deadline } else { period };
        if runtime == 0 || runtime > deadline || deadline > period_or_deadline {
            return Err(ProcessError::SchedulerInvalid(format!(
                "SCHED_DEADLINE needs 0 < runtime ({runtime}) <= deadline ({deadline}) <= period ({period})"
            )));
        }
    }
    let flags = s
        .flags()
        .iter()
        .flatten()
        .fold(0, |acc, f| acc | flag_bit(*f));
    Ok(SchedAttr {
        sched_policy: policy,
        sched_flags: flags,
        sched_nice: nice,
        sched_priority: priority as u32,
        sched_runtime: runtime,
        sched_deadline: deadline,
        sched_period: period,
        ..SchedAttr::default()
    })
}

/// Sets the scheduling policy and its parameters (`sched_setattr`) for the calling thread; the
/// container process inherits them across execve.
pub fn set_scheduler(s: &Scheduler) -> Result<(), ProcessError> {
    let attr = sched_attr(s)?;
    attr::sched_setattr(&attr).map_err(|source| ProcessError::Scheduler {
        policy: s.policy().to_string(),
        source,
    })
}

/// Sets the execution domain: `LINUX` or `LINUX32` (what `uname -m` reports to 32-bit code).
pub fn set_personality(p: &LinuxPersonality) -> Result<(), ProcessError> {
    if let Some(flag) = p.flags().iter().flatten().next() {
        return Err(ProcessError::PersonalityFlag(flag.clone()));
    }
    let persona = match p.domain() {
        LinuxPersonalityDomain::PerLinux => Persona::empty(),
        LinuxPersonalityDomain::PerLinux32 => Persona::from_bits_retain(PER_LINUX32),
    };
    personality::set(persona)
        .map(|_| ())
        .map_err(|source| ProcessError::Personality {
            domain: p.domain().to_string(),
            source,
        })
}

/// Parses a Linux CPU list (`0-3,7`) into a `CpuSet`.
pub fn parse_cpu_list(list: &str) -> Result<CpuSet, ProcessError> {
    let bad = |reason: String| ProcessError::CpuList {
        list: list.to_string(),
        reason,
    };
    let mut set = CpuSet::new();
    if list.trim().is_empty() {
        return Err(bad("empty".to_string()));
    }
    for part in list.trim().split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo, hi),
            None => (part, part),
        };
        let parse = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| bad(format!("{part:?} is not a cpu number or range")))
        };
        let (lo, hi) = (parse(lo)?, parse(hi)?);
        if lo > hi {
            return Err(bad(format!("range {part:?} is reversed")));
        }
        for cpu in lo..=hi {
            set.set(cpu)
                .map_err(|_| bad(format!("cpu {cpu} is beyond {}", CpuSet::count())))?;
        }
    }
    Ok(set)
}

/// Pins the calling process to the CPUs of `list` (`0-3,7`).
pub fn set_cpu_affinity(list: &str) -> Result<(), ProcessError> {
    let set = parse_cpu_list(list)?;
    sched_setaffinity(Pid::from_raw(0), &set).map_err(|source| ProcessError::CpuAffinity {
        list: list.to_string(),
        source,
    })
}

/// When `execCPUAffinity` applies: `Initial` before the exec'd process joins the container's
/// cgroup (in the runtime's child), `Final` after it joined (right before execve).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AffinityStage {
    Initial,
    Final,
}

/// Applies `process.execCPUAffinity` for `stage` (only for `exec`, not for the init process).
/// An absent or empty list leaves the affinity to the kernel, as the spec says.
pub fn set_exec_cpu_affinity(
    aff: &ExecCPUAffinity,
    stage: AffinityStage,
) -> Result<(), ProcessError> {
    let list = match stage {
        AffinityStage::Initial => aff.initial(),
        AffinityStage::Final => aff.cpu_affinity_final(),
    };
    match list.as_deref().map(str::trim) {
        Some(list) if !list.is_empty() => set_cpu_affinity(list),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::SchedulerBuilder;

    #[test]
    fn cpu_list_ranges_and_singles() {
        let set = parse_cpu_list("0-2,5").expect("parse");
        for cpu in [0, 1, 2, 5] {
            assert!(set.is_set(cpu).expect("in range"), "cpu {cpu}");
        }
        assert!(!set.is_set(3).expect("in range"));
    }

    #[test]
    fn cpu_list_errors_name_the_list() {
        let err = parse_cpu_list("3-1").unwrap_err().to_string();
        assert_eq!(err, "cpu list \"3-1\": range \"3-1\" is reversed");
        assert!(parse_cpu_list("a").is_err());
        assert!(parse_cpu_list("").is_err());
        assert!(parse_cpu_list("0,99999").is_err());
    }

    #[test]
    fn deadline_parameters_are_checked() {
        let s = SchedulerBuilder::default()
            .policy(LinuxSchedulerPolicy::SchedDeadline)
            .runtime(20u64)
            .deadline(10u64)
            .period(30u64)
            .build()
            .expect("scheduler");
        assert!(matches!(
            sched_attr(&s),
            Err(ProcessError::SchedulerInvalid(_))
        ));
    }

    #[test]
    fn fifo_needs_a_priority_and_flags_are_or_ed() {
        let s = SchedulerBuilder::default()
            .policy(LinuxSchedulerPolicy::SchedFifo)
            .build()
            .expect("scheduler");
        assert!(sched_attr(&s).is_err());
        let s = SchedulerBuilder::default()
            .policy(LinuxSchedulerPolicy::SchedRr)
            .priority(10)
            .flags(vec![
                LinuxSchedulerFlag::SchedResetOnFork,
                LinuxSchedulerFlag::SchedFlagReclaim,
            ])
            .build()
            .expect("scheduler");
        let attr = sched_attr(&s).expect("valid");
        assert_eq!(
            (attr.sched_policy, attr.sched_priority, attr.sched_flags),
            (2, 10, 3)
        );
    }

    #[test]
    fn sched_iso_is_refused_with_its_name() {
        let s = SchedulerBuilder::default()
            .policy(LinuxSchedulerPolicy::SchedIso)
            .build()
            .expect("scheduler");
        assert!(sched_attr(&s)
            .unwrap_err()
            .to_string()
            .contains("SCHED_ISO"));
    }

    /// Runs `f` on a throw-away thread: affinity, ioprio and scheduling attributes set with
    /// "self" apply to the calling thread only.
    fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(f).join().expect("thread")
    }

    #[test]
    fn exec_cpu_affinity_final_pins_the_thread() {
        let allowed = on_thread(|| {
            let aff: ExecCPUAffinity =
                serde_json::from_value(serde_json::json!({"initial": "0-1", "final": "0"}))
                    .expect("affinity");
            set_exec_cpu_affinity(&aff, AffinityStage::Final).expect("final");
            std::fs::read_to_string("/proc/thread-self/status")
                .expect("status")
                .lines()
                .find_map(|l| {
                    l.strip_prefix("Cpus_allowed_list:")
                        .map(|v| v.trim().to_string())
                })
                .expect("Cpus_allowed_list")
        });
        assert_eq!(allowed, "0");
    }

    #[test]
    fn io_priority_class_and_level_reach_the_kernel() {
        let got = on_thread(|| {
            let prio: LinuxIOPriority = serde_json::from_value(
                serde_json::json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0}),
            )
            .expect("prio");
            set_io_priority(&prio).expect("ioprio idle");
            attr::ioprio_get().expect("ioprio_get")
        });
        assert_eq!(got, attr::ioprio_value(IoprioClass::Idle, 0));
        let bad: LinuxIOPriority =
            serde_json::from_value(serde_json::json!({"class": "IOPRIO_CLASS_BE", "priority": 8}))
                .expect("prio");
        assert!(matches!(
            set_io_priority(&bad),
            Err(ProcessError::IoPriorityRange(8))
        ));
    }

    #[test]
    fn scheduler_idle_reaches_the_kernel() {
        let policy = on_thread(|| {
            let s = SchedulerBuilder::default()
                .policy(LinuxSchedulerPolicy::SchedIdle)
                .build()
                .expect("scheduler");
            set_scheduler(&s).expect("SCHED_IDLE");
            attr::sched_getattr().expect("sched_getattr").sched_policy
        });
        assert_eq!(policy, 5);
    }
}
