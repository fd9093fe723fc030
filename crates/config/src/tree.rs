//! A TOML document as a tree of values that each remember where they were in the file.
//!
//! `toml`'s parser drives serde; this module's `Deserialize` impls capture every table, array and
//! scalar together with its byte span, instead of mapping straight onto typed structs. That lets
//! the validator report *every* unknown key and wrong type with its place, where a struct with
//! `deny_unknown_fields` would stop at the first one. Strings arrive by value from the parser and
//! are moved into [`Zeroizing`] buffers, so hex keys are wiped when the tree is dropped.
//!
//! It does not validate anything: that is [`crate::validate`].

use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use zeroize::Zeroizing;

// The names `toml` uses to hand out spans and datetimes through serde (serde_spanned and
// toml_datetime's private protocol, stable across toml 0.8).
const SPANNED_NAME: &str = "$__serde_spanned_private_Spanned";
const SPANNED_START: &str = "$__serde_spanned_private_start";
const SPANNED_END: &str = "$__serde_spanned_private_end";
const SPANNED_VALUE: &str = "$__serde_spanned_private_value";
const SPANNED_FIELDS: &[&str] = &[SPANNED_START, SPANNED_END, SPANNED_VALUE];
const DATETIME_FIELD: &str = "$__toml_private_datetime";

/// A value and the bytes of the source it came from (`None` for implicit tables).
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) span: Option<Range<usize>>,
    pub(crate) value: Value,
}

/// A key of a table and its span.
#[derive(Debug)]
pub(crate) struct Key {
    pub(crate) name: String,
    pub(crate) span: Option<Range<usize>>,
}

/// A TOML value.
pub(crate) enum Value {
    Str(Zeroizing<String>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Datetime,
    Array(Vec<Node>),
    Table(Vec<(Key, Node)>),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Strings may be key material: never print them.
        match self {
            Self::Str(_) => f.write_str("Str(<redacted>)"),
            Self::Int(v) => write!(f, "Int({v})"),
            Self::Float(v) => write!(f, "Float({v})"),
            Self::Bool(v) => write!(f, "Bool({v})"),
            Self::Datetime => f.write_str("Datetime"),
            Self::Array(v) => f.debug_tuple("Array").field(v).finish(),
            Self::Table(v) => f.debug_tuple("Table").field(v).finish(),
        }
    }
}

impl Value {
    /// The TOML type name, for "expected X, found Y" messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Self::Str(_) => "a string",
            Self::Int(_) => "an integer",
            Self::Float(_) => "a float",
            Self::Bool(_) => "a boolean",
            Self::Datetime => "a datetime",
            Self::Array(_) => "an array",
            Self::Table(_) => "a table",
        }
    }
}

/// Parses `text` into a tree; the error is toml's message and the span it points at.
pub(crate) fn parse(text: &str) -> Result<Node, (String, Option<Range<usize>>)> {
    let de = toml::Deserializer::new(text);
    Node::deserialize(de).map_err(|e| (e.message().to_owned(), e.span()))
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, NodeVisitor)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, KeyVisitor)
    }
}

/// Deserializes a bare [`Value`] (the inside of a span).
struct ValueSeed;

impl<'de> de::DeserializeSeed<'de> for ValueSeed {
    type Value = Node;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

fn bare(value: Value) -> Node {
    Node { span: None, value }
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(bare(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(bare(Value::Int(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        i64::try_from(v)
            .map(|v| bare(Value::Int(v)))
            .map_err(|_| E::custom("integer out of range"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(bare(Value::Float(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(bare(Value::Str(Zeroizing::new(v.to_owned()))))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        // Moved, not copied: the parser's only copy is now wiped on drop.
        Ok(bare(Value::Str(Zeroizing::new(v))))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(bare(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let Some(first) = map.next_key::<Key>()? else {
            return Ok(bare(Value::Table(Vec::new())));
        };
        if first.name == SPANNED_START {
            // The span protocol: start, end, then the value itself.
            let start: usize = map.next_value()?;
            let end = match map.next_key::<Key>()? {
                Some(k) if k.name == SPANNED_END => map.next_value::<usize>()?,
                _ => return Err(de::Error::custom("malformed span")),
            };
            let mut node = match map.next_key::<Key>()? {
                Some(k) if k.name == SPANNED_VALUE => map.next_value_seed(ValueSeed)?,
                _ => return Err(de::Error::custom("malformed span")),
            };
            node.span = Some(start..end.max(start));
            return Ok(node);
        }
        if first.name == DATETIME_FIELD {
            let _: de::IgnoredAny = map.next_value()?;
            return Ok(bare(Value::Datetime));
        }
        let mut entries = Vec::new();
        let value = map.next_value::<Node>()?;
        entries.push((first, value));
        while let Some(key) = map.next_key::<Key>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(bare(Value::Table(entries)))
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(Key {
            name: v.to_owned(),
            span: None,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Key, A::Error> {
        let mut start = None;
        let mut end = None;
        let mut name = None;
        while let Some(k) = map.next_key::<String>()? {
            match k.as_str() {
                SPANNED_START => start = Some(map.next_value::<usize>()?),
                SPANNED_END => end = Some(map.next_value::<usize>()?),
                SPANNED_VALUE => name = Some(map.next_value::<String>()?),
                _ => return Err(de::Error::custom("malformed key span")),
            }
        }
        let name = name.ok_or_else(|| de::Error::custom("malformed key span"))?;
        let span = match (start, end) {
            (Some(s), Some(e)) => Some(s..e.max(s)),
            _ => None,
        };
        Ok(Key { name, span })
    }
}
