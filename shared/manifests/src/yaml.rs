//! YAML read and written the same way wherever people write it: manifest files, scenarios,
//! `nodewright convert`'s output, the generated CRDs.
//!
//! Scalars are read as YAML 1.2 reads them (and this project's earlier YAML crate did): only
//! `true`/`false` are booleans, so a label value `yes` or `on` stays a string; `0755` and
//! `1_000` stay strings too. Merge keys (`<<: *anchor`) are applied, and a key given twice in one mapping
//! is an error. Strings are written so that YAML 1.1 readers (Go's, `kubectl`'s) read them
//! back as strings: `"1.30"`, `"yes"` and `"on"` are quoted. Long lines are not folded; text
//! with line breaks is written as a literal block.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A YAML document that cannot be read: where (the line and column, and for a typed document
/// the field's path) and why.
#[derive(Debug)]
pub struct YamlError {
    /// The field's path (`workloads[0].cpu`) when a typed document was read; empty otherwise.
    path: String,
    source: Box<serde_saphyr::Error>,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.source)
        } else {
            write!(f, "{}: {}", self.path, self.source)
        }
    }
}

impl std::error::Error for YamlError {}

impl From<serde_saphyr::Error> for YamlError {
    fn from(source: serde_saphyr::Error) -> Self {
        YamlError {
            path: String::new(),
            source: Box::new(source),
        }
    }
}

/// A value that cannot be written as YAML.
pub type WriteError = serde_saphyr::SerializeError;

fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        // One line per error: callers put the file and the document in front.
        with_snippet: false,
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
    }
}

/// Every document of a YAML (or JSON) stream, in order, as JSON values; empty documents are
/// skipped. A document that cannot be read gives an error in its place; reading stops after
/// a syntax error, since nothing after it can be trusted.
pub fn documents(text: &str) -> Vec<Result<Value, YamlError>> {
    let mut reader = std::io::Cursor::new(text.as_bytes());
    serde_saphyr::read_with_options(&mut reader, options())
        .map(|document| document.map_err(YamlError::from))
        .collect()
}

/// Every document of a YAML stream, or the first error.
pub fn all_documents(text: &str) -> Result<Vec<Value>, YamlError> {
    documents(text).into_iter().collect()
}

/// One YAML document read strictly into `T`; an error names the field's path.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    let mut path = String::new();
    serde_saphyr::with_deserializer_from_str_with_options(text, options(), |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            path = e.path().to_string();
            e.into_inner()
        })
    })
    .map_err(|source| {
        // The root's path prints as ".": no field to name.
        let path = if path == "." { String::new() } else { path };
        YamlError {
            path: without_unknown_field(path, &source.to_string()),
            source: Box::new(source),
        }
    })
}

/// The path of an unknown field ends with the field, which the error already names: the
/// path of the object holding it says where without saying it twice.
fn without_unknown_field(path: String, message: &str) -> String {
    let Some(field) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    else {
        return path;
    };
    if path == field {
        return String::new();
    }
    match path.strip_suffix(field).and_then(|p| p.strip_suffix('.')) {
        Some(parent) => parent.to_string(),
        None => path,
    }
}

/// `value` as one YAML document.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, WriteError> {
    let options = serde_saphyr::ser_options! {
        // Fold nothing: a long description stays one line, a long base64 string one token.
        folded_wrap_chars: usize::MAX,
    };
    serde_saphyr::to_string_with_options(value, options)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn scalars_read_as_yaml_1_2_reads_them() {
        let value = all_documents(
            "a: yes\nb: on\nc: 0755\nd: 1_000\ne: 1.30\nf: \"1.30\"\ng: true\nh: ~\ni: 2024-01-01\n",
        )
        .expect("YAML");
        assert_eq!(
            value,
            [
                json!({"a": "yes", "b": "on", "c": "0755", "d": "1_000", "e": 1.3, "f": "1.30",
                    "g": true, "h": null, "i": "2024-01-01"})
            ]
        );
    }

    #[test]
    fn documents_skip_empty_ones_and_apply_merge_keys() {
        let values = all_documents(
            "# header\n---\nbase: &b {x: 1, y: 2}\nmerged:\n  <<: *b\n  y: 3\n---\n---\nz: 1\n",
        )
        .expect("YAML");
        assert_eq!(
            values,
            [
                json!({"base": {"x": 1, "y": 2}, "merged": {"x": 1, "y": 3}}),
                json!({"z": 1})
            ]
        );
    }

    #[test]
    fn an_unreadable_document_gives_its_error_in_its_place_with_the_line() {
        let docs = documents("a: 1\n---\nb: {x: 1, x: 2}\n---\nc: [unclosed\n");
        assert!(docs[0].is_ok());
        let duplicate = docs[1].as_ref().expect_err("duplicate key").to_string();
        assert!(
            duplicate.contains("duplicate") && duplicate.contains("line 3"),
            "{duplicate}"
        );
        let syntax = docs[2].as_ref().expect_err("unclosed").to_string();
        assert!(syntax.contains("line 5"), "{syntax}");
    }

    #[test]
    fn a_typed_document_names_the_path_of_a_bad_field() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Item {
            name: String,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct List {
            items: Vec<Item>,
        }
        let err = from_str::<List>("items:\n- name: a\n- name: b\n  nmae: c\n")
            .expect_err("unknown field")
            .to_string();
        assert!(err.starts_with("items[1]: unknown field `nmae`"), "{err}");
        assert!(err.contains("line 4"), "{err}");
    }

    #[test]
    fn writes_strings_that_yaml_1_1_readers_read_back_as_strings() {
        let value = json!({"version": "1.30", "flag": "yes", "n": "on", "count": 3,
                           "script": "#!/bin/bash\necho hi\n", "long": "x ".repeat(60)});
        let text = to_string(&value).expect("YAML");
        assert!(text.contains("version: \"1.30\"\n"), "{text}");
        assert!(text.contains("flag: \"yes\"\n"), "{text}");
        assert!(text.contains("count: 3\n"), "{text}");
        assert!(text.contains("script: |\n  #!/bin/bash\n  echo hi\n"), "{text}");
        assert_eq!(all_documents(&text).expect("reads back"), [value]);
    }
}
