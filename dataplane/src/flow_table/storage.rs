//! Where a sub-table's buckets live: an anonymous memory mapping, on transparent
//! huge pages where it is big enough.
//!
//! A big table read at random misses the TLB on almost every lookup when it sits on
//! 4 KiB pages (126 MB of IPv4 buckets is 30,000 pages; the second-level TLB holds a
//! few thousand). With 2 MiB pages the same table is 60 pages. Transparent huge
//! pages are often in `madvise` mode, so the mapping asks for them with
//! `madvise(MADV_HUGEPAGE)`:
//!
//! - the buckets start on a 2 MiB boundary (the mapping has 2 MiB of slack to
//!   align them; the slack is never touched, so it costs address space only);
//! - every whole 2 MiB of buckets is advised; the tail (less than 2 MiB, e.g.
//!   167 KiB of the 126 MB IPv4 table at capacity 4M) stays on 4 KiB pages, so the
//!   table holds exactly its buckets rounded up to 4 KiB and the per-flow budget holds;
//! - every page is written once now, so the packet path never takes a page fault.
//!
//! Tables under 2 MiB are mapped without advice. If the advice fails (a kernel
//! without transparent huge pages) the table works the same on 4 KiB pages and
//! [`BucketMem::huge_pages`] says so.
//!
//! The buckets are plain old data (`zerocopy::FromBytes`): the mapping's zeroed
//! bytes are empty buckets, and the bytes are seen as buckets through a checked
//! cast, with no `unsafe` here.

use std::marker::PhantomData;

use memmap2::{MmapMut, MmapOptions};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Transparent huge page size (x86-64 and arm64 with 4 KiB base pages).
pub(super) const HUGE_PAGE: usize = 2 << 20;
/// Base page size assumed for rounding and pre-touching (a smaller stride than the
/// real page size only writes more often).
const PAGE: usize = 4096;

/// `n` buckets of type `B` in an anonymous mapping.
pub(super) struct BucketMem<B> {
    map: MmapMut,
    /// Start of the buckets in `map` (2 MiB aligned in memory when advised).
    offset: usize,
    /// Bytes of buckets: `n * size_of::<B>()`.
    len: usize,
    /// Bytes from `offset` advised as huge pages (0 if none or if the advice failed).
    huge_len: usize,
    _buckets: PhantomData<B>,
}

impl<B: FromBytes + IntoBytes + KnownLayout + Immutable> BucketMem<B> {
    /// `n` (at least 1) empty buckets, every page written; an error naming the size
    /// when the memory cannot be mapped.
    pub(super) fn new(n: usize) -> Result<Self, String> {
        let size = size_of::<B>();
        assert!(size > 0 && size.is_multiple_of(align_of::<B>()) && align_of::<B>() <= PAGE);
        let len = n.max(1).checked_mul(size).ok_or_else(|| format!("{n} buckets of {size} bytes overflow"))?;
        let advise = len >= HUGE_PAGE;
        // Slack to align the buckets on a huge page boundary.
        let map_len = len.next_multiple_of(PAGE) + if advise { HUGE_PAGE } else { 0 };
        let mut map =
            MmapOptions::new().len(map_len).map_anon().map_err(|e| format!("cannot map {map_len} bytes: {e}"))?;
        let base = map.as_ptr().addr();
        let offset = if advise { base.next_multiple_of(HUGE_PAGE) - base } else { 0 };
        let whole = len / HUGE_PAGE * HUGE_PAGE;
        let huge_len = if advise && advise_huge(&map, offset, whole) { whole } else { 0 };
        // Pre-touch: the first write to each page takes its fault (a huge page's
        // first write takes the whole 2 MiB) now rather than on the packet path.
        for page in map[offset..offset + len.next_multiple_of(PAGE)].chunks_mut(PAGE) {
            page[0] = 0;
        }
        let mem = BucketMem { map, offset, len, huge_len, _buckets: PhantomData };
        assert_eq!(mem.buckets().len(), n.max(1), "bucket bytes are not aligned or sized for the bucket type");
        Ok(mem)
    }

