//! The pipeline benches' workload, shared by `benches/pipeline.rs` and
//! `examples/pipeline_count.rs`: a config with one VIP and N backends, a 64-byte
//! TCP ACK template, flow ids written into it, a pseudo-random walk over flows, and
//! the loops that reset the buffers and create the flows.

use common::config::Config;
use common::snapshot::Snapshot;
use dataplane::pipeline::{Pipeline, Verdict};
use dataplane::port::memory::HeapBuf;
use dataplane::port::{BURST, PacketBuf};

const CONFIG: &str = r#"
[node]
mac = "02:00:00:00:00:01"
gateway_mac = "02:00:00:00:00:fe"
ipv4 = "10.0.0.2"
ipv6 = "fd00::2"
[dataplane]
flow_table_capacity = 4000000
[[vip]]
name = "web"
address = "198.51.100.10"
port = 80
protocol = "tcp"
forwarding = "gre"
"#;

pub fn config(fwd: &str, backends: usize) -> Config {
    let mut s = CONFIG.replace("forwarding = \"gre\"", &format!("forwarding = \"{fwd}\""));
    for i in 0..backends {
        s.push_str(&format!("[[vip.backend]]\naddress = \"10.1.{}.{}\"\n", i / 250, 1 + i % 250));
    }
    Config::from_toml_str(&s).unwrap()
}

/// A 64-byte Ethernet/IPv4/TCP ACK from 172.16.0.1:1024 to the VIP.
pub fn template() -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xaa]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&46u16.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&[172, 16, 0, 1]);
    ip[16..20].copy_from_slice(&[198, 51, 100, 10]);
    let tcp = &mut f[34..54];
    tcp[0..2].copy_from_slice(&1024u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x10;
    f
}

/// Make `frame` belong to flow `id` (client address and port).
#[inline]
pub fn set_flow(frame: &mut [u8], id: u32) {
    let a = 0xac10_0000u32 | (id >> 6);
    frame[26..30].copy_from_slice(&a.to_be_bytes());
    frame[34..36].copy_from_slice(&(1024 + (id & 63) as u16).to_be_bytes());
}

/// A fixed pseudo-random permutation walk over `n` flows.
pub struct Walk {
    pub x: u64,
    pub n: u32,
}

impl Walk {
    #[inline]
    pub fn next(&mut self) -> u32 {
        self.x = self.x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.x >> 33) % u64::from(self.n)) as u32
    }
}

/// Reset every buffer from the template (what a NIC's DMA would do) as flow
/// `next_id()`.
#[inline]
pub fn refill(bufs: &mut [HeapBuf], tpl: &[u8], mut next_id: impl FnMut() -> u32) {
    for b in bufs {
        b.set_frame(tpl);
        set_flow(b.data_mut(), next_id());
    }
}

/// Send one packet of each of flows `0..flows` through `pipe`, creating them.
pub fn create_flows(pipe: &mut Pipeline, snap: &Snapshot, bufs: &mut [HeapBuf], tpl: &[u8], flows: u32) {
    let mut verdicts = [Verdict::Drop; BURST];
    for chunk in (0..flows).collect::<Vec<_>>().chunks(BURST) {
        let n = chunk.len();
        let mut ids = chunk.iter().copied();
        refill(&mut bufs[..n], tpl, || ids.next().unwrap_or(0));
        pipe.process(snap, 1, &mut bufs[..n], &mut verdicts[..n]);
    }
}
