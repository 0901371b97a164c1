//! JSON decoding and printing that behave like Go's encoding/json, which the reference
//! plugins use for their config and results (reference §1.5).
//!
//! Decoding ([`from_value`], [`from_slice`]):
//! - object keys match a struct's field names (its serde names) case-insensitively; an exact
//!   match is preferred when choosing between fields, and the other keys fill the field their
//!   case-folded name matches;
//! - unknown keys are ignored;
//! - duplicate keys, including keys that differ only in case: the last one wins.
//!   [`from_slice`] sees the document order, so `{"mtu":1,"MTU":2}` gives 2 as in Go.
//!   [`from_value`] takes the keys in the order the [`Value`] iterates them: document order
//!   when serde_json's `preserve_order` feature is on (it is in this workspace), sorted
//!   otherwise. [`from_value_sorted`] always takes them sorted by bytes, which is what Go does
//!   with a `prevResult`: it re-marshals it from a `map[string]interface{}` (sorted keys)
//!   before decoding it;
//! - `null` leaves a struct field at its default (the key is dropped before the struct is
//!   filled, so `#[serde(default = ...)]` applies); elsewhere `null` decodes as the zero value
//!   (`false`, `0`, `""`, empty list or map), as Go leaves a zero value in place, and as `None`
//!   for an `Option`;
//! - type mismatches stay errors (`"true"` for a bool, `1500.0` for an integer), and the
//!   message names the path of the offending key (`ipam.ranges[0][1].subnet: ...`).
//!
//! Map keys (`BTreeMap<String, _>`, `Value`) are never changed. Structs reached through
//! `#[serde(flatten)]` or untagged/internally tagged enums are buffered by serde itself and
//! so match their keys exactly (serde's own behaviour).
//!
//! Printing ([`to_string_pretty`]): what Go's `json.MarshalIndent(v, "", "    ")` prints, with
//! `<`, `>`, `&`, U+2028 and U+2029 escaped as Go does, no trailing newline.

use std::cell::RefCell;
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

use crate::error::Error;

/// Decodes `value` into `T` with Go's rules (see the module documentation).
///
/// # Errors
/// Type mismatches, missing required fields, values a field's type rejects; the message
/// starts with the path of the offending key.
pub fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, serde_json::Error> {
    decode(&Node::from(value))
}

/// As [`from_value`], with every object's keys taken in sorted order (Go's order for a
/// document that went through a Go map, such as `prevResult`).
///
/// # Errors
/// As [`from_value`].
pub fn from_value_sorted<T: DeserializeOwned>(value: &Value) -> Result<T, serde_json::Error> {
    let mut node = Node::from(value);
    node.sort_keys();
    decode(&node)
}

/// Sorts every object's keys, at every depth, by bytes: what Go prints for a value that went
/// through a `map[string]interface{}` (1.x results do). Only visible with serde_json's
/// `preserve_order` feature; without it objects are always sorted.
pub fn sort_keys(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(sort_keys),
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, mut item) in entries {
                sort_keys(&mut item);
                map.insert(key, item);
            }
        }
        _ => {}
    }
}

/// Decodes JSON text into `T` with Go's rules, honouring the document order of duplicate
/// keys (the last wins, whatever its case).
///
/// # Errors
/// Malformed JSON, or anything [`from_value`] rejects.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    let node: Node = serde_json::from_slice(bytes)?;
    decode(&node)
}

/// Parses a plugin's stdin. The document must be a JSON object (Go decodes it into a struct).
///
/// # Errors
/// Code 6 (decoding failure) naming the problem and where it is (line and column).
pub fn parse(bytes: &[u8]) -> crate::Result<Value> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::decoding(format!("decoding version from network config: {e}")))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(Error::decoding(format!(
            "decoding version from network config: expected a JSON object, found {}",
            kind_of(&value)
        )))
    }
}

