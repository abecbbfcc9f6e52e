//! `spec`: writes the same default config.json as `runc spec` (or `runc spec --rootless`).

use std::path::Path;

use crate::error::Error;

const DEFAULT: &str = include_str!("spec_default.json");
const ROOTLESS: &str = include_str!("spec_rootless.json");

/// The template text.
pub fn template(rootless: bool) -> &'static str {
    if rootless {
        ROOTLESS
    } else {
        DEFAULT
    }
}

/// Writes `<bundle>/config.json`; refuses to overwrite one.
pub fn write_spec(bundle: &Path, rootless: bool) -> Result<(), Error> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(Error::Usage(
            "File config.json exists. Remove it first".into(),
        ));
    }
    let mut text = template(rootless).to_owned();
    if rootless {
        // runc maps container root to the caller: uidMappings first, then gidMappings.
        text = text.replacen(
            "\"hostID\": 0,",
            &format!("\"hostID\": {},", nix::unistd::geteuid()),
            1,
        );
        let at = text.find("gidMappings").unwrap_or(0);
        let (head, tail) = text.split_at(at);
        text = format!(
            "{head}{}",
            tail.replacen(
                "\"hostID\": 0,",
                &format!("\"hostID\": {},", nix::unistd::getegid()),
                1
            )
        );
    }
    std::fs::write(&path, text).map_err(Error::io("write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_as_specs() {
        for r in [false, true] {
            let s: oci_spec::runtime::Spec =
                serde_json::from_str(template(r)).expect("spec parses");
            assert!(s.process().is_some());
        }
    }
}
