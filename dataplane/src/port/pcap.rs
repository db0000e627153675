//! Capture files: a reader for classic pcap and pcapng, and a classic pcap writer.
//!
//! Written by hand (the formats are small) so that reading never allocates per
//! packet, never panics on garbage, and reports every problem as a [`PcapError`]
//! with a one-line message.
//!
//! Reader:
//! - classic pcap in either byte order, microsecond (`a1b2c3d4`) and nanosecond
//!   (`a1b23c4d`) magic, version 2.x;
//! - pcapng (sections in either byte order, several interfaces each with its own
//!   link type, `if_tsresol` and `if_tsoffset`): Enhanced, Simple and obsolete
//!   Packet Blocks carry packets; every other block is skipped.
//!
//! Only Ethernet (`LINKTYPE_ETHERNET` = 1) is accepted: anything else is
//! [`PcapError::NotEthernet`] as soon as it is known (the classic header, or the
//! first packet of a pcapng interface). A file cut in the middle of its last
//! record is not an error: reading stops there and [`PcapReader::truncated_tail`]
//! says so.
//!
//! Writer: classic pcap, little-endian, Ethernet, snaplen 262144, microsecond or
//! nanosecond timestamps as the caller chooses (replay writes in the input's
//! resolution so timestamps are carried exactly).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use super::memory::HeapBuf;

/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Snapshot length the writer declares (libpcap's `MAXIMUM_SNAPLEN`).
pub const SNAPLEN: u32 = 262_144;
/// Largest record the reader accepts; larger ones mean a corrupt file.
pub const MAX_RECORD: usize = 1 << 24;

const MAGIC_MICRO: u32 = 0xa1b2_c3d4;
const MAGIC_NANO: u32 = 0xa1b2_3c4d;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BOM: u32 = 0x1a2b_3c4d;
const BLOCK_IDB: u32 = 1;
const BLOCK_OPB: u32 = 2;
const BLOCK_SPB: u32 = 3;
const BLOCK_EPB: u32 = 6;
const OPT_END: u16 = 0;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;

/// Timestamp resolution of a capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TsResolution {
    Micro,
    Nano,
}

/// Why a capture cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("cannot open {path}: {source}")]
    Open { path: String, source: io::Error },
    #[error("capture I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("not a pcap or pcapng file (file is empty)")]
    Empty,
    #[error("not a pcap or pcapng file (magic number {0:#010x})")]
    BadMagic(u32),
    #[error("unsupported capture file version {major}.{minor}")]
    Version { major: u16, minor: u16 },
    #[error("capture link type {0} is not Ethernet (LINKTYPE_ETHERNET = 1); only Ethernet captures are supported")]
    NotEthernet(u32),
    #[error("malformed capture at byte {offset}: {what}")]
    Malformed { offset: u64, what: &'static str },
    #[error("malformed capture at byte {offset}: record of {len} bytes exceeds the {MAX_RECORD}-byte limit")]
    TooLarge { offset: u64, len: u64 },
    #[error("malformed capture at byte {offset}: packet refers to undeclared interface {id}")]
    UnknownInterface { offset: u64, id: u32 },
    #[error(
        "a packet's timestamp ({sec} s after 1970) is past 2106-02-07, the last time a classic pcap file \
         (the output format) can hold"
    )]
    TimestampTooLate { sec: u64 },
}

/// One pcapng interface (Interface Description Block).
#[derive(Clone, Copy, Debug)]
struct Interface {
    linktype: u32,
    snaplen: u32,
    /// Ticks per second numerator/denominator: ns = ticks * mul / div.
    mul: u128,
    div: u128,
    offset_s: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// Classic pcap: big-endian?, nanosecond?
    Classic { big: bool, nano: bool },
    /// pcapng, current section's byte order.
    Ng { big: bool },
}

/// Reads Ethernet frames from a pcap or pcapng stream.
pub struct PcapReader<R: Read> {
    inner: BufReader<R>,
    format: Format,
    /// Bytes consumed so far (for error messages).
    pos: u64,
    /// pcapng interfaces of the current section.
    ifaces: Vec<Interface>,
    resolution: TsResolution,
    /// Reusable record / block body.
    scratch: Vec<u8>,
    /// Frame of the last packet inside `scratch`.
    frame: (usize, usize),
    last_ts_ns: u64,
    last_orig_len: u32,
    truncated: bool,
    done: bool,
    packets: u64,
}

impl PcapReader<File> {
    /// Open a capture file and read its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, PcapError> {
        let path = path.as_ref();
        let f = File::open(path).map_err(|source| PcapError::Open { path: path.display().to_string(), source })?;
        Self::new(f)
    }
}

/// What one attempt to fill a buffer gave.
enum Fill {
    Full,
    /// End of input exactly at the start.
    Eof,
    /// End of input after this many bytes.
    Short,
}

impl<R: Read> PcapReader<R> {
    /// Read a capture from any byte stream (buffered internally).
    pub fn new(reader: R) -> Result<Self, PcapError> {
        let mut r = PcapReader {
            inner: BufReader::with_capacity(1 << 16, reader),
            format: Format::Classic { big: false, nano: false },
            pos: 0,
            ifaces: Vec::new(),
            resolution: TsResolution::Micro,
            scratch: Vec::with_capacity(16 * 1024),
            frame: (0, 0),
            last_ts_ns: 0,
            last_orig_len: 0,
            truncated: false,
            done: false,
            packets: 0,
        };
        r.read_file_header()?;
        Ok(r)
    }

