//! Reading and writing small captures in tests, and finding the shared test data.

use std::path::{Path, PathBuf};

/// The shared test data: `$L4LB_TESTDATA`, else `../shared/testdata` next to the
/// repository, if present.
pub fn testdata() -> Option<PathBuf> {
    let p = match std::env::var_os("L4LB_TESTDATA") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"),
    };
    p.is_dir().then_some(p)
}

/// A fresh, empty scratch directory for one test: `$TMPDIR/l4lb-{prefix}-{pid}-{name}`.
pub fn tmpdir(prefix: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("l4lb-{prefix}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Standard base64 (other projects' test vectors carry frames so).
///
/// # Panics
/// On a character outside the standard alphabet.
pub fn base64(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => panic!("bad base64 character {c:#x}"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Every capture file under `dir`, sorted.
pub fn all_captures(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if matches!(p.extension().and_then(|e| e.to_str()), Some("pcap" | "pcapng")) {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

/// Write frames as a microsecond Ethernet pcap, one per `step_us` from `start_us`.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>], start_us: u64, step_us: u64) {
    let timed: Vec<(u64, Vec<u8>)> =
        frames.iter().enumerate().map(|(i, f)| (start_us + step_us * i as u64, f.clone())).collect();
    write_pcap_at(path, &timed);
}

/// Write (timestamp in microseconds, frame) pairs as a microsecond Ethernet pcap.
pub fn write_pcap_at(path: &Path, frames: &[(u64, Vec<u8>)]) {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&0i32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&262_144u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    for (t, f) in frames {
        let t = *t;
        b.extend_from_slice(&((t / 1_000_000) as u32).to_le_bytes());
        b.extend_from_slice(&((t % 1_000_000) as u32).to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(f);
    }
    std::fs::write(path, b).unwrap();
}

/// Read a classic pcap (either resolution, little-endian as l4lb writes it):
/// (timestamp in ns, frame) per packet.
pub fn read_pcap(path: &Path) -> Vec<(u64, Vec<u8>)> {
    let b = std::fs::read(path).unwrap();
    assert!(b.len() >= 24, "{} is not a pcap", path.display());
    let magic = u32::from_le_bytes(b[0..4].try_into().unwrap());
    let nano = match magic {
        0xa1b2_c3d4 => false,
        0xa1b2_3c4d => true,
        m => panic!("{}: unexpected magic {m:#x}", path.display()),
    };
    assert_eq!(u32::from_le_bytes(b[20..24].try_into().unwrap()), 1, "link type must be Ethernet");
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= b.len() {
        let sec = u64::from(u32::from_le_bytes(b[off..off + 4].try_into().unwrap()));
        let frac = u64::from(u32::from_le_bytes(b[off + 4..off + 8].try_into().unwrap()));
        let caplen = u32::from_le_bytes(b[off + 8..off + 12].try_into().unwrap()) as usize;
        off += 16;
        let ts = sec * 1_000_000_000 + if nano { frac } else { frac * 1000 };
        out.push((ts, b[off..off + caplen].to_vec()));
        off += caplen;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes_the_rfc_4648_vectors() {
        for (enc, dec) in
            [("", ""), ("Zg==", "f"), ("Zm8=", "fo"), ("Zm9v", "foo"), ("Zm9vYg==", "foob"), ("Zm9vYmFy", "foobar")]
        {
            assert_eq!(super::base64(enc), dec.as_bytes(), "{enc}");
        }
    }
}