/// Pretty-prints `value` as Go's `json.MarshalIndent(v, "", "    ")`: four-space indent,
/// keys in serialization order, HTML-sensitive characters escaped, no trailing newline.
///
/// # Errors
/// Only what `T`'s `Serialize` reports.
pub fn to_string_pretty<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter::new());
    value.serialize(&mut ser)?;
    // The serializer writes only what `str` values and the formatter produce: UTF-8.
    String::from_utf8(out).map_err(<serde_json::Error as serde::ser::Error>::custom)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn decode<T: DeserializeOwned>(node: &Node) -> Result<T, serde_json::Error> {
    let track = Track::default();
    let de = GoDe {
        node,
        path: String::new(),
        track: &track,
    };
    T::deserialize(de).map_err(|e| match track.failed_at.into_inner() {
        Some(path) if !path.is_empty() => de::Error::custom(format!("{path}: {e}")),
        _ => e,
    })
}

// ---------------------------------------------------------------------------------------
// An ordered JSON tree: what Go's decoder sees (duplicate keys kept, in document order).

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl Node {
    /// Stable: keys that are equal keep their order (the last still wins).
    fn sort_keys(&mut self) {
        match self {
            Node::Array(items) => items.iter_mut().for_each(Node::sort_keys),
            Node::Object(entries) => {
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                entries.iter_mut().for_each(|(_, v)| v.sort_keys());
            }
            _ => {}
        }
    }
}

