//! API versions (`1.41`, `1.47`): parsing, ordering, the range berthd speaks, and the version
//! prefix of a request path (`/v1.43/volumes` or unversioned `/volumes`).

use std::fmt;
use std::str::FromStr;

/// A Docker Engine API version, `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    pub major: u16,
    pub minor: u16,
}

impl ApiVersion {
    pub const fn new(major: u16, minor: u16) -> Self {
        Self { major, minor }
    }
}

/// Oldest API version berthd accepts (Docker 20.10).
pub const MIN_API_VERSION: ApiVersion = ApiVersion::new(1, 41);
/// Newest API version berthd speaks (Docker 27.x); also what unversioned requests get.
pub const MAX_API_VERSION: ApiVersion = ApiVersion::new(1, 47);

/// Why a version string or a versioned request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("invalid API version {0:?}: expected MAJOR.MINOR")]
    Malformed(String),
    #[error("client version {0} is too old. Minimum supported API version is {min}, please upgrade your client to a newer version", min = MIN_API_VERSION)]
    TooOld(ApiVersion),
    #[error("client version {0} is too new. Maximum supported API version is {max}", max = MAX_API_VERSION)]
    TooNew(ApiVersion),
}

impl FromStr for ApiVersion {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || VersionError::Malformed(s.to_string());
        let (major, minor) = s.split_once('.').ok_or_else(bad)?;
        let num = |p: &str| -> Result<u16, VersionError> {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse().map_err(|_| bad())
        };
        Ok(Self::new(num(major)?, num(minor)?))
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A request path split into the API version it asked for and the route after the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedPath<'a> {
    /// The version the request is served with: the one in the path, or [`MAX_API_VERSION`].
    pub version: ApiVersion,
    /// Whether the path carried a `/vX.Y` prefix.
    pub explicit: bool,
    /// The route, starting with `/`.
    pub route: &'a str,
}

/// Split `/v1.43/volumes/x` into version 1.43 and `/volumes/x`; an unversioned path is served at
/// [`MAX_API_VERSION`]. A prefix that isn't a version (`/vfoo/...`) is not a version prefix at all
/// (Docker answers 404 for it), so `Ok(None)` is returned; a version outside the range is an error.
pub fn split_path(path: &str) -> Result<Option<VersionedPath<'_>>, VersionError> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok(Some(VersionedPath {
            version: MAX_API_VERSION,
            explicit: false,
            route: path,
        }));
    };
    let (ver, route) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if ver.is_empty() || !ver.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // `/version`, `/volumes`: not a prefix, an ordinary route.
        return Ok(Some(VersionedPath {
            version: MAX_API_VERSION,
            explicit: false,
            route: path,
        }));
    }
    let Ok(version) = ver.parse::<ApiVersion>() else {
        return Ok(None);
    };
    check_supported(version)?;
    Ok(Some(VersionedPath {
        version,
        explicit: true,
        route,
    }))
}

/// Refuse versions outside [`MIN_API_VERSION`]..=[`MAX_API_VERSION`] with Docker's messages.
pub fn check_supported(version: ApiVersion) -> Result<(), VersionError> {
    if version < MIN_API_VERSION {
        Err(VersionError::TooOld(version))
    } else if version > MAX_API_VERSION {
        Err(VersionError::TooNew(version))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        let a: ApiVersion = "1.41".parse().unwrap();
        let b: ApiVersion = "1.9".parse().unwrap();
        assert!(b < a, "1.9 < 1.41 numerically, not lexically");
        assert_eq!(a.to_string(), "1.41");
        assert!("1".parse::<ApiVersion>().is_err());
        assert!("1.x".parse::<ApiVersion>().is_err());
        assert!("1.4.1".parse::<ApiVersion>().is_err());
        assert!(".4".parse::<ApiVersion>().is_err());
    }

    #[test]
    fn splits_versioned_and_plain_paths() {
        let p = split_path("/v1.43/volumes/x").unwrap().unwrap();
        assert_eq!(
            (p.version, p.explicit, p.route),
            (ApiVersion::new(1, 43), true, "/volumes/x")
        );
        let p = split_path("/volumes").unwrap().unwrap();
        assert_eq!(
            (p.version, p.explicit, p.route),
            (MAX_API_VERSION, false, "/volumes")
        );
        let p = split_path("/version").unwrap().unwrap();
        assert_eq!(p.route, "/version");
        let p = split_path("/v1.41").unwrap().unwrap();
        assert_eq!(p.route, "/");
        assert_eq!(split_path("/v1..2/_ping").unwrap(), None);
    }

    #[test]
    fn refuses_out_of_range_with_dockers_words() {
        let err = split_path("/v1.12/_ping").unwrap_err();
        assert_eq!(
            err.to_string(),
            "client version 1.12 is too old. Minimum supported API version is 1.41, please upgrade your client to a newer version"
        );
        let err = split_path("/v1.99/info").unwrap_err();
        assert_eq!(
            err.to_string(),
            "client version 1.99 is too new. Maximum supported API version is 1.47"
        );
        assert!(split_path("/v1.41/info").is_ok());
        assert!(split_path("/v1.47/info").is_ok());
    }
}
