//! A small JSON-shaped value that both adapters produce before validation.
//!
//! The server deserializes request bodies into it with `serde_json`; the wasm crate converts the
//! JS arguments of `DropFix.identify()` into it with `serde-wasm-bindgen`. Validating one loosely
//! typed value (instead of deserializing straight into typed structs) is what lets both sides give
//! the same field-level messages ("traits.mrr must be a number") rather than serde's generic ones.
//!
//! Two guards live in the deserializer because they cannot be checked afterwards: duplicate object
//! keys are rejected (a body with `"plan"` twice is ambiguous, and parsers disagree on which wins),
//! and nesting deeper than [`MAX_DEPTH`] is rejected (identify payloads are flat; this also stops a
//! cyclic JS object from recursing forever).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};

/// Deepest container accepted: the body object (1), `traits` (2), and one level more so that a
/// custom trait holding an object or array still gets a field-level "must be a string, number,
/// boolean or null" instead of a parse error.
pub const MAX_DEPTH: usize = 3;

/// A JSON-shaped value. Object entries keep their order; keys are unique.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// A number that arrived as an integer (JSON without fraction/exponent, or a JS safe integer).
    Int(i64),
    /// Any other number, including integers beyond `i64` and JS numbers that are not safe integers.
    Float(f64),
    Str(String),
    /// Arrays are never valid in an identify payload; only their presence is kept.
    Array,
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The JSON type name used in error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Array => "an array",
            Value::Object(_) => "an object",
        }
    }

    /// Looks up a key of an object value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ValueSeed { depth: 1 }.deserialize(deserializer)
    }
}

struct ValueSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor { depth: self.depth })
    }
}

struct ValueVisitor {
    depth: usize,
}

impl ValueVisitor {
    fn check_depth<E: de::Error>(&self) -> Result<(), E> {
        if self.depth > MAX_DEPTH {
            Err(E::custom(
                "nested too deeply (identify payloads are flat objects)",
            ))
        } else {
            Ok(())
        }
    }
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        ValueSeed { depth: self.depth }.deserialize(d)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.into()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.check_depth()?;
        while seq
            .next_element_seed(ValueSeed {
                depth: self.depth + 1,
            })?
            .is_some()
        {}
        Ok(Value::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.check_depth()?;
        let mut entries: Vec<(String, Value)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if entries.iter().any(|(k, _)| *k == key) {
                let mut msg = String::from("duplicate key \"");
                msg.push_str(&key);
                msg.push('"');
                return Err(de::Error::custom(msg));
            }
            let value = map.next_value_seed(ValueSeed {
                depth: self.depth + 1,
            })?;
            entries.push((key, value));
        }
        Ok(Value::Object(entries))
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null | Value::Array => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(v) => s.serialize_str(v),
            Value::Object(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn parse(s: &str) -> Result<Value, serde_json::Error> {
        serde_json::from_str(s)
    }

    #[test]
    fn parses_numbers_by_kind() {
        assert_eq!(parse("42").unwrap(), Value::Int(42));
        assert_eq!(parse("-7").unwrap(), Value::Int(-7));
        assert_eq!(parse("49.5").unwrap(), Value::Float(49.5));
        assert!(matches!(
            parse("18446744073709551615").unwrap(),
            Value::Float(_)
        ));
    }

    #[test]
    fn rejects_duplicate_keys() {
        let err = parse(r#"{"a":1,"a":2}"#).unwrap_err();
        assert!(err.to_string().contains("duplicate key \"a\""), "{err}");
    }

    #[test]
    fn rejects_deep_nesting() {
        assert!(parse(r#"{"traits":{"x":{"y":1}}}"#).is_ok());
        assert!(parse(r#"{"traits":{"x":{"y":{}}}}"#).is_err());
        assert!(parse(&"[".repeat(10_000)).is_err());
    }

    #[test]
    fn round_trips_through_serialize() {
        let src = r#"{"user_id":"42","traits":{"mrr":49.5,"plan":"pro","n":null,"b":true}}"#;
        let v = parse(src).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), src);
    }
}