impl From<&Value> for Node {
    fn from(v: &Value) -> Node {
        match v {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(*b),
            Value::Number(n) => Node::Number(n.clone()),
            Value::String(s) => Node::String(s.clone()),
            Value::Array(a) => Node::Array(a.iter().map(Node::from).collect()),
            Value::Object(o) => {
                Node::Object(o.iter().map(|(k, v)| (k.clone(), v.into())).collect())
            }
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Node, E> {
                Ok(Node::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Node, E> {
                Ok(Node::Number(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Node, E> {
                Ok(Node::Number(n.into()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Node, E> {
                Number::from_f64(n)
                    .map(Node::Number)
                    .ok_or_else(|| E::custom("number is not finite"))
            }
            fn visit_str<E>(self, s: &str) -> Result<Node, E> {
                Ok(Node::String(s.to_owned()))
            }
            fn visit_string<E>(self, s: String) -> Result<Node, E> {
                Ok(Node::String(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Node>()? {
                    entries.push((k, v));
                }
                Ok(Node::Object(entries))
            }
        }
        d.deserialize_any(NodeVisitor)
    }
}

// ---------------------------------------------------------------------------------------
// Error paths: the innermost node that failed records its path; an ancestor never
// overwrites a descendant's record, a failure elsewhere (after a recovered one) does.

#[derive(Default)]
struct Track {
    failed_at: RefCell<Option<String>>,
}

fn is_within(path: &str, ancestor: &str) -> bool {
    ancestor.is_empty()
        || path == ancestor
        || (path.starts_with(ancestor)
            && matches!(path.as_bytes().get(ancestor.len()), Some(b'.' | b'[')))
}

impl Track {
    fn note<T>(&self, path: &str, r: Result<T, serde_json::Error>) -> Result<T, serde_json::Error> {
        if r.is_err() {
            let mut at = self.failed_at.borrow_mut();
            let keep = at.as_deref().is_some_and(|p| is_within(p, path));
            if !keep {
                *at = Some(path.to_owned());
            }
        }
        r
    }
}

// ---------------------------------------------------------------------------------------
// Case-insensitive key matching (Go's rule: simple Unicode case folding).

fn fold(c: char) -> char {
    match c {
        // Go folds these to ASCII letters as well.
        '\u{017F}' => 's',
        '\u{212A}' => 'k',
        c if c.is_ascii() => c.to_ascii_lowercase(),
        c => {
            let mut lower = c.to_lowercase();
            match (lower.next(), lower.next()) {
                (Some(l), None) => l,
                _ => c,
            }
        }
    }
}

fn equal_fold(a: &str, b: &str) -> bool {
    a.chars().map(fold).eq(b.chars().map(fold))
}

/// The field `key` fills: the exactly spelled one, else the first whose name folds equal.
fn match_field(key: &str, fields: &'static [&'static str]) -> Option<&'static str> {
    fields
        .iter()
        .find(|f| **f == key)
        .or_else(|| fields.iter().find(|f| equal_fold(f, key)))
        .copied()
}

/// The entries a struct is filled from: keys renamed to the field they match, nulls dropped,
/// one entry per field, the last one in order winning (Go fills the field once per key).
/// Keys that match no field are passed on unchanged (serde ignores them, or matches an
/// alias).
fn struct_entries<'n>(
    entries: &'n [(String, Node)],
    fields: &'static [&'static str],
) -> Vec<(&'n str, &'n str, &'n Node)> {
    // (name given to serde, key as written for error paths, value)
    let mut out: Vec<(&'n str, &'n str, &'n Node)> = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        if matches!(value, Node::Null) {
            continue;
        }
        let name = match_field(key, fields).unwrap_or(key.as_str());
        match out.iter_mut().find(|(n, ..)| *n == name) {
            Some(slot) => *slot = (name, key.as_str(), value),
            None => out.push((name, key.as_str(), value)),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The deserializer.

struct GoDe<'a> {
    node: &'a Node,
    path: String,
    track: &'a Track,
}

impl<'a> GoDe<'a> {
    fn child(&self, node: &'a Node, segment: Segment<'_>) -> GoDe<'a> {
        let path = match segment {
            Segment::Key(k) if self.path.is_empty() => k.to_owned(),
            Segment::Key(k) => format!("{}.{k}", self.path),
            Segment::Index(i) => format!("{}[{i}]", self.path),
        };
        GoDe {
            node,
            path,
            track: self.track,
        }
    }

    fn unexpected(&self) -> de::Unexpected<'a> {
        match self.node {
            Node::Null => de::Unexpected::Unit,
            Node::Bool(b) => de::Unexpected::Bool(*b),
            Node::Number(n) => {
                if let Some(u) = n.as_u64() {
                    de::Unexpected::Unsigned(u)
                } else if let Some(i) = n.as_i64() {
                    de::Unexpected::Signed(i)
                } else {
                    de::Unexpected::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Node::String(s) => de::Unexpected::Str(s),
            Node::Array(_) => de::Unexpected::Seq,
            Node::Object(_) => de::Unexpected::Map,
        }
    }

    fn any<V: Visitor<'a>>(&self, visitor: V) -> Result<V::Value, serde_json::Error> {
        match self.node {
            Node::Null => visitor.visit_unit(),
            Node::Bool(b) => visitor.visit_bool(*b),
            Node::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Node::String(s) => visitor.visit_borrowed_str(s),
            Node::Array(items) => visitor.visit_seq(Seq::new(self, items)),
            Node::Object(entries) => {
                let entries = entries
                    .iter()
                    .map(|(k, v)| (k.as_str(), k.as_str(), v))
                    .collect();
                visitor.visit_map(Map::new(self, entries))
            }
        }
    }

    /// `null` where a plain value is expected: Go leaves the zero value in place.
    fn zero_or_any<V: Visitor<'a>>(
        &self,
        visitor: V,
        zero: impl FnOnce(V) -> Result<V::Value, serde_json::Error>,
    ) -> Result<V::Value, serde_json::Error> {
        let r = if matches!(self.node, Node::Null) {
            zero(visitor)
        } else {
            self.any(visitor)
        };
        self.finish(r)
    }

    fn finish<T>(&self, r: Result<T, serde_json::Error>) -> Result<T, serde_json::Error> {
        self.track.note(&self.path, r)
    }
}

enum Segment<'k> {
    Key(&'k str),
    Index(usize),
}

macro_rules! zero_number {
    ($($method:ident => $zero:expr),* $(,)?) => {$(
        fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.zero_or_any(visitor, $zero)
        }
    )*};
}

impl<'a> Deserializer<'a> for GoDe<'a> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let r = self.any(visitor);
        self.finish(r)
    }

    zero_number! {
        deserialize_bool => |v: V| v.visit_bool(false),
        deserialize_i8 => |v: V| v.visit_i64(0),
        deserialize_i16 => |v: V| v.visit_i64(0),
        deserialize_i32 => |v: V| v.visit_i64(0),
        deserialize_i64 => |v: V| v.visit_i64(0),
        deserialize_i128 => |v: V| v.visit_i64(0),
        deserialize_u8 => |v: V| v.visit_u64(0),
        deserialize_u16 => |v: V| v.visit_u64(0),
        deserialize_u32 => |v: V| v.visit_u64(0),
        deserialize_u64 => |v: V| v.visit_u64(0),
        deserialize_u128 => |v: V| v.visit_u64(0),
        deserialize_f32 => |v: V| v.visit_f64(0.0),
        deserialize_f64 => |v: V| v.visit_f64(0.0),
        deserialize_str => |v: V| v.visit_borrowed_str(""),
        deserialize_string => |v: V| v.visit_borrowed_str(""),
        deserialize_bytes => |v: V| v.visit_borrowed_bytes(&[]),
        deserialize_byte_buf => |v: V| v.visit_borrowed_bytes(&[]),
        deserialize_unit => |v: V| v.visit_unit(),
    }

    fn deserialize_char<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_any(visitor)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let path = self.path.clone();
        let track = self.track;
        let r = if matches!(self.node, Node::Null) {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        };
        track.note(&path, r)
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let path = self.path.clone();
        let track = self.track;
        track.note(&path, visitor.visit_newtype_struct(self))
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let r = match self.node {
            Node::Array(_) => self.any(visitor),
            Node::Null => visitor.visit_seq(Seq::new(&self, &[])),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        };
        self.finish(r)
    }

    fn deserialize_tuple<V: Visitor<'a>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let r = match self.node {
            Node::Object(_) => self.any(visitor),
            Node::Null => visitor.visit_map(Map::new(&self, Vec::new())),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        };
        self.finish(r)
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let r = match self.node {
            Node::Object(entries) => {
                visitor.visit_map(Map::new(&self, struct_entries(entries, fields)))
            }
            Node::Null => visitor.visit_map(Map::new(&self, Vec::new())),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        };
        self.finish(r)
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let r = match self.node {
            Node::String(s) => {
                let unit: de::value::BorrowedStrDeserializer<'a, serde_json::Error> =
                    de::value::BorrowedStrDeserializer::new(s);
                visitor.visit_enum(unit)
            }
            Node::Object(entries) if entries.len() == 1 => match entries.first() {
                Some((variant, value)) => {
                    let value = self.child(value, Segment::Key(variant));
                    visitor.visit_enum(Enum { variant, value })
                }
                None => Err(de::Error::invalid_length(0, &"an object with one key")),
            },
            Node::Object(_) => Err(de::Error::invalid_value(
                de::Unexpected::Map,
                &"a string or an object with one key",
            )),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        };
        self.finish(r)
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_any(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }
}