    /// Timestamp resolution of the input: nanosecond if the classic magic says so or
    /// any pcapng interface seen so far is finer than a microsecond.
    pub fn resolution(&self) -> TsResolution {
        self.resolution
    }

    /// True when the input ended in the middle of a record (what came before was kept).
    pub fn truncated_tail(&self) -> bool {
        self.truncated
    }

    /// Original (on-the-wire) length of the last packet read.
    pub fn orig_len(&self) -> u32 {
        self.last_orig_len
    }

    /// Timestamp of the last packet read, nanoseconds since the Unix epoch.
    pub fn ts_ns(&self) -> u64 {
        self.last_ts_ns
    }

    /// Packets read so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Whether the input is pcapng.
    pub fn is_pcapng(&self) -> bool {
        matches!(self.format, Format::Ng { .. })
    }

    /// Read the next packet into `buf` (frame bytes, `ts_ns`, and `seq` = its 0-based
    /// position in the capture); `Ok(None)` at the end.
    ///
    /// The frame is copied whole, whatever its length ([`HeapBuf::set_frame`]).
    pub fn next_into(&mut self, buf: &mut HeapBuf) -> Result<Option<()>, PcapError> {
        match self.next_frame()? {
            Some(_) => {
                let (a, b) = self.frame;
                buf.set_frame(&self.scratch[a..b]);
                buf.ts_ns = self.last_ts_ns;
                buf.seq = self.packets - 1;
                Ok(Some(()))
            }
            None => Ok(None),
        }
    }

    /// Captured length of the last packet read.
    pub fn frame_len(&self) -> usize {
        self.frame.1 - self.frame.0
    }

