//! The first pass over a configuration's TOML: every key checked against the keys its
//! table may hold and every value against the TOML type that key takes, collecting
//! *all* problems, each with its place (`vip[0] "web": backend[0] (10.1.0.11): colour`).
//! Serde alone stops at the first unknown key or wrong type.
//!
//! The keys with a problem are then taken out of the tree, so that the rest can still
//! be converted and validated, and its problems reported in the same run. The places
//! taken out are returned so that validation's "missing" complaints about them
//! (a required key that was there, with the wrong type) are not reported twice.
//!
//! The key lists mirror the `raw` structs; a test checks that a configuration with
//! every key listed here deserializes into them.

use toml::{Table, Value};

use super::convert::{backend_place, vip_place};
use super::error::Errors;

/// The TOML type a key takes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Str,
    Int,
    Strs,
    Ints,
    Table,
    Tables,
}

const TOP: &[(&str, Kind)] =
    &[("node", Kind::Table), ("dataplane", Kind::Table), ("vip", Kind::Tables), ("io", Kind::Table)];
const NODE: &[(&str, Kind)] =
    &[("mac", Kind::Str), ("gateway_mac", Kind::Str), ("ipv4", Kind::Str), ("ipv6", Kind::Str), ("mtu", Kind::Int)];
const DATAPLANE: &[(&str, Kind)] = &[
    ("workers", Kind::Int),
    ("flow_table_capacity", Kind::Int),
    ("tcp_established_timeout", Kind::Str),
    ("tcp_transitory_timeout", Kind::Str),
    ("udp_timeout", Kind::Str),
];
const VIP: &[(&str, Kind)] = &[
    ("name", Kind::Str),
    ("address", Kind::Str),
    ("port", Kind::Int),
    ("protocol", Kind::Str),
    ("forwarding", Kind::Str),
    ("hash", Kind::Str),
    ("table_size", Kind::Int),
    ("backend", Kind::Tables),
];
const BACKEND: &[(&str, Kind)] =
    &[("address", Kind::Str), ("port", Kind::Int), ("weight", Kind::Int), ("state", Kind::Str)];
const IO: &[(&str, Kind)] = &[
    ("driver", Kind::Str),
    ("interface", Kind::Str),
    ("cores", Kind::Ints),
    ("xdp_mode", Kind::Str),
    ("zero_copy", Kind::Str),
    ("ring_size", Kind::Int),
    ("dpdk", Kind::Table),
];
const DPDK: &[(&str, Kind)] = &[
    ("eal_args", Kind::Strs),
    ("port", Kind::Int),
    ("tx_port", Kind::Int),
    ("mbufs", Kind::Int),
    ("host_tap", Kind::Str),
];

/// The keys of the table at TOML path `path` (`""` for the top level).
fn fields(path: &str) -> &'static [(&'static str, Kind)] {
    match path {
        "" => TOP,
        "node" => NODE,
        "dataplane" => DATAPLANE,
        "vip" => VIP,
        "vip.backend" => BACKEND,
        "io" => IO,
        "io.dpdk" => DPDK,
        _ => &[],
    }
}

/// The place of element `i` of the array of tables at `path` (`vip[1] "api"`,
/// `vip[1] "api": backend[2] (10.1.0.12)`), under the place of its parent table.
fn element_place(path: &str, parent: &str, i: usize, t: &Table) -> String {
    let s = |key: &str| t.get(key).and_then(Value::as_str);
    match path {
        "vip.backend" => backend_place(parent, i, s("address")),
        _ => vip_place(i, s("name")),
    }
}

/// Check the whole tree (see the module's doc). Returns the places taken out for a
/// wrong type (`place: field`, or a whole `vip[1]`), whose "missing" complaints the
/// later passes must not repeat.
pub(crate) fn check(root: &mut Table, e: &mut Errors) -> Vec<String> {
    let mut removed = Vec::new();
    walk(root, "", "", e, &mut removed);
    removed
}

/// [`keys`] of the table at `path`, then of the tables and arrays of tables in it.
fn walk(t: &mut Table, place: &str, path: &str, e: &mut Errors, removed: &mut Vec<String>) {
    let fields = fields(path);
    keys(t, place, path, fields, e, removed);
    for (key, kind) in fields {
        let sub = if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
        match (kind, t.get_mut(*key)) {
            // A table's place is its TOML name (`node`, `io.dpdk`).
            (Kind::Table, Some(Value::Table(inner))) => walk(inner, &sub, &sub, e, removed),
            (Kind::Tables, Some(Value::Array(items))) => {
                for (i, item) in items.iter_mut().enumerate() {
                    if let Value::Table(inner) = item {
                        let p = element_place(&sub, place, i, inner);
                        walk(inner, &p, &sub, e, removed);
                    }
                }
            }
            _ => {}
        }
    }
}