    /// All the buckets (sweeps, iteration). The cast checks only the alignment and
    /// length, which `new` checked already, so it never falls back to the empty slice.
    #[inline(always)]
    pub(super) fn buckets(&self) -> &[B] {
        <[B]>::ref_from_bytes(&self.map[self.offset..self.offset + self.len]).unwrap_or(&[])
    }

    /// Bucket `i`, for `i` below the bucket count (the packet path: one bucket's
    /// bytes cast alone, a range and an alignment check; `None` never happens there).
    #[inline(always)]
    pub(super) fn bucket(&self, i: usize) -> Option<&B> {
        let start = self.offset + i * size_of::<B>();
        B::ref_from_bytes(self.map.get(start..start + size_of::<B>())?).ok()
    }

    /// [`BucketMem::bucket`], mutable.
    #[inline(always)]
    pub(super) fn bucket_mut(&mut self, i: usize) -> Option<&mut B> {
        let start = self.offset + i * size_of::<B>();
        B::mut_from_bytes(self.map.get_mut(start..start + size_of::<B>())?).ok()
    }

    #[inline(always)]
    pub(super) fn buckets_mut(&mut self) -> &mut [B] {
        match <[B]>::mut_from_bytes(&mut self.map[self.offset..self.offset + self.len]) {
            Ok(b) => b,
            Err(_) => &mut [],
        }
    }

    /// Bytes held: the buckets rounded up to whole 4 KiB pages (all of them written).
    pub(super) fn memory_bytes(&self) -> usize {
        self.len.next_multiple_of(PAGE)
    }

    /// Huge pages were asked for (and the kernel took the advice).
    pub(super) fn huge_pages(&self) -> bool {
        self.huge_len > 0
    }

    /// Address range of the buckets advised as huge pages (empty if none).
    pub(super) fn huge_range(&self) -> std::ops::Range<usize> {
        let start = self.map.as_ptr().addr() + self.offset;
        start..start + self.huge_len
    }
}

#[cfg(target_os = "linux")]
fn advise_huge(map: &MmapMut, offset: usize, len: usize) -> bool {
    map.advise_range(memmap2::Advice::HugePage, offset, len).is_ok()
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_: &MmapMut, _: usize, _: usize) -> bool {
    false
}

/// Bytes of `ranges` backed by transparent huge pages now, from the
/// `AnonHugePages` of the mappings in `/proc/self/smaps` (Linux; a diagnostic that
/// reads a file, not for the packet path). A mapping that extends past a range (the
/// kernel merged neighbours) counts at most the range's length.
pub(super) fn anon_huge_bytes(ranges: &[std::ops::Range<usize>]) -> std::io::Result<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut total = 0u64;
    let mut current: Option<std::ops::Range<usize>> = None;
    for line in smaps.lines() {
        if let Some(kb) = line.strip_prefix("AnonHugePages:") {
            let Some(vma) = current.take() else { continue };
            let kb: u64 = kb.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
            for r in ranges.iter().filter(|r| !r.is_empty()) {
                let overlap = vma.end.min(r.end).saturating_sub(vma.start.max(r.start));
                if overlap > 0 {
                    total += (kb * 1024).min(overlap as u64);
                }
            }
        } else if let Some(vma) = vma_header(line) {
            current = Some(vma);
        }
    }
    Ok(total)
}

/// The address range of an smaps mapping header (`start-end perms offset dev inode path`).
fn vma_header(line: &str) -> Option<std::ops::Range<usize>> {
    let (range, _) = line.split_once(' ')?;
    let (start, end) = range.split_once('-')?;
    Some(usize::from_str_radix(start, 16).ok()?..usize::from_str_radix(end, 16).ok()?)
}