    /// Read the next packet and borrow its frame; `Ok(None)` at the end.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, PcapError> {
        if self.done {
            return Ok(None);
        }
        let got = match self.format {
            Format::Classic { big, nano } => self.next_classic(big, nano),
            Format::Ng { .. } => self.next_ng(),
        };
        match got {
            Ok(true) => {
                self.packets += 1;
                let (a, b) = self.frame;
                Ok(Some(&self.scratch[a..b]))
            }
            Ok(false) => {
                self.done = true;
                Ok(None)
            }
            Err(e) => {
                self.done = true;
                Err(e)
            }
        }
    }

    /// Read `n` bytes into `scratch[..n]`, growing it only as bytes arrive (a
    /// corrupt length cannot make it allocate more than the input holds).
    fn fill(&mut self, n: usize) -> Result<Fill, PcapError> {
        self.scratch.clear();
        let got = (&mut self.inner).take(n as u64).read_to_end(&mut self.scratch)?;
        self.pos += got as u64;
        Ok(if got == n {
            Fill::Full
        } else if got == 0 {
            Fill::Eof
        } else {
            Fill::Short
        })
    }

    /// Read `n` bytes into `out` (fixed-size header); `Ok(false)` at clean EOF,
    /// truncation noted when EOF comes mid-way.
    fn read_small(&mut self, out: &mut [u8]) -> Result<bool, PcapError> {
        let mut got = 0;
        while got < out.len() {
            match self.inner.read(&mut out[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(PcapError::Io(e)),
            }
        }
        self.pos += got as u64;
        if got == out.len() {
            Ok(true)
        } else {
            if got > 0 {
                self.truncated = true;
            }
            Ok(false)
        }
    }

    fn read_file_header(&mut self) -> Result<(), PcapError> {
        let mut m = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match self.inner.read(&mut m[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(PcapError::Io(e)),
            }
        }
        self.pos += got as u64;
        if got == 0 {
            return Err(PcapError::Empty);
        }
        if got < 4 {
            return Err(PcapError::Malformed { offset: 0, what: "file shorter than any capture header" });
        }
        let le = u32::from_le_bytes(m);
        let be = u32::from_be_bytes(m);
        if le == PCAPNG_SHB {
            return self.read_ng_header();
        }
        let (big, nano) = match (le, be) {
            (MAGIC_MICRO, _) => (false, false),
            (MAGIC_NANO, _) => (false, true),
            (_, MAGIC_MICRO) => (true, false),
            (_, MAGIC_NANO) => (true, true),
            _ => return Err(PcapError::BadMagic(be)),
        };
        let mut h = [0u8; 20];
        if !self.read_small(&mut h)? {
            return Err(PcapError::Malformed { offset: self.pos, what: "pcap file header cut short" });
        }
        let major = rd16(&h[0..2], big);
        let minor = rd16(&h[2..4], big);
        if major != 2 {
            return Err(PcapError::Version { major, minor });
        }
        // Bits 0..28 of the last word are the link type; the upper bits carry FCS info.
        let linktype = rd32(&h[16..20], big) & 0x0fff_ffff;
        if linktype != LINKTYPE_ETHERNET {
            return Err(PcapError::NotEthernet(linktype));
        }
        self.format = Format::Classic { big, nano };
        self.resolution = if nano { TsResolution::Nano } else { TsResolution::Micro };
        Ok(())
    }

    fn next_classic(&mut self, big: bool, nano: bool) -> Result<bool, PcapError> {
        let mut h = [0u8; 16];
        let start = self.pos;
        if !self.read_small(&mut h)? {
            return Ok(false);
        }
        let sec = u64::from(rd32(&h[0..4], big));
        let frac = u64::from(rd32(&h[4..8], big));
        let incl = rd32(&h[8..12], big) as usize;
        let orig = rd32(&h[12..16], big);
        if incl > MAX_RECORD {
            return Err(PcapError::TooLarge { offset: start, len: incl as u64 });
        }
        match self.fill(incl)? {
            Fill::Full => {}
            Fill::Eof | Fill::Short => {
                self.truncated = true;
                return Ok(false);
            }
        }
        // No overflow: sec < 2^32, so sec * 1e9 < 2^62; frac * 1000 < 2^42.
        self.last_ts_ns = sec * 1_000_000_000 + if nano { frac } else { frac * 1000 };
        self.last_orig_len = orig;
        self.frame = (0, incl);
        Ok(true)
    }

    /// The first Section Header Block (its type word already read).
    fn read_ng_header(&mut self) -> Result<(), PcapError> {
        self.format = Format::Ng { big: false };
        let mut len_raw = [0u8; 4];
        if !self.read_small(&mut len_raw)? {
            return Err(PcapError::Malformed { offset: 0, what: "pcapng section header cut short" });
        }
        self.read_shb_rest(0, len_raw)?;
        // Read up to the first interface so resolution() is known before the first packet.
        loop {
            let start = self.pos;
            let mut h = [0u8; 8];
            if !self.read_small(&mut h)? {
                self.done = true;
                return Ok(());
            }
            let big = self.ng_big();
            let ty = rd32(&h[0..4], big);
            if ty == PCAPNG_SHB {
                self.read_shb_rest(start, [h[4], h[5], h[6], h[7]])?;
                continue;
            }
            let Some(body_len) = self.read_block_body(start, rd32(&h[4..8], big))? else {
                self.done = true;
                return Ok(());
            };
            match ty {
                BLOCK_IDB => {
                    self.parse_idb(start, body_len)?;
                    return Ok(());
                }
                BLOCK_EPB | BLOCK_SPB | BLOCK_OPB => {
                    let id = if ty == BLOCK_OPB && body_len >= 2 {
                        u32::from(rd16(&self.scratch[0..2], big))
                    } else if body_len >= 4 && ty == BLOCK_EPB {
                        rd32(&self.scratch[0..4], big)
                    } else {
                        0
                    };
                    return Err(PcapError::UnknownInterface { offset: start, id });
                }
                _ => {}
            }
        }
    }

    fn ng_big(&self) -> bool {
        matches!(self.format, Format::Ng { big: true })
    }

    /// A Section Header Block whose type and length words (at `start`) have been
    /// read: byte order, version, and the rest of the block skipped. Starts a new set
    /// of interfaces.
    fn read_shb_rest(&mut self, start: u64, len_raw: [u8; 4]) -> Result<(), PcapError> {
        let mut m = [0u8; 4];
        if !self.read_small(&mut m)? {
            self.truncated = true;
            return Err(PcapError::Malformed { offset: start, what: "pcapng section header cut short" });
        }
        let big = match (u32::from_le_bytes(m), u32::from_be_bytes(m)) {
            (PCAPNG_BOM, _) => false,
            (_, PCAPNG_BOM) => true,
            _ => return Err(PcapError::Malformed { offset: start + 8, what: "pcapng byte-order magic is wrong" }),
        };
        self.format = Format::Ng { big };
        self.ifaces.clear();
        let total = rd32(&len_raw, big);
        if total < 28 || !total.is_multiple_of(4) {
            return Err(PcapError::Malformed { offset: start, what: "pcapng section header length is invalid" });
        }
        if total as usize > MAX_RECORD {
            return Err(PcapError::TooLarge { offset: start, len: u64::from(total) });
        }
        let rest = total as usize - 12;
        match self.fill(rest)? {
            Fill::Full => {}
            _ => {
                self.truncated = true;
                return Err(PcapError::Malformed { offset: start, what: "pcapng section header cut short" });
            }
        }
        let major = rd16(&self.scratch[0..2], big);
        let minor = rd16(&self.scratch[2..4], big);
        if major != 1 {
            return Err(PcapError::Version { major, minor });
        }
        if rd32(&self.scratch[rest - 4..rest], big) != total {
            return Err(PcapError::Malformed { offset: start, what: "pcapng block lengths disagree" });
        }
        Ok(())
    }

    /// Read a block's body (after its 8-byte head) into scratch, check the trailing
    /// length; returns the body length, or `None` when the input ends inside it.
    fn read_block_body(&mut self, start: u64, total: u32) -> Result<Option<usize>, PcapError> {
        if total < 12 || !total.is_multiple_of(4) {
            return Err(PcapError::Malformed { offset: start, what: "pcapng block length is invalid" });
        }
        if total as usize > MAX_RECORD {
            return Err(PcapError::TooLarge { offset: start, len: u64::from(total) });
        }
        let rest = total as usize - 8;
        match self.fill(rest)? {
            Fill::Full => {}
            _ => {
                self.truncated = true;
                return Ok(None);
            }
        }
        let body = rest - 4;
        if rd32(&self.scratch[body..rest], self.ng_big()) != total {
            return Err(PcapError::Malformed { offset: start, what: "pcapng block lengths disagree" });
        }
        Ok(Some(body))
    }

    fn parse_idb(&mut self, start: u64, body_len: usize) -> Result<(), PcapError> {
        let big = self.ng_big();
        let b = &self.scratch[..body_len];
        if b.len() < 8 {
            return Err(PcapError::Malformed { offset: start, what: "pcapng interface block too short" });
        }
        let mut iface = Interface {
            linktype: u32::from(rd16(&b[0..2], big)),
            snaplen: rd32(&b[4..8], big),
            mul: 1000,
            div: 1,
            offset_s: 0,
        };
        let mut opts = &b[8..];
        while opts.len() >= 4 {
            let code = rd16(&opts[0..2], big);
            let len = usize::from(rd16(&opts[2..4], big));
            if code == OPT_END {
                break;
            }
            let padded = (len + 3) & !3;
            if 4 + padded > opts.len() {
                return Err(PcapError::Malformed { offset: start, what: "pcapng option runs past its block" });
            }
            let v = &opts[4..4 + len];
            match (code, len) {
                (OPT_IF_TSRESOL, 1) => {
                    let r = v[0];
                    let e = u32::from(r & 0x7f);
                    if r & 0x80 == 0 {
                        // 10^-e seconds per tick.
                        if e > 19 {
                            return Err(PcapError::Malformed { offset: start, what: "if_tsresol out of range" });
                        }
                        if e <= 9 {
                            iface.mul = 10u128.pow(9 - e);
                            iface.div = 1;
                        } else {
                            iface.mul = 1;
                            iface.div = 10u128.pow(e - 9);
                        }
                    } else {
                        // 2^-e seconds per tick.
                        if e > 63 {
                            return Err(PcapError::Malformed { offset: start, what: "if_tsresol out of range" });
                        }
                        iface.mul = 1_000_000_000;
                        iface.div = 1u128 << e;
                    }
                }
                (OPT_IF_TSOFFSET, 8) => {
                    let raw = if big {
                        u64::from_be_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]])
                    } else {
                        u64::from_le_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]])
                    };
                    iface.offset_s = raw as i64;
                }
                _ => {}
            }
            opts = &opts[4 + padded..];
        }
        // Finer than a microsecond per tick: nanosecond output keeps it (as well as we can).
        if iface.div > 1 || iface.mul < 1000 {
            self.resolution = TsResolution::Nano;
        }
        self.ifaces.push(iface);
        Ok(())
    }

    fn iface(&self, start: u64, id: u32) -> Result<Interface, PcapError> {
        let i = *self.ifaces.get(id as usize).ok_or(PcapError::UnknownInterface { offset: start, id })?;
        if i.linktype != LINKTYPE_ETHERNET {
            return Err(PcapError::NotEthernet(i.linktype));
        }
        Ok(i)
    }

    fn next_ng(&mut self) -> Result<bool, PcapError> {
        loop {
            let start = self.pos;
            let mut h = [0u8; 8];
            if !self.read_small(&mut h)? {
                return Ok(false);
            }
            let big = self.ng_big();
            let ty = rd32(&h[0..4], big);
            if ty == PCAPNG_SHB {
                match self.read_shb_rest(start, [h[4], h[5], h[6], h[7]]) {
                    Ok(()) => continue,
                    // A section header cut short at the very end is a truncated tail.
                    Err(_) if self.truncated => return Ok(false),
                    Err(e) => return Err(e),
                }
            }
            let Some(body_len) = self.read_block_body(start, rd32(&h[4..8], big))? else {
                return Ok(false);
            };
            let b = &self.scratch[..body_len];
            let (ticks, cap, orig, data_off, iface) = match ty {
                BLOCK_IDB => {
                    self.parse_idb(start, body_len)?;
                    continue;
                }
                BLOCK_EPB => {
                    if b.len() < 20 {
                        return Err(PcapError::Malformed { offset: start, what: "pcapng packet block too short" });
                    }
                    let id = rd32(&b[0..4], big);
                    let ticks = (u64::from(rd32(&b[4..8], big)) << 32) | u64::from(rd32(&b[8..12], big));
                    let (cap, orig) = (rd32(&b[12..16], big) as usize, rd32(&b[16..20], big));
                    (ticks, cap, orig, 20, self.iface(start, id)?)
                }
                BLOCK_OPB => {
                    if b.len() < 20 {
                        return Err(PcapError::Malformed { offset: start, what: "pcapng packet block too short" });
                    }
                    let id = u32::from(rd16(&b[0..2], big));
                    let ticks = (u64::from(rd32(&b[4..8], big)) << 32) | u64::from(rd32(&b[8..12], big));
                    let (cap, orig) = (rd32(&b[12..16], big) as usize, rd32(&b[16..20], big));
                    (ticks, cap, orig, 20, self.iface(start, id)?)
                }
                BLOCK_SPB => {
                    if b.len() < 4 {
                        return Err(PcapError::Malformed { offset: start, what: "pcapng packet block too short" });
                    }
                    let iface = self.iface(start, 0)?;
                    let orig = rd32(&b[0..4], big);
                    // No captured length: the smaller of the original length and the snaplen,
                    // bounded by the block. No timestamp: keep the previous packet's.
                    let mut cap = (orig as usize).min(b.len() - 4);
                    if iface.snaplen != 0 {
                        cap = cap.min(iface.snaplen as usize);
                    }
                    self.frame = (4, 4 + cap);
                    self.last_orig_len = orig;
                    return Ok(true);
                }
                _ => continue,
            };
            if cap > body_len - data_off {
                return Err(PcapError::Malformed { offset: start, what: "packet length runs past its block" });
            }
            let ns = (i128::from(ticks) * iface.mul as i128) / iface.div as i128
                + i128::from(iface.offset_s) * 1_000_000_000;
            self.last_ts_ns = ns.clamp(0, i128::from(u64::MAX)) as u64;
            self.last_orig_len = orig;
            self.frame = (data_off, data_off + cap);
            return Ok(true);
        }
    }
}