struct Seq<'p, 'a> {
    parent: &'p GoDe<'a>,
    items: &'a [Node],
    next: usize,
}

impl<'p, 'a> Seq<'p, 'a> {
    fn new(parent: &'p GoDe<'a>, items: &'a [Node]) -> Self {
        Seq {
            parent,
            items,
            next: 0,
        }
    }
}

impl<'a> SeqAccess<'a> for Seq<'_, 'a> {
    type Error = serde_json::Error;

    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        let Some(item) = self.items.get(self.next) else {
            return Ok(None);
        };
        let de = self.parent.child(item, Segment::Index(self.next));
        self.next += 1;
        // Noted here as well as in the node: a seed may reject what the node gave it
        // (a string that is not an address).
        let path = de.path.clone();
        let r = seed.deserialize(de);
        self.parent.track.note(&path, r).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len().saturating_sub(self.next))
    }
}

struct Map<'p, 'a> {
    parent: &'p GoDe<'a>,
    /// (key given to the visitor, key as written for error paths, value)
    entries: Vec<(&'a str, &'a str, &'a Node)>,
    next: usize,
    value: Option<(&'a str, &'a Node)>,
}

impl<'p, 'a> Map<'p, 'a> {
    fn new(parent: &'p GoDe<'a>, entries: Vec<(&'a str, &'a str, &'a Node)>) -> Self {
        Map {
            parent,
            entries,
            next: 0,
            value: None,
        }
    }
}

impl<'a> MapAccess<'a> for Map<'_, 'a> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some(&(name, written, value)) = self.entries.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        self.value = Some((written, value));
        let key: de::value::BorrowedStrDeserializer<'a, serde_json::Error> =
            de::value::BorrowedStrDeserializer::new(name);
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        match self.value.take() {
            Some((written, value)) => {
                let de = self.parent.child(value, Segment::Key(written));
                let path = de.path.clone();
                let r = seed.deserialize(de);
                self.parent.track.note(&path, r)
            }
            None => Err(de::Error::custom("value requested before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len().saturating_sub(self.next))
    }
}

struct Enum<'a> {
    variant: &'a str,
    value: GoDe<'a>,
}

impl<'a> EnumAccess<'a> for Enum<'a> {
    type Error = serde_json::Error;
    type Variant = GoDe<'a>;

