//! The five capability sets of `process.capabilities`, applied with the `caps` crate.

use std::collections::HashSet;

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use super::{ProcessError, Warnings};

fn caps_err(what: impl Into<String>) -> impl FnOnce(caps::errors::CapsError) -> ProcessError {
    let what = what.into();
    move |source| ProcessError::Capabilities { what, source }
}

/// Maps the spec's names to the capabilities the running kernel knows. A name the kernel (or
/// the `caps` crate) doesn't know, e.g. `CAP_CHECKPOINT_RESTORE` before 5.9, is a warning and is
/// left out, as runc does.
fn known(
    set_name: &str,
    wanted: Option<&Capabilities>,
    supported: &CapsHashSet,
    warned: &mut HashSet<String>,
    warnings: &mut Warnings,
) -> CapsHashSet {
    let mut out = CapsHashSet::new();
    for cap in wanted.into_iter().flatten() {
        let name = format!("CAP_{cap}");
        match name.parse::<Capability>() {
            Ok(c) if supported.contains(&c) => {
                out.insert(c);
            }
            _ => {
                if warned.insert(name.clone()) {
                    warnings.push(format!(
                        "capability {name} ({set_name}) is not known to the running kernel, ignored"
                    ));
                }
            }
        }
    }
    out
}

/// Applies all five sets: bounding (everything not listed is dropped), then inheritable,
/// effective, permitted, and ambient last (each ambient capability must also be permitted and
/// inheritable: one that isn't is skipped with a warning, like runc).
///
/// Works after [`super::apply_user`] switched to a non-zero uid with keepcaps: it first raises
/// effective to the (kept) permitted set, for the `CAP_SETPCAP` that dropping the bounding set
/// needs. An absent set means an empty set.
pub fn apply_capabilities(spec: &LinuxCapabilities) -> Result<Warnings, ProcessError> {
    let mut warnings = Warnings::new();
    let mut warned = HashSet::new();
    let supported = caps::runtime::thread_all_supported();
    let mut get = |name: &str, set: &Option<Capabilities>| {
        known(name, set.as_ref(), &supported, &mut warned, &mut warnings)
    };
    let bounding = get("bounding", spec.bounding());
    let inheritable = get("inheritable", spec.inheritable());
    let effective = get("effective", spec.effective());
    let permitted = get("permitted", spec.permitted());
    let ambient = get("ambient", spec.ambient());

    let current_permitted =
        caps::read(None, CapSet::Permitted).map_err(caps_err("read permitted"))?;
    caps::set(None, CapSet::Effective, &current_permitted)
        .map_err(caps_err("raise effective to permitted"))?;

    let current_bounding = caps::read(None, CapSet::Bounding).map_err(caps_err("read bounding"))?;
    for cap in current_bounding.difference(&bounding) {
        caps::drop(None, CapSet::Bounding, *cap)
            .map_err(caps_err(format!("drop {cap} from bounding")))?;
    }
    // Capabilities of a kernel newer than the `caps` crate have no name here: drop them too.
    let highest_known = caps::all()
        .iter()
        .map(|c| u32::from(c.index()))
        .max()
        .unwrap_or(0);
    berth_sys::attr::drop_unnamed_bounding_caps(highest_known)
        .map_err(ProcessError::UnnamedBoundingCaps)?;
    caps::set(None, CapSet::Inheritable, &inheritable).map_err(caps_err("set inheritable"))?;
    if !effective.is_subset(&permitted) {
        let extra: Vec<String> = effective
            .difference(&permitted)
            .map(|c| c.to_string())
            .collect();
        warnings.push(format!(
            "effective capabilities {extra:?} are not permitted, not raised"
        ));
    }
    let effective: CapsHashSet = effective.intersection(&permitted).copied().collect();
    // Lower effective before permitted: effective must stay a subset of permitted at each step.
    caps::set(None, CapSet::Effective, &effective).map_err(caps_err("set effective"))?;
    caps::set(None, CapSet::Permitted, &permitted).map_err(caps_err("set permitted"))?;

    if caps::runtime::ambient_set_supported().is_ok() {
        caps::clear(None, CapSet::Ambient).map_err(caps_err("clear ambient"))?;
        for cap in &ambient {
            if !(permitted.contains(cap) && inheritable.contains(cap)) {
                warnings.push(format!(
                    "ambient capability {cap} is not both permitted and inheritable, not raised"
                ));
                continue;
            }
            caps::raise(None, CapSet::Ambient, *cap)
                .map_err(caps_err(format!("raise ambient {cap}")))?;
        }
    } else if !ambient.is_empty() {
        warnings.push("the kernel has no ambient capabilities, ambient set ignored".to_string());
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_capability_name_is_known_to_the_caps_crate() {
        // Serialize every oci-spec capability and parse it back as a caps::Capability.
        for c in caps::all() {
            let oci: oci_spec::runtime::Capability =
                serde_json::from_value(serde_json::json!(c.to_string())).expect("oci knows it");
            assert_eq!(
                format!("CAP_{oci}")
                    .parse::<Capability>()
                    .expect("caps knows it"),
                c
            );
        }
    }

    #[test]
    fn unsupported_names_warn_once() {
        let supported: CapsHashSet = [Capability::CAP_CHOWN].into_iter().collect();
        let wanted: Capabilities = [
            oci_spec::runtime::Capability::Chown,
            oci_spec::runtime::Capability::CheckpointRestore,
        ]
        .into_iter()
        .collect();
        let (mut warned, mut warnings) = (HashSet::new(), Warnings::new());
        let a = known(
            "bounding",
            Some(&wanted),
            &supported,
            &mut warned,
            &mut warnings,
        );
        let b = known(
            "effective",
            Some(&wanted),
            &supported,
            &mut warned,
            &mut warnings,
        );
        assert_eq!(a, supported);
        assert_eq!(b, supported);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("CAP_CHECKPOINT_RESTORE"));
    }
}