#[inline]
fn rd16(b: &[u8], big: bool) -> u16 {
    let a = [b[0], b[1]];
    if big { u16::from_be_bytes(a) } else { u16::from_le_bytes(a) }
}

#[inline]
fn rd32(b: &[u8], big: bool) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if big { u32::from_be_bytes(a) } else { u32::from_le_bytes(a) }
}

/// Writes Ethernet frames to a classic pcap stream (little-endian, buffered).
pub struct PcapWriter<W: Write> {
    inner: BufWriter<W>,
    resolution: TsResolution,
    packets: u64,
    bytes: u64,
}

impl PcapWriter<File> {
    /// Create (truncate) a capture file and write its header.
    pub fn create(path: impl AsRef<Path>, resolution: TsResolution) -> Result<Self, PcapError> {
        let path = path.as_ref();
        let f = File::create(path).map_err(|source| PcapError::Open { path: path.display().to_string(), source })?;
        Self::new(f, resolution)
    }
}

impl<W: Write> PcapWriter<W> {
    /// Start a capture on any byte sink: writes the 24-byte file header.
    pub fn new(writer: W, resolution: TsResolution) -> Result<Self, PcapError> {
        let mut inner = BufWriter::with_capacity(1 << 18, writer);
        let magic = match resolution {
            TsResolution::Micro => MAGIC_MICRO,
            TsResolution::Nano => MAGIC_NANO,
        };
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&magic.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone = 0, sigfigs = 0.
        h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        inner.write_all(&h)?;
        Ok(PcapWriter { inner, resolution, packets: 0, bytes: 0 })
    }