    fn variant_seed<V: DeserializeSeed<'a>>(
        self,
        seed: V,
    ) -> Result<(V::Value, GoDe<'a>), Self::Error> {
        let key: de::value::BorrowedStrDeserializer<'a, serde_json::Error> =
            de::value::BorrowedStrDeserializer::new(self.variant);
        Ok((seed.deserialize(key)?, self.value))
    }
}

impl<'a> VariantAccess<'a> for GoDe<'a> {
    type Error = serde_json::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        Deserialize::deserialize(self)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'a>>(
        self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        let (path, track) = (self.path.clone(), self.track);
        track.note(&path, seed.deserialize(self))
    }

    fn tuple_variant<V: Visitor<'a>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_seq(visitor)
    }

    fn struct_variant<V: Visitor<'a>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_struct("", fields, visitor)
    }
}

// ---------------------------------------------------------------------------------------
// Printing like Go's MarshalIndent.

struct GoFormatter {
    pretty: serde_json::ser::PrettyFormatter<'static>,
}

impl GoFormatter {
    fn new() -> GoFormatter {
        GoFormatter {
            pretty: serde_json::ser::PrettyFormatter::with_indent(b"    "),
        }
    }
}

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escaped = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escaped.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.begin_array(w)
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.end_array(w)
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.pretty.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.end_array_value(w)
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.begin_object(w)
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.end_object(w)
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.pretty.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase")]
    enum Mode {
        Bridge,
        Passthru,
        Vlan { id: u16 },
    }

    #[derive(Debug, Clone, PartialEq, Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Range {
        #[serde(default)]
        subnet: String,
        #[serde(default)]
        range_start: Option<String>,
    }

    #[derive(Debug, Clone, PartialEq, Default, Deserialize)]
    struct Ipam {
        #[serde(default, rename = "type")]
        kind: String,
        #[serde(default)]
        ranges: Vec<Vec<Range>>,
    }

    fn default_mtu() -> u32 {
        1500
    }

    #[derive(Debug, Clone, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Conf {
        #[serde(default)]
        name: String,
        #[serde(default)]
        is_gateway: bool,
        #[serde(default = "default_mtu")]
        mtu: u32,
        #[serde(default)]
        vlan: Option<u16>,
        #[serde(default)]
        ipam: Ipam,
        #[serde(default)]
        capabilities: BTreeMap<String, bool>,
        #[serde(default)]
        runtime_config: Option<Value>,
        #[serde(default)]
        mode: Option<Mode>,
        #[serde(default)]
        tags: Vec<String>,
        #[serde(default, rename = "selinuxContext")]
        selinux_context: String,
    }

    impl Default for Conf {
        fn default() -> Conf {
            Conf {
                name: String::new(),
                is_gateway: false,
                mtu: default_mtu(),
                vlan: None,
                ipam: Ipam::default(),
                capabilities: BTreeMap::new(),
                runtime_config: None,
                mode: None,
                tags: Vec::new(),
                selinux_context: String::new(),
            }
        }
    }

    fn decode_both(text: &str) -> (Result<Conf, String>, Result<Conf, String>) {
        let by_text = from_slice::<Conf>(text.as_bytes()).map_err(|e| e.to_string());
        let value: Value = serde_json::from_str(text).expect("test input is JSON");
        let by_value = from_value::<Conf>(&value).map_err(|e| e.to_string());
        (by_text, by_value)
    }

    #[test]
    fn decodes_like_go() {
        type Expect = fn(&Conf) -> bool;
        let cases: &[(&str, &str, Expect)] = &[
            (
                "exact keys",
                r#"{"name":"n","isGateway":true,"mtu":9000}"#,
                |c| c.name == "n" && c.is_gateway && c.mtu == 9000,
            ),
            (
                "key in other case",
                r#"{"IsGateway":true,"NAME":"n"}"#,
                |c| c.is_gateway && c.name == "n",
            ),
            (
                "all lowercase",
                r#"{"isgateway":true,"selinuxcontext":"s"}"#,
                |c| c.is_gateway && c.selinux_context == "s",
            ),
            (
                "unknown keys ignored",
                r#"{"name":"n","whatever":{"a":[1]},"x":null}"#,
                |c| c.name == "n",
            ),
            (
                "null keeps the serde default",
                r#"{"mtu":null,"name":null,"ipam":null}"#,
                |c| c.mtu == 1500 && c.name.is_empty() && c.ipam == Ipam::default(),
            ),
            (
                "null option is none",
                r#"{"vlan":null,"runtimeConfig":null}"#,
                |c| c.vlan.is_none() && c.runtime_config.is_none(),
            ),
            (
                "duplicate exact key: last wins",
                r#"{"mtu":1400,"mtu":1450}"#,
                |c| c.mtu == 1450,
            ),
            (
                "null does not undo an earlier value",
                r#"{"mtu":1400,"MTU":null}"#,
                |c| c.mtu == 1400,
            ),
            (
                "nested structs match case-insensitively",
                r#"{"IPAM":{"Type":"host-local","RANGES":[[{"Subnet":"10.0.0.0/24","rangestart":"10.0.0.5"}]]}}"#,
                |c| {
                    c.ipam.kind == "host-local"
                        && c.ipam.ranges[0][0].subnet == "10.0.0.0/24"
                        && c.ipam.ranges[0][0].range_start.as_deref() == Some("10.0.0.5")
                },
            ),
            (
                "map keys are kept as written",
                r#"{"capabilities":{"portMappings":true,"IPRanges":false}}"#,
                |c| {
                    c.capabilities.get("portMappings") == Some(&true)
                        && c.capabilities.get("IPRanges") == Some(&false)
                        && c.capabilities.len() == 2
                },
            ),
            (
                "raw values are kept as written",
                r#"{"RuntimeConfig":{"portMappings":[{"hostPort":80}],"Mac":null}}"#,
                |c| c.runtime_config == Some(json!({"portMappings":[{"hostPort":80}],"Mac":null})),
            ),
            ("enum unit variant", r#"{"mode":"passthru"}"#, |c| {
                c.mode == Some(Mode::Passthru)
            }),
            (
                "enum struct variant matches fields case-insensitively",
                r#"{"mode":{"vlan":{"ID":7}}}"#,
                |c| c.mode == Some(Mode::Vlan { id: 7 }),
            ),
            (
                "null in a list is the zero value",
                r#"{"tags":["a",null]}"#,
                |c| c.tags == ["a", ""],
            ),
            ("plain integer", r#"{"mtu":1500}"#, |c| c.mtu == 1500),
        ];
        for (name, text, expect) in cases {
            let (by_text, by_value) = decode_both(text);
            let conf = by_text.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(expect(&conf), "{name}: {conf:?}");
            assert_eq!(by_value.as_ref(), Ok(&conf), "{name}: from_value differs");
        }
        assert_eq!(
            Mode::Bridge,
            from_value::<Mode>(&json!("bridge")).expect("unit variant")
        );
    }

    #[test]
    fn case_variants_of_one_key_resolve_by_order() {
        // Document order (what Go sees in a config): the later key wins, whatever its case.
        let c: Conf = from_slice(br#"{"mtu":1400,"MTU":1450}"#).expect("valid");
        assert_eq!(c.mtu, 1450);
        let c: Conf = from_slice(br#"{"MTU":1450,"mtu":1400}"#).expect("valid");
        assert_eq!(c.mtu, 1400);
        let c: Conf = from_slice(br#"{"IsGateway":false,"isgateway":true}"#).expect("valid");
        assert!(c.is_gateway);
        // Sorted order (what Go sees in a prevResult it re-marshalled from a map):
        // "MTU" < "Mtu" < "mtu", so the lowercase spelling wins wherever it was written.
        let v = json!({"mtu":1400,"MTU":1450,"Mtu":1460});
        assert_eq!(from_value_sorted::<Conf>(&v).expect("valid").mtu, 1400);
        let v = json!({"MTU":1450,"Mtu":1460});
        assert_eq!(from_value_sorted::<Conf>(&v).expect("valid").mtu, 1460);
    }

    #[test]
    fn type_mismatches_are_errors_naming_the_key() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "string for bool",
                r#"{"isGateway":"true"}"#,
                &["isGateway", "invalid type", "bool"],
            ),
            (
                "float for integer",
                r#"{"mtu":1500.0}"#,
                &["mtu", "floating point", "u32"],
            ),
            ("exponent for integer", r#"{"mtu":15e2}"#, &["mtu", "u32"]),
            ("negative for unsigned", r#"{"mtu":-1}"#, &["mtu", "-1"]),
            ("out of range", r#"{"vlan":70000}"#, &["vlan", "u16"]),
            ("number for string", r#"{"name":5}"#, &["name", "string"]),
            (
                "object for list",
                r#"{"tags":{"a":1}}"#,
                &["tags", "sequence"],
            ),
            (
                "string for struct",
                r#"{"ipam":"host-local"}"#,
                &["ipam", "struct Ipam"],
            ),
            (
                "list for struct",
                r#"{"ipam":["host-local"]}"#,
                &["ipam", "sequence"],
            ),
            (
                "nested path",
                r#"{"ipam":{"ranges":[[{"subnet":"a"},{"subnet":7}]]}}"#,
                &["ipam.ranges[0][1].subnet:", "string"],
            ),
            (
                "written key in path",
                r#"{"IPAM":{"Type":false}}"#,
                &["IPAM.Type:", "string"],
            ),
            (
                "unknown enum variant",
                r#"{"mode":"vepa"}"#,
                &["mode", "vepa"],
            ),
            (
                "wrong type in a map",
                r#"{"capabilities":{"portMappings":"yes"}}"#,
                &["capabilities.portMappings:", "bool"],
            ),
        ];
        for (name, text, needles) in cases {
            let (by_text, by_value) = decode_both(text);
            let e = by_text.expect_err(name);
            for needle in *needles {
                assert!(e.contains(needle), "{name}: {e:?} lacks {needle:?}");
            }
            assert_eq!(by_value.expect_err(name), e, "{name}: from_value differs");
        }
    }

    #[test]
    fn missing_required_field_names_the_struct_path() {
        #[derive(Debug, Deserialize)]
        struct Route {
            #[allow(dead_code)]
            dst: String,
        }
        #[derive(Debug, Deserialize)]
        struct Routes {
            #[allow(dead_code)]
            routes: Vec<Route>,
        }
        let e =
            from_value::<Routes>(&json!({"routes":[{"dst":"a"},{"gw":"b"}]})).expect_err("no dst");
        assert_eq!(e.to_string(), "routes[1]: missing field `dst`");
        // A null for a required field is a missing field, as its key is dropped.
        let e = from_value::<Routes>(&json!({"routes":[{"dst":null}]})).expect_err("null dst");
        assert_eq!(e.to_string(), "routes[0]: missing field `dst`");
    }

    #[test]
    fn a_recovered_error_does_not_mislabel_a_later_one() {
        #[derive(Debug, Deserialize)]
        #[serde(untagged)]
        #[allow(dead_code)]
        enum NumOrText {
            Num(u32),
            Text(String),
        }
        #[derive(Debug, Deserialize)]
        struct Both {
            #[allow(dead_code)]
            a: NumOrText,
            #[allow(dead_code)]
            b: u32,
        }
        let e = from_value::<Both>(&json!({"a":"x","b":"y"})).expect_err("b is text");
        assert!(e.to_string().starts_with("b: "), "{e}");
        assert!(matches!(
            from_value::<Both>(&json!({"a":"x","b":1})),
            Ok(Both { .. })
        ));
        assert!(matches!(
            from_value::<Both>(&json!({"a":3,"b":1})),
            Ok(Both {
                a: NumOrText::Num(3),
                ..
            })
        ));
    }

    #[test]
    fn go_case_folding() {
        let table = [
            ("ascii", "isGateway", "ISGATEWAY", true),
            ("kelvin sign folds to k", "kind", "\u{212A}ind", true),
            ("long s folds to s", "subnet", "\u{017F}ubnet", true),
            (
                "non-ascii letters fold",
                "\u{00e9}t\u{00e9}",
                "\u{00c9}T\u{00c9}",
                true,
            ),
            ("different letters", "mtu", "mtv", false),
            ("prefix only", "mtu", "mtus", false),
        ];
        for (name, a, b, same) in table {
            assert_eq!(equal_fold(a, b), same, "{name}");
        }
        // The exactly spelled field wins over one that only folds equal.
        const FIELDS: &[&str] = &["Mtu", "mtu"];
        assert_eq!(match_field("mtu", FIELDS), Some("mtu"));
        assert_eq!(match_field("MTU", FIELDS), Some("Mtu"));
        assert_eq!(match_field("mac", FIELDS), None);
    }

    #[test]
    fn parse_reports_code_6_with_position() {
        let cases: &[(&str, &[u8], &[&str])] = &[
            ("empty", b"", &["EOF", "line 1"]),
            ("truncated", b"{\"cniVersion\":\"1.0.0\",\n", &["line 2"]),
            ("bad token", b"{\"name\": tru}", &["line 1 column"]),
            ("trailing garbage", b"{} x", &["trailing"]),
            (
                "top-level array",
                b"[]",
                &["expected a JSON object, found an array"],
            ),
            ("top-level null", b"null", &["found null"]),
        ];
        for (name, input, needles) in cases {
            let e = parse(input).expect_err(name);
            assert_eq!(e.code, crate::Code::Decoding, "{name}");
            assert!(
                e.msg.starts_with("decoding version from network config: "),
                "{name}: {e}"
            );
            for needle in *needles {
                assert!(e.msg.contains(needle), "{name}: {e} lacks {needle:?}");
            }
        }
        let v = parse(b" {\"cniVersion\":\"1.0.0\",\"a\":1,\"a\":2} \n").expect("valid");
        assert_eq!(v, json!({"cniVersion":"1.0.0","a":2}));
    }

    #[test]
    fn prints_like_go_marshal_indent() {
        #[derive(Serialize)]
        struct Doc {
            z: u32,
            a: Vec<u32>,
            empty_list: Vec<u32>,
            empty_map: BTreeMap<String, u32>,
            text: &'static str,
        }
        let doc = Doc {
            z: 1,
            a: vec![1, 2],
            empty_list: vec![],
            empty_map: BTreeMap::new(),
            text: "<a href=\"x\">&\u{2028}\u{2029}\n\u{1}é",
        };
        let want = "{\n    \"z\": 1,\n    \"a\": [\n        1,\n        2\n    ],\n    \"empty_list\": [],\n    \"empty_map\": {},\n    \"text\": \"\\u003ca href=\\\"x\\\"\\u003e\\u0026\\u2028\\u2029\\n\\u0001é\"\n}";
        assert_eq!(to_string_pretty(&doc).expect("serializes"), want);
    }

    #[test]
    fn sort_keys_sorts_every_level() {
        let mut v = json!({"b":1,"a":[{"y":1,"x":2}],"C":{"k":1,"a":2}});
        sort_keys(&mut v);
        assert_eq!(
            to_string_pretty(&v)
                .expect("serializes")
                .replace([' ', '\n'], ""),
            r#"{"C":{"a":2,"k":1},"a":[{"x":2,"y":1}],"b":1}"#
        );
    }
}
