//! Platforms (`os/arch[/variant]`) and how they match index entries.
//!
//! Images list their platforms loosely (`arm64` with or without `v8`, `amd64` sometimes with
//! `v1`), so comparisons happen on a normalised form, following containerd's rules.

use std::fmt;

use super::error::{Error, ErrorKind, Result};

/// A platform an image is built for, e.g. `linux/arm64/v8`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU architecture in Go's naming, e.g. `amd64`, `arm64`, `arm`.
    pub architecture: String,
    /// CPU variant, e.g. `v7` for `arm`.
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os[/arch[/variant]]`. A missing architecture means the host's (what skopeo does
    /// with only `--override-os`); common aliases (`x86_64`, `aarch64`) are accepted.
    ///
    /// # Errors
    ///
    /// When a part is empty or holds other than letters, digits, `_`, `-` and `.`.
    pub fn parse(text: &str) -> Result<Platform> {
        let invalid = |why: &str| {
            Error::new(
                ErrorKind::Invalid,
                format!(
                    "invalid platform '{text}': {why} (expected os[/arch[/variant]], e.g. linux/arm64/v8)"
                ),
            )
        };
        let mut parts = text.splitn(3, '/');
        let os = parts.next().unwrap_or_default();
        let arch = parts.next();
        let variant = parts.next();
        let is_word = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        };
        if !is_word(os) {
            return Err(invalid("the os is missing or malformed"));
        }
        if arch.is_some_and(|a| !is_word(a)) {
            return Err(invalid("the architecture is empty or malformed"));
        }
        if variant.is_some_and(|v| !is_word(v)) {
            return Err(invalid("the variant is empty or malformed"));
        }
        let platform = match arch {
            Some(arch) => Platform {
                os: os.to_ascii_lowercase(),
                architecture: arch.to_ascii_lowercase(),
                variant: variant.map(str::to_ascii_lowercase),
            },
            None => Platform {
                os: os.to_ascii_lowercase(),
                ..Platform::host()
            },
        };
        Ok(platform.normalized())
    }

    /// The platform of the machine we run on, as container images name it. Images for macOS
    /// hosts do not exist, so any OS other than Windows means Linux images.
    pub fn host() -> Platform {
        let os = match std::env::consts::OS {
            "windows" => "windows",
            _ => "linux",
        };
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "powerpc64" => ("ppc64", None),
            "mips64" if cfg!(target_endian = "little") => ("mips64le", None),
            "loongarch64" => ("loong64", None),
            other => (other, None),
        };
        Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }

    /// The canonical spelling: architecture aliases resolved, default variants made explicit
    /// (`arm64` → `v8`, `arm` → `v7`), meaningless ones dropped (`amd64/v1`).
    pub fn normalized(&self) -> Platform {
        let (architecture, alias_variant) = match self.architecture.as_str() {
            "x86_64" | "x86-64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "i386" | "i686" => ("386", None),
            "armhf" => ("arm", Some("v7")),
            "armel" => ("arm", Some("v6")),
            other => (other, None),
        };
        let variant = self
            .variant
            .clone()
            .or_else(|| alias_variant.map(str::to_owned));
        let variant = match (architecture, variant.as_deref()) {
            ("arm64", None | Some("8")) => Some("v8".to_owned()),
            ("arm", None | Some("7")) => Some("v7".to_owned()),
            ("arm", Some("5")) => Some("v5".to_owned()),
            ("arm", Some("6")) => Some("v6".to_owned()),
            ("amd64", Some("v1")) => None,
            _ => variant,
        };
        Platform {
            os: self.os.clone(),
            architecture: architecture.to_owned(),
            variant,
        }
    }

    /// Whether an index entry for `other` serves this platform.
    pub fn matches(&self, other: &Platform) -> bool {
        self.normalized() == other.normalized()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Platform({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_normalise() {
        assert_eq!(
            Platform::parse("linux/arm64").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            Platform::parse("linux/amd64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/amd64/v1").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/arm").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::parse("linux/arm/v6").unwrap().to_string(),
            "linux/arm/v6"
        );
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("Linux/AMD64").unwrap().to_string(),
            "linux/amd64"
        );
        let os_only = Platform::parse("linux").unwrap();
        assert_eq!(os_only.architecture, Platform::host().architecture);
        for bad in ["", "/arm64", "linux/", "linux/arm/", "linux/a b"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching_uses_defaults() {
        let wanted = Platform::parse("linux/arm64/v8").unwrap();
        let entry = Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: None,
        };
        assert!(wanted.matches(&entry));
        let v7 = Platform::parse("linux/arm/v7").unwrap();
        assert!(!v7.matches(&Platform::parse("linux/arm/v6").unwrap()));
        assert!(!wanted.matches(&Platform::parse("windows/arm64").unwrap()));
    }

    #[test]
    fn host_is_known() {
        let host = Platform::host();
        assert!(!host.os.is_empty() && !host.architecture.is_empty());
    }
}
