//! `reproducibility/variations.toml`: what the second build changes.
//!
//! Each variation is one thing a careless build leaks into its output (after reprotest and
//! the Debian and NixOS rebuilders). Every table has `enabled`; a missing table keeps its
//! default (enabled), so adding a variation to kiln never silently weakens an old file.
//! Unknown keys are errors: a typo must not switch a check off.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// All variations, with their parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Variations {
    pub build_path: Toggle,
    pub tz: Valued,
    pub locale: Valued,
    pub umask: Valued,
    pub user: User,
    pub hostname: Valued,
    pub cpus: Cpus,
    pub env: EnvVar,
    pub path: PathEntry,
    pub file_order: FileOrder,
    pub clock: Clock,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Toggle {
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Valued {
    pub enabled: bool,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub enabled: bool,
    /// USER and LOGNAME of the second build (HOME becomes a fresh directory).
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Cpus {
    pub enabled: bool,
    /// A `taskset -c` CPU list; affinity is inherited by every process of the build.
    pub list: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    pub enabled: bool,
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PathEntry {
    pub enabled: bool,
    /// Prepended to PATH for the second build.
    pub entry: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileOrder {
    pub enabled: bool,
    /// Use disorderfs (shuffled directory entries) when it is installed and FUSE works;
    /// otherwise (or when false) the source is copied in a shuffled order.
    pub disorderfs: bool,
    /// Seed of the shuffled copy, so a failing order can be replayed.
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Clock {
    pub enabled: bool,
    /// A faketime offset or date (`faketime OFFSET kiln ...`).
    pub offset: String,
}

impl Default for Variations {
    fn default() -> Self {
        Variations {
            build_path: Toggle { enabled: true },
            tz: Valued {
                enabled: true,
                value: "Pacific/Kiritimati".into(),
            },
            locale: Valued {
                enabled: true,
                value: "fr_FR.UTF-8".into(),
            },
            umask: Valued {
                enabled: true,
                value: "0077".into(),
            },
            user: User {
                enabled: true,
                name: "kiln-repro-user".into(),
            },
            hostname: Valued {
                enabled: true,
                value: "kiln-repro-host".into(),
            },
            cpus: Cpus {
                enabled: true,
                list: "0".into(),
            },
            env: EnvVar {
                enabled: true,
                name: "KILN_REPRO_EXTRA".into(),
                value: "kiln-repro-extra-value".into(),
            },
            path: PathEntry {
                enabled: true,
                entry: "/opt/kiln-repro/bin".into(),
            },
            file_order: FileOrder {
                enabled: true,
                disorderfs: true,
                seed: 0x6b696c6e,
            },
            clock: Clock {
                enabled: true,
                offset: "+3 years".into(),
            },
        }
    }
}

impl Default for Toggle {
    fn default() -> Self {
        Variations::default().build_path
    }
}

macro_rules! default_from {
    ($($ty:ty => $field:ident),*) => {$(
        impl Default for $ty {
            fn default() -> Self { Variations::default().$field }
        }
    )*};
}
default_from!(User => user, Cpus => cpus, EnvVar => env, PathEntry => path, FileOrder => file_order, Clock => clock);

/// `Valued` is shared by several tables, so a missing `value` cannot have one default;
/// tables of this shape must give both keys.
impl Default for Valued {
    fn default() -> Self {
        Valued {
            enabled: true,
            value: String::new(),
        }
    }
}

impl Variations {
    /// Reads and validates a variations file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(crate::error::io("cannot read", path))?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let v: Variations =
            kiln_core::strict_toml::from_str(text).map_err(|e| Error::Variations {
                path: path.to_path_buf(),
                message: e.into_message(),
            })?;
        let bad = |message: String| {
            Err(Error::Variations {
                path: path.to_path_buf(),
                message,
            })
        };
        for (name, t) in [
            ("tz", &v.tz),
            ("locale", &v.locale),
            ("umask", &v.umask),
            ("hostname", &v.hostname),
        ] {
            if t.enabled && t.value.is_empty() {
                return bad(format!("[{name}] is enabled but has no `value`"));
            }
        }
        if v.umask.enabled
            && (v.umask.value.len() > 4 || u32::from_str_radix(&v.umask.value, 8).is_err())
        {
            return bad(format!(
                "[umask] value `{}` is not an octal umask such as \"0077\"",
                v.umask.value
            ));
        }
        if v.env.enabled && (v.env.name.is_empty() || v.env.name.contains('=')) {
            return bad(format!(
                "[env] name `{}` is not an environment variable name",
                v.env.name
            ));
        }
        if v.hostname.enabled
            && !v
                .hostname
                .value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return bad(format!(
                "[hostname] value `{}` is not a host name",
                v.hostname.value
            ));
        }
        Ok(v)
    }
}

/// What happened to one variation in a run: it may be switched off, applied, or applied in
/// a weaker form because a tool was missing (said so in `detail`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct VariationRecord {
    pub name: String,
    /// `applied`, `disabled`, `fallback` (applied another way) or `unavailable`.
    pub status: String,
    pub detail: String,
}

impl VariationRecord {
    pub fn new(name: &str, status: &str, detail: impl Into<String>) -> Self {
        VariationRecord {
            name: name.into(),
            status: status.into(),
            detail: detail.into(),
        }
    }
    pub fn applied(&self) -> bool {
        self.status == "applied" || self.status == "fallback"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_file_is_the_default() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../reproducibility/variations.toml");
        assert_eq!(Variations::load(&p).unwrap(), Variations::default());
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let e = Variations::parse(
            Path::new("v.toml"),
            "[tz]\nenabled = true\nvalue = \"UTC\"\ncolour = 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("v.toml") && e.contains("colour"), "{e}");
        let e = Variations::parse(Path::new("v.toml"), "[moon]\nenabled = true\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("moon"), "{e}");
    }

    #[test]
    fn switch_off_and_validate() {
        let v = Variations::parse(
            Path::new("v.toml"),
            "[clock]\nenabled = false\noffset = \"\"\n",
        )
        .unwrap();
        assert!(!v.clock.enabled);
        assert!(v.tz.enabled);
        let e = Variations::parse(
            Path::new("v.toml"),
            "[umask]\nenabled = true\nvalue = \"999\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("octal"), "{e}");
    }
}
