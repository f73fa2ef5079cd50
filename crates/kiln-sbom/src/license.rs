//! Cargo `license` fields as SPDX expressions.
//!
//! Cargo accepts the legacy `MIT/Apache-2.0` form; SPDX spells it `MIT OR Apache-2.0`. An
//! expression that still does not parse strictly against the SPDX license list is not
//! guessed at: SPDX gets `NOASSERTION`, CycloneDX gets the text as a license *name*.

/// The outcome of reading a manifest's `license` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum License {
    /// A valid SPDX expression (normalized).
    Spdx(String),
    /// Free text that is not a valid SPDX expression.
    Other(String),
}

/// Normalizes `/` to ` OR ` and checks the result strictly against the SPDX license list.
pub fn parse(field: &str) -> License {
    let normalized = field
        .split('/')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" OR ");
    let normalized = normalized.split_whitespace().collect::<Vec<_>>().join(" ");
    match spdx::Expression::parse_mode(&normalized, spdx::ParseMode::STRICT) {
        Ok(_) => License::Spdx(normalized),
        Err(_) => License::Other(field.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_slash_and_invalid() {
        assert_eq!(
            parse("MIT/Apache-2.0"),
            License::Spdx("MIT OR Apache-2.0".into())
        );
        assert_eq!(
            parse("Unlicense OR MIT"),
            License::Spdx("Unlicense OR MIT".into())
        );
        assert_eq!(
            parse("(MIT OR Apache-2.0) AND Unicode-3.0"),
            License::Spdx("(MIT OR Apache-2.0) AND Unicode-3.0".into())
        );
        assert_eq!(
            parse("Apache-2.0 WITH LLVM-exception"),
            License::Spdx("Apache-2.0 WITH LLVM-exception".into())
        );
        assert_eq!(
            parse("my own license"),
            License::Other("my own license".into())
        );
    }
}