/// A tree with every key the shape pass knows, each with a value of its kind (tests:
/// the raw structs must read it).
#[cfg(test)]
pub(crate) fn sample(path: &str) -> Table {
    let mut t = Table::new();
    for (key, kind) in fields(path) {
        let sub = if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
        let v = match kind {
            Kind::Str => Value::String("x".into()),
            Kind::Int => Value::Integer(1),
            Kind::Strs => Value::Array(vec![Value::String("x".into())]),
            Kind::Ints => Value::Array(vec![Value::Integer(1)]),
            Kind::Table => Value::Table(sample(&sub)),
            Kind::Tables => Value::Array(vec![Value::Table(sample(&sub))]),
        };
        t.insert(key.to_string(), v);
    }
    t
}

/// One table's keys (`path`: the table's TOML name, for hints): unknown ones and
/// wrong types reported and taken out. A single table where an array of tables is
/// expected (`[vip]` for `[[vip]]`) is reported and then read as an array of that one
/// table, so that its contents are still checked.
fn keys(t: &mut Table, place: &str, path: &str, fields: &[(&str, Kind)], e: &mut Errors, removed: &mut Vec<String>) {
    let mut out = Vec::new();
    let mut wrap = Vec::new();
    for (key, value) in t.iter() {
        let full = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        match fields.iter().find(|(name, _)| name == key) {
            None => {
                let known: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
                e.push(place, &display_key(key), format!("unknown key; expected one of {}", known.join(", ")));
                out.push(key.clone());
            }
            Some((_, Kind::Tables)) if value.is_table() => {
                e.push(place, key, format!("a table where an array of tables is expected: write it as [[{full}]]"));
                wrap.push(key.clone());
            }
            Some((_, kind)) => {
                if let Some(problem) = wrong_type(&full, *kind, value) {
                    e.push(place, key, problem);
                    removed.push(if place.is_empty() { key.clone() } else { format!("{place}: {key}") });
                    out.push(key.clone());
                }
            }
        }
    }
    for key in out {
        t.remove(&key);
    }
    for key in wrap {
        if let Some(v) = t.remove(&key) {
            t.insert(key, Value::Array(vec![v]));
        }
    }
}

/// A key as a person would write it in the file (quoted when it is not a bare key).
fn display_key(key: &str) -> String {
    let bare = !key.is_empty() && key.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
    if bare { key.to_string() } else { format!("{key:?}") }
}

/// What is wrong with `value` for a key of `kind`, if anything (`key`: its full TOML
/// name, for hints).
fn wrong_type(key: &str, kind: Kind, value: &Value) -> Option<String> {
    let expected = match kind {
        Kind::Str if value.is_str() => return None,
        Kind::Int if value.is_integer() => return None,
        Kind::Table if value.is_table() => return None,
        Kind::Strs => match value.as_array() {
            Some(a) => match a.iter().position(|v| !v.is_str()) {
                None => return None,
                Some(i) => return Some(format!("element {i} is {}: expected a string", found(&a[i]))),
            },
            None => "an array of strings".to_string(),
        },
        Kind::Ints => match value.as_array() {
            Some(a) => match a.iter().position(|v| !v.is_integer()) {
                None => return None,
                Some(i) => return Some(format!("element {i} is {}: expected an integer", found(&a[i]))),
            },
            None => "an array of integers".to_string(),
        },
        Kind::Tables => {
            if let Some(a) = value.as_array() {
                match a.iter().position(|v| !v.is_table()) {
                    None => return None,
                    Some(i) => return Some(format!("element {i} is {}: expected a table [[{key}]]", found(&a[i]))),
                }
            }
            format!("an array of tables ([[{key}]])")
        }
        Kind::Str => "a string".to_string(),
        Kind::Int => "an integer".to_string(),
        Kind::Table => format!("a table [{key}]"),
    };
    Some(format!("{} where {expected} is expected", found(value)))
}

/// `a string ("80")`, `an integer (80)`, `a table`, ... for messages.
fn found(v: &Value) -> String {
    match v {
        Value::String(s) => format!("a string ({s:?})"),
        Value::Integer(i) => format!("an integer ({i})"),
        Value::Float(f) => format!("a float ({f})"),
        Value::Boolean(b) => format!("a boolean ({b})"),
        Value::Datetime(d) => format!("a date-time ({d})"),
        Value::Array(_) => "an array".to_string(),
        Value::Table(_) => "a table".to_string(),
    }
}

/// Whether a later pass's error at `place` is about something [`check`] took out.
pub(crate) fn is_removed(place: &str, removed: &[String]) -> bool {
    removed.iter().any(|r| place == r || place.strip_prefix(r.as_str()).is_some_and(|rest| rest.starts_with(':')))
}