    /// The timestamp resolution this writer records.
    pub fn resolution(&self) -> TsResolution {
        self.resolution
    }

    /// Append one frame (cut to the snaplen if longer; the original length is kept).
    ///
    /// Timestamps past 2^32 seconds cannot be represented and are an error.
    pub fn write(&mut self, ts_ns: u64, frame: &[u8]) -> Result<(), PcapError> {
        let sec = ts_ns / 1_000_000_000;
        let sub = ts_ns % 1_000_000_000;
        let Ok(sec) = u32::try_from(sec) else {
            return Err(PcapError::TimestampTooLate { sec });
        };
        let frac = match self.resolution {
            TsResolution::Micro => sub / 1000,
            TsResolution::Nano => sub,
        } as u32;
        let orig = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let incl = orig.min(SNAPLEN);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&sec.to_le_bytes());
        h[4..8].copy_from_slice(&frac.to_le_bytes());
        h[8..12].copy_from_slice(&incl.to_le_bytes());
        h[12..16].copy_from_slice(&orig.to_le_bytes());
        self.inner.write_all(&h)?;
        self.inner.write_all(&frame[..incl as usize])?;
        self.packets += 1;
        self.bytes += u64::from(incl);
        Ok(())
    }

    /// Frames written so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Frame bytes written so far (record headers excluded).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Flush buffered records to the sink.
    pub fn flush(&mut self) -> Result<(), PcapError> {
        self.inner.flush()?;
        Ok(())
    }

    /// Flush and hand back the sink.
    pub fn into_inner(self) -> Result<W, PcapError> {
        self.inner.into_inner().map_err(|e| PcapError::Io(e.into_error()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::PacketBuf;
    use proptest::prelude::*;

    fn frame(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    /// The last second a classic pcap holds is written; the next one is a clear error
    /// (said once: no I/O error under it repeating the words).
    #[test]
    fn timestamps_past_2106_are_a_clear_error() {
        let mut w = PcapWriter::new(Vec::new(), TsResolution::Nano).unwrap();
        w.write(u64::from(u32::MAX) * 1_000_000_000 + 999_999_999, &frame(60, 1)).unwrap();
        let e = w.write((u64::from(u32::MAX) + 1) * 1_000_000_000, &frame(60, 2)).unwrap_err();
        assert!(matches!(e, PcapError::TimestampTooLate { sec: 4_294_967_296 }), "{e:?}");
        assert!(e.to_string().contains("past 2106-02-07"));
        assert!(std::error::Error::source(&e).is_none());
    }

    fn read_all<R: Read>(r: &mut PcapReader<R>) -> Result<Vec<(u64, Vec<u8>)>, PcapError> {
        let mut out = Vec::new();
        let mut b = HeapBuf::new();
        while r.next_into(&mut b)?.is_some() {
            out.push((b.ts_ns, b.data().to_vec()));
        }
        Ok(out)
    }

    #[test]
    fn round_trip_both_resolutions() {
        for res in [TsResolution::Micro, TsResolution::Nano] {
            let pkts: Vec<(u64, Vec<u8>)> = vec![
                (1_700_000_000_123_456_000, frame(60, 1)),
                (1_700_000_000_123_457_000, frame(1514, 2)),
                (1_700_000_001_000_000_000, frame(14, 3)),
                (5, frame(0, 0)),
            ];
            let mut w = PcapWriter::new(Vec::new(), res).unwrap();
            for (ts, f) in &pkts {
                w.write(*ts, f).unwrap();
            }
            assert_eq!(w.packets(), 4);
            let bytes = w.into_inner().unwrap();
            assert_eq!(bytes.len(), 24 + 4 * 16 + 60 + 1514 + 14);
            let mut r = PcapReader::new(&bytes[..]).unwrap();
            assert_eq!(r.resolution(), res);
            let mut b = HeapBuf::new();
            let mut r2 = PcapReader::new(&bytes[..]).unwrap();
            for i in 0..4 {
                assert!(r2.next_into(&mut b).unwrap().is_some());
                assert_eq!(b.seq, i);
            }
            assert!(r2.next_into(&mut b).unwrap().is_none());
            let got = read_all(&mut r).unwrap();
            let want: Vec<(u64, Vec<u8>)> = match res {
                TsResolution::Nano => pkts.clone(),
                TsResolution::Micro => pkts.iter().map(|(t, f)| (t / 1000 * 1000, f.clone())).collect(),
            };
            assert_eq!(got, want);
            assert!(!r.truncated_tail());
        }
    }

    #[test]
    fn nanosecond_timestamps_survive_only_in_nano() {
        let ts = 1_700_000_000_000_000_789;
        for (res, want) in [(TsResolution::Nano, ts), (TsResolution::Micro, ts - 789)] {
            let mut w = PcapWriter::new(Vec::new(), res).unwrap();
            w.write(ts, &frame(60, 9)).unwrap();
            let bytes = w.into_inner().unwrap();
            let mut r = PcapReader::new(&bytes[..]).unwrap();
            assert!(r.next_frame().unwrap().is_some());
            assert_eq!(r.ts_ns(), want);
        }
    }

    /// A classic pcap built by hand in either byte order.
    fn classic(big: bool, nano: bool, linktype: u32, recs: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let w32 = |v: u32| if big { v.to_be_bytes() } else { v.to_le_bytes() };
        let w16 = |v: u16| if big { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut f = Vec::new();
        f.extend(w32(if nano { MAGIC_NANO } else { MAGIC_MICRO }));
        f.extend(w16(2));
        f.extend(w16(4));
        f.extend(w32(0));
        f.extend(w32(0));
        f.extend(w32(65535));
        f.extend(w32(linktype));
        for (s, frac, d) in recs {
            f.extend(w32(*s));
            f.extend(w32(*frac));
            f.extend(w32(d.len() as u32));
            f.extend(w32(d.len() as u32 + 4));
            f.extend_from_slice(d);
        }
        f
    }

    #[test]
    fn big_endian_classic_micro_and_nano() {
        let a = frame(64, 7);
        let b = frame(100, 8);
        for nano in [false, true] {
            let f = classic(true, nano, 1, &[(10, 20, &a), (11, 999, &b)]);
            let mut r = PcapReader::new(&f[..]).unwrap();
            assert_eq!(r.resolution(), if nano { TsResolution::Nano } else { TsResolution::Micro });
            let got = read_all(&mut r).unwrap();
            let m = if nano { 1 } else { 1000 };
            assert_eq!(got, vec![(10_000_000_000 + 20 * m, a.clone()), (11_000_000_000 + 999 * m, b.clone())]);
            assert_eq!(r.orig_len(), 104);
        }
    }

    #[test]
    fn non_ethernet_classic_is_rejected() {
        for lt in [0u32, 101, 113, 228] {
            let f = classic(false, false, lt, &[(1, 1, &[0x45; 40])]);
            match PcapReader::new(&f[..]) {
                Err(PcapError::NotEthernet(x)) => assert_eq!(x, lt),
                Err(e) => panic!("wrong error {e}"),
                Ok(_) => panic!("linktype {lt} accepted"),
            }
        }
        let e = PcapReader::new(&classic(true, false, 113, &[])[..]).err().unwrap();
        assert!(e.to_string().contains("link type 113 is not Ethernet"), "{e}");
    }

    #[test]
    fn empty_capture_and_empty_file() {
        let f = classic(false, false, 1, &[]);
        let mut r = PcapReader::new(&f[..]).unwrap();
        assert!(r.next_frame().unwrap().is_none());
        assert!(!r.truncated_tail());
        assert!(matches!(PcapReader::new(&[][..]), Err(PcapError::Empty)));
        assert!(matches!(PcapReader::new(&[1, 2, 3, 4, 5][..]), Err(PcapError::BadMagic(_))));
        assert!(matches!(PcapReader::new(&[0xd4, 0xc3][..]), Err(PcapError::Malformed { .. })));
    }

    #[test]
    fn truncated_tail_keeps_what_was_read() {
        let a = frame(60, 1);
        let b = frame(80, 2);
        let full = classic(false, false, 1, &[(1, 0, &a), (2, 0, &b)]);
        // Cut inside the second record's data, then inside its header.
        for cut in [full.len() - 1, full.len() - 80, full.len() - 80 - 3] {
            let mut r = PcapReader::new(&full[..cut]).unwrap();
            let got = read_all(&mut r).unwrap();
            assert_eq!(got.len(), 1, "cut {cut}");
            assert_eq!(got[0].1, a);
            assert!(r.truncated_tail(), "cut {cut}");
        }
        // Cut exactly at a record boundary: not truncated.
        let mut r = PcapReader::new(&full[..full.len() - 80 - 16]).unwrap();
        assert_eq!(read_all(&mut r).unwrap().len(), 1);
        assert!(!r.truncated_tail());
    }

    #[test]
    fn oversized_record_is_an_error_not_an_allocation() {
        let mut f = classic(false, false, 1, &[]);
        f.extend(1u32.to_le_bytes());
        f.extend(0u32.to_le_bytes());
        f.extend(0xffff_fff0u32.to_le_bytes());
        f.extend(0xffff_fff0u32.to_le_bytes());
        let mut r = PcapReader::new(&f[..]).unwrap();
        let e = r.next_frame().err().unwrap();
        assert!(matches!(e, PcapError::TooLarge { offset: 24, .. }), "{e}");
        // Reading after an error ends cleanly.
        assert!(r.next_frame().unwrap().is_none());
    }

    #[test]
    fn frames_longer_than_a_heap_buf_are_read_whole() {
        let big = frame(20_000, 5);
        let mut w = PcapWriter::new(Vec::new(), TsResolution::Micro).unwrap();
        w.write(1, &big).unwrap();
        let bytes = w.into_inner().unwrap();
        let mut r = PcapReader::new(&bytes[..]).unwrap();
        let mut b = HeapBuf::new();
        assert!(r.next_into(&mut b).unwrap().is_some());
        assert_eq!(r.frame_len(), 20_000);
        assert_eq!(b.data(), &big[..]);
    }

    /// pcapng building blocks, in either byte order.
    struct Ng {
        big: bool,
        out: Vec<u8>,
    }

    impl Ng {
        fn w32(&self, v: u32) -> [u8; 4] {
            if self.big { v.to_be_bytes() } else { v.to_le_bytes() }
        }
        fn w16(&self, v: u16) -> [u8; 2] {
            if self.big { v.to_be_bytes() } else { v.to_le_bytes() }
        }
        fn block(&mut self, ty: u32, body: &[u8]) {
            let mut body = body.to_vec();
            while !body.len().is_multiple_of(4) {
                body.push(0);
            }
            let total = body.len() as u32 + 12;
            let (t, l) = (self.w32(ty), self.w32(total));
            self.out.extend(t);
            self.out.extend(l);
            self.out.extend(body);
            self.out.extend(l);
        }
        fn shb(big: bool) -> Self {
            let mut n = Ng { big, out: Vec::new() };
            n.push_shb();
            n
        }
        fn push_shb(&mut self) {
            let mut b = Vec::new();
            b.extend(self.w32(PCAPNG_BOM));
            b.extend(self.w16(1));
            b.extend(self.w16(0));
            b.extend((-1i64).to_le_bytes());
            // An unknown option (shb_userappl) then opt_endofopt.
            b.extend(self.w16(4));
            b.extend(self.w16(3));
            b.extend(b"abc\0");
            b.extend([0u8; 4]);
            self.block(PCAPNG_SHB, &b);
        }
        fn idb(&mut self, linktype: u16, tsresol: Option<u8>, tsoffset: Option<i64>) {
            let mut b = Vec::new();
            b.extend(self.w16(linktype));
            b.extend(self.w16(0));
            b.extend(self.w32(0));
            // if_name first: options the reader does not know are skipped.
            b.extend(self.w16(2));
            b.extend(self.w16(5));
            b.extend(b"eth0\0\0\0\0");
            if let Some(r) = tsresol {
                b.extend(self.w16(OPT_IF_TSRESOL));
                b.extend(self.w16(1));
                b.extend([r, 0, 0, 0]);
            }
            if let Some(o) = tsoffset {
                b.extend(self.w16(OPT_IF_TSOFFSET));
                b.extend(self.w16(8));
                b.extend(if self.big { o.to_be_bytes() } else { o.to_le_bytes() });
            }
            b.extend([0u8; 4]);
            self.block(BLOCK_IDB, &b);
        }
        fn epb(&mut self, iface: u32, ticks: u64, data: &[u8]) {
            let mut b = Vec::new();
            b.extend(self.w32(iface));
            b.extend(self.w32((ticks >> 32) as u32));
            b.extend(self.w32(ticks as u32));
            b.extend(self.w32(data.len() as u32));
            b.extend(self.w32(data.len() as u32));
            b.extend(data);
            self.block(BLOCK_EPB, &b);
        }
        fn opb(&mut self, iface: u16, ticks: u64, data: &[u8]) {
            let mut b = Vec::new();
            b.extend(self.w16(iface));
            b.extend(self.w16(0));
            b.extend(self.w32((ticks >> 32) as u32));
            b.extend(self.w32(ticks as u32));
            b.extend(self.w32(data.len() as u32));
            b.extend(self.w32(data.len() as u32));
            b.extend(data);
            self.block(BLOCK_OPB, &b);
        }
        fn spb(&mut self, data: &[u8]) {
            let mut b = Vec::new();
            b.extend(self.w32(data.len() as u32));
            b.extend(data);
            self.block(BLOCK_SPB, &b);
        }
    }

    #[test]
    fn pcapng_both_byte_orders_every_packet_block() {
        for big in [false, true] {
            let (a, b, c, d) = (frame(61, 1), frame(70, 2), frame(99, 3), frame(64, 4));
            let mut n = Ng::shb(big);
            n.block(0x0000_0bad, &[1, 2, 3, 4, 5]); // unknown (custom-ish) block: skipped
            n.idb(1, None, None); // microseconds
            n.idb(1, Some(9), None); // nanoseconds
            n.idb(1, Some(0x80 | 20), Some(100)); // 2^-20 s ticks, +100 s
            n.block(5, &[0; 16]); // Interface Statistics Block: skipped
            n.epb(0, 1_700_000_000_000_001, &a);
            n.epb(1, 1_700_000_000_000_000_002, &b);
            n.opb(2, 3 << 20, &c);
            n.spb(&d);
            let mut r = PcapReader::new(&n.out[..]).unwrap();
            // The first interface is microseconds; a later nanosecond one raises it.
            assert_eq!(r.resolution(), TsResolution::Micro);
            assert!(r.is_pcapng());
            let got = read_all(&mut r).unwrap();
            assert_eq!(r.resolution(), TsResolution::Nano);
            let want = vec![
                (1_700_000_000_000_001_000, a),
                (1_700_000_000_000_000_002, b),
                (103_000_000_000, c.clone()),
                (103_000_000_000, d),
            ];
            assert_eq!(got, want, "big={big}");
            assert!(!r.truncated_tail());
        }
    }

    #[test]
    fn pcapng_new_section_changes_byte_order_and_interfaces() {
        let mut n = Ng::shb(false);
        n.idb(1, Some(9), None);
        n.epb(0, 5, &frame(60, 1));
        let mut m = Ng::shb(true);
        m.idb(1, None, None);
        m.epb(0, 7, &frame(60, 2));
        n.out.extend(m.out);
        let mut r = PcapReader::new(&n.out[..]).unwrap();
        assert_eq!(r.resolution(), TsResolution::Nano);
        let got = read_all(&mut r).unwrap();
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![5, 7000]);
    }

    #[test]
    fn pcapng_non_ethernet_and_bad_interface() {
        let mut n = Ng::shb(false);
        n.idb(1, None, None);
        n.idb(113, None, None);
        n.epb(0, 1, &frame(60, 0));
        n.epb(1, 2, &frame(60, 0));
        let mut r = PcapReader::new(&n.out[..]).unwrap();
        assert!(r.next_frame().unwrap().is_some());
        assert!(matches!(r.next_frame(), Err(PcapError::NotEthernet(113))));

        let mut n = Ng::shb(true);
        n.idb(1, None, None);
        n.epb(3, 1, &frame(60, 0));
        let mut r = PcapReader::new(&n.out[..]).unwrap();
        assert!(matches!(r.next_frame(), Err(PcapError::UnknownInterface { id: 3, .. })));

        // A packet before any interface.
        let mut n = Ng::shb(false);
        n.epb(0, 1, &frame(60, 0));
        assert!(matches!(PcapReader::new(&n.out[..]), Err(PcapError::UnknownInterface { id: 0, .. })));
    }

    #[test]
    fn pcapng_empty_and_truncated() {
        let n = Ng::shb(false);
        let mut r = PcapReader::new(&n.out[..]).unwrap();
        assert!(r.next_frame().unwrap().is_none());

        let mut n = Ng::shb(false);
        n.idb(1, None, None);
        n.epb(0, 1, &frame(60, 0));
        n.epb(0, 2, &frame(60, 1));
        for cut in [n.out.len() - 1, n.out.len() - 40, n.out.len() - 90] {
            let mut r = PcapReader::new(&n.out[..cut]).unwrap();
            assert_eq!(read_all(&mut r).unwrap().len(), 1, "cut {cut}");
            assert!(r.truncated_tail());
        }
    }

    #[test]
    fn pcapng_inconsistent_lengths_are_errors() {
        let mut n = Ng::shb(false);
        n.idb(1, None, None);
        n.epb(0, 1, &frame(60, 0));
        let last = n.out.len() - 4;
        n.out[last] ^= 4; // trailing length disagrees with the leading one
        let mut r = PcapReader::new(&n.out[..]).unwrap();
        assert!(matches!(r.next_frame(), Err(PcapError::Malformed { .. })));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(mut r) = PcapReader::new(&data[..]) {
                let mut b = HeapBuf::new();
                let mut n = 0;
                while let Ok(Some(())) = r.next_into(&mut b) {
                    n += 1;
                    prop_assert!(n <= data.len());
                }
            }
        }

        /// Valid headers followed by garbage: reaches the record parser.
        #[test]
        fn garbage_after_valid_headers_never_panics(
            kind in 0u8..4,
            data in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let mut f = match kind {
                0 => classic(false, false, 1, &[]),
                1 => classic(true, true, 1, &[]),
                2 => { let mut n = Ng::shb(false); n.idb(1, Some(9), None); n.out }
                _ => { let mut n = Ng::shb(true); n.idb(1, None, None); n.out }
            };
            f.extend(&data);
            if let Ok(mut r) = PcapReader::new(&f[..]) {
                let mut b = HeapBuf::new();
                while let Ok(Some(())) = r.next_into(&mut b) {}
            }
        }
    }
}
