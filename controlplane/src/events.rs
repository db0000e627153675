//! `--events FILE`: control-plane changes at capture times (TOML), applied by
//! `replay` through the same publication path the live control plane uses.

use std::net::IpAddr;
use std::time::Duration;

use common::config::{BackendConfig, BackendState, parse_duration};
use serde::Deserialize;

use crate::publish::Change;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    event: Vec<RawEvent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    at: String,
    vip: String,
    backend: Option<String>,
    set: Option<String>,
    weight: Option<u32>,
    add: Option<RawBackend>,
    remove: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    address: String,
    port: Option<u16>,
    weight: Option<u32>,
    state: Option<String>,
}

/// A change and when (since the capture's first packet) it applies.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub at: Duration,
    pub change: Change,
}

fn state_of(s: &str) -> Option<BackendState> {
    match s {
        "up" => Some(BackendState::Up),
        "down" => Some(BackendState::Down),
        "drain" => Some(BackendState::Drain),
        _ => None,
    }
}

/// Parse an events file. Every error is reported with its event's index; the
/// events come back sorted by time (file order among equal times).
pub fn parse(text: &str) -> Result<Vec<Event>, Vec<String>> {
    // One line, placed like the configuration's own syntax errors.
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let msg = e.message().trim().replace('\n', " ");
        match e.span() {
            Some(span) => vec![format!("events: {}: {msg}", common::config::line_column(text, span.start))],
            None => vec![format!("events: {msg}")],
        }
    })?;
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (i, e) in raw.event.iter().enumerate() {
        let place = format!("event[{i}] (vip {:?})", e.vip);
        let at = match parse_duration(&e.at) {
            // Capture times are u64 nanoseconds: a later time could never be reached.
            Ok(d) if u64::try_from(d.as_nanos()).is_err() => {
                errors.push(format!("{place}: at: {:?} is later than any capture time (about 584 years)", e.at));
                None
            }
            Ok(d) => Some(d),
            Err(msg) => {
                errors.push(format!("{place}: at: {msg}"));
                None
            }
        };
        let backend = match &e.backend {
            Some(b) => match b.parse::<IpAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    errors.push(format!("{place}: backend: {b:?} is not an IP address"));
                    None
                }
            },
            None => None,
        };
        let actions = [e.set.is_some(), e.weight.is_some(), e.add.is_some(), e.remove.is_some()];
        let n = actions.iter().filter(|a| **a).count();
        if n != 1 {
            errors.push(format!("{place}: needs exactly one of set, weight, add, remove (found {n})"));
            continue;
        }
        let change = if let Some(s) = &e.set {
            match (state_of(s), backend) {
                (Some(state), Some(backend)) => Some(Change::SetState { vip: e.vip.clone(), backend, state }),
                (None, _) => {
                    errors.push(format!("{place}: set: {s:?} is not one of \"up\", \"down\", \"drain\""));
                    None
                }
                (_, None) => {
                    if e.backend.is_none() {
                        errors.push(format!("{place}: set needs backend = \"ADDRESS\""));
                    }
                    None
                }
            }
        } else if let Some(w) = e.weight {
            match backend {
                Some(backend) => Some(Change::SetWeight { vip: e.vip.clone(), backend, weight: w }),
                None => {
                    if e.backend.is_none() {
                        errors.push(format!("{place}: weight needs backend = \"ADDRESS\""));
                    }
                    None
                }
            }
        } else if let Some(a) = &e.add {
            if e.backend.is_some() {
                errors.push(format!("{place}: add takes its address inside add = {{ address = ... }}"));
            }
            let addr = a.address.parse::<IpAddr>();
            let state = match &a.state {
                Some(s) => state_of(s),
                None => Some(BackendState::Up),
            };
            match (addr, state) {
                (Ok(address), Some(state)) => Some(Change::Add {
                    vip: e.vip.clone(),
                    backend: BackendConfig { address, port: a.port.unwrap_or(0), weight: a.weight.unwrap_or(1), state },
                }),
                (Err(_), _) => {
                    errors.push(format!("{place}: add.address: {:?} is not an IP address", a.address));
                    None
                }
                (_, None) => {
                    errors.push(format!("{place}: add.state: not one of \"up\", \"down\", \"drain\""));
                    None
                }
            }
        } else if let Some(r) = &e.remove {
            match r.parse::<IpAddr>() {
                Ok(backend) => Some(Change::Remove { vip: e.vip.clone(), backend }),
                Err(_) => {
                    errors.push(format!("{place}: remove: {r:?} is not an IP address"));
                    None
                }
            }
        } else {
            None
        };
        if let (Some(at), Some(change)) = (at, change) {
            out.push(Event { at, change });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    out.sort_by_key(|e| e.at);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_contract_example() {
        let text = r#"
[[event]]
at = "1.5s"
vip = "web"
backend = "10.1.0.11"
set = "down"

[[event]]
at = "2s"
vip = "web"
backend = "10.1.0.12"
weight = 3

[[event]]
at = "3s"
vip = "web"
add = { address = "10.1.0.14", weight = 1 }

[[event]]
at = "4s"
vip = "web"
remove = "10.1.0.11"
"#;
        let ev = parse(text).unwrap();
        assert_eq!(ev.len(), 4);
        assert_eq!(ev[0].at, Duration::from_millis(1500));
        assert!(matches!(ev[0].change, Change::SetState { state: BackendState::Down, .. }));
        assert!(matches!(ev[1].change, Change::SetWeight { weight: 3, .. }));
        assert!(matches!(&ev[2].change, Change::Add { backend, .. } if backend.weight == 1));
        assert!(matches!(ev[3].change, Change::Remove { .. }));
    }

    /// `at` past u64 nanoseconds is an error, not a time that wraps to the start.
    #[test]
    fn an_at_past_every_capture_time_is_an_error() {
        let ev =
            |at: &str| format!("[[event]]\nat = \"{at}\"\nvip = \"web\"\nbackend = \"10.1.0.11\"\nset = \"down\"\n");
        assert!(parse(&ev("18446744073.709551615s")).is_ok());
        for at in ["18446744073.709551616s", "36893488147.519103232s"] {
            let errs = parse(&ev(at)).unwrap_err();
            assert!(errs[0].contains("later than any capture time"), "{errs:?}");
        }
    }

    #[test]
    fn reports_every_error_with_its_index() {
        let text = r#"
[[event]]
at = "soon"
vip = "web"
backend = "10.1.0.11"
set = "sideways"

[[event]]
at = "1s"
vip = "web"
backend = "nope"
weight = 2

[[event]]
at = "1s"
vip = "web"
"#;
        let errs = parse(text).unwrap_err();
        assert!(errs.iter().any(|e| e.starts_with("event[0]") && e.contains("at:")), "{errs:?}");
        assert!(errs.iter().any(|e| e.starts_with("event[0]") && e.contains("sideways")), "{errs:?}");
        assert!(errs.iter().any(|e| e.starts_with("event[1]") && e.contains("nope")), "{errs:?}");
        assert!(errs.iter().any(|e| e.starts_with("event[2]") && e.contains("exactly one")), "{errs:?}");
        assert!(parse("[[event]]\nat=\"1s\"\nvip=\"a\"\nremove=\"10.0.0.1\"\nextra=1\n").is_err());
        // Syntax errors: one line, with the place, like the configuration's.
        let e = parse("[[event]\nat = 1\n").unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("events: line 1, column 8: "), "{e:?}");
        assert!(!e[0].contains('\n'), "{e:?}");
    }
}
