//! Strict TOML for every file a user writes (`kiln.toml`, signing policies, VEX statements,
//! reproducibility variations): one parser, one error shape.
//!
//! Errors start with `line L, column C:`, name the key they belong to (key
//! `image[0].binaries`, via serde_path_to_error — toml's own message only shows the
//! offending value) and quote the source line, so a user can fix the file without guessing.
//! Callers put the file name in front.

use serde::de::DeserializeOwned;

/// Why a file is not the TOML its type expects: where (line, column, the quoted source
/// line), which key, and toml's message. The message is the whole report (a caller puts
/// the file name in front); there is no further source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TomlError(String);

impl TomlError {
    /// The report as text, for callers whose own error holds a message.
    pub fn into_message(self) -> String {
        self.0
    }
}

/// Parses `text` into `T`. Unknown keys are rejected by `T`'s `deny_unknown_fields`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, TomlError> {
    let de = toml::de::Deserializer::parse(text).map_err(|e| describe(text, &e, ""))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        describe(text, e.inner(), &key)
    })
}

/// The 1-based line of byte `offset` in `text` (clamped to the end): where a TOML error's
/// span starts, for messages that name `file:line`.
pub fn line_at(text: &str, offset: usize) -> usize {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    before.matches('\n').count() + 1
}

fn describe(text: &str, e: &toml::de::Error, key: &str) -> TomlError {
    let message = e.message().trim_end();
    let msg = if key.is_empty() || key == "." {
        message.to_string()
    } else {
        format!("key `{key}`: {message}")
    };
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start.min(text.len())).unwrap_or(text);
            let line = line_at(text, span.start);
            let col = before
                .rsplit('\n')
                .next()
                .map(|l| l.chars().count() + 1)
                .unwrap_or(1);
            let src_line = text.lines().nth(line - 1).unwrap_or("").trim_end();
            TomlError(format!("line {line}, column {col}: {msg}\n  | {src_line}"))
        }
        None => TomlError(msg),
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        name: String,
        #[serde(default)]
        items: Vec<Item>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        count: u32,
    }

    #[test]
    fn type_errors_name_key_line_column_and_source() {
        let e = super::from_str::<Doc>("name = \"x\"\n\n[[items]]\ncount = \"three\"\n")
            .unwrap_err()
            .into_message();
        assert!(
            e.starts_with("line 4, column 9: key `items[0].count`:"),
            "{e}"
        );
        assert!(e.ends_with("  | count = \"three\""), "{e}");
    }

    #[test]
    fn unknown_keys_and_syntax_errors() {
        let e = super::from_str::<Doc>("name = \"x\"\ncolour = 1\n")
            .unwrap_err()
            .into_message();
        assert!(e.contains("line 2") && e.contains("colour"), "{e}");
        let e = super::from_str::<Doc>("name = ")
            .unwrap_err()
            .into_message();
        assert!(e.starts_with("line 1"), "{e}");
        assert_eq!(super::from_str::<Doc>("name = \"ok\"").unwrap().name, "ok");
    }
}
