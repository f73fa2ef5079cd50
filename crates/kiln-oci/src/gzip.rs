//! Parallel, thread-count-independent gzip (like `pigz -i`).
//!
//! The uncompressed stream is cut into [`CHUNK_SIZE`] chunks at fixed offsets. Each chunk
//! is compressed on its own (fresh deflate state, no shared dictionary) as raw deflate,
//! ending in a sync flush — or, for the last chunk, the final block. Concatenated, the
//! chunks form one valid deflate stream, wrapped in ONE gzip member whose CRC-32 covers the
//! whole input. Because chunk boundaries depend only on byte offsets, the output is
//! identical whether one thread or sixty-four compressed it.
//!
//! Memory stays bounded: at most one window of `2 × threads` chunks (and its compressed
//! form) is held at a time; compressed output is streamed to the inner writer as each
//! window completes.
//!
//! Fixed parameters (changing any of them changes every layer digest):
//! * deflate implementation: zlib-rs (flate2's `zlib-rs` feature, pinned in the workspace);
//! * level 6;
//! * gzip header: no flags (no file name, comment or extra field), MTIME 0, XFL 0,
//!   OS 255 ("unknown", so the bytes do not claim any host OS).

use std::io::{self, Write};

use flate2::{Compress, Compression, FlushCompress, Status};
use kiln_core::{Digest, HashingWriter};
use rayon::prelude::*;
use sha2::{Digest as _, Sha256};

/// Uncompressed bytes per independently compressed chunk. A constant, never derived from
/// the core count: it decides where the compressed stream restarts.
pub const CHUNK_SIZE: usize = 1 << 20;

/// The deflate level used for every chunk.
pub const LEVEL: u32 = 6;

/// The gzip header: magic, CM=8 (deflate), FLG=0, MTIME=0, XFL=0, OS=255.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// What a finished gzip stream was: the digests and sizes a layer descriptor needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GzipSummary {
    /// sha256 of the compressed bytes (the layer digest).
    pub compressed_digest: Digest,
    /// Length of the compressed bytes.
    pub compressed_size: u64,
    /// sha256 of the uncompressed bytes (the layer's `diff_id`).
    pub uncompressed_digest: Digest,
    /// Length of the uncompressed bytes.
    pub uncompressed_size: u64,
}

/// A [`Write`] that gzips everything written to it into `inner`, in parallel on the
/// current rayon pool, hashing both sides on the way. Call [`ParallelGzWriter::finish`]
/// to write the trailer; dropping it without finishing leaves the stream truncated.
pub struct ParallelGzWriter<W: Write> {
    out: HashingWriter<W>,
    /// The chunk being filled.
    current: Vec<u8>,
    /// Full chunks waiting for the next parallel compression round.
    pending: Vec<Vec<u8>>,
    window: usize,
    crc: crc32fast::Hasher,
    sha: Sha256,
    total_in: u64,
    wrote_header: bool,
}

impl<W: Write> ParallelGzWriter<W> {
    /// Starts a gzip stream into `inner`. The window size follows the current rayon pool
    /// (only memory use and speed depend on it, never the output).
    pub fn new(inner: W) -> Self {
        ParallelGzWriter {
            out: HashingWriter::new(inner),
            current: Vec::with_capacity(CHUNK_SIZE),
            pending: Vec::new(),
            window: 2 * rayon::current_num_threads().max(1),
            crc: crc32fast::Hasher::new(),
            sha: Sha256::new(),
            total_in: 0,
            wrote_header: false,
        }
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.wrote_header {
            self.out.write_all(&HEADER)?;
            self.wrote_header = true;
        }
        Ok(())
    }

    /// Compresses `chunks` in parallel (the uncompressed hash runs alongside) and writes
    /// them out in order. Only the very last chunk of the stream has `last` set.
    fn compress_round(&mut self, chunks: Vec<Vec<u8>>, last_is_final: bool) -> io::Result<()> {
        self.write_header()?;
        let n = chunks.len();
        let sha = &mut self.sha;
        let (compressed, ()) = rayon::join(
            || {
                chunks
                    .par_iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let mut crc = crc32fast::Hasher::new();
                        crc.update(c);
                        deflate_chunk(c, last_is_final && i + 1 == n).map(|d| (d, crc))
                    })
                    .collect::<io::Result<Vec<_>>>()
            },
            || {
                for c in &chunks {
                    sha.update(c);
                }
            },
        );
        for (deflated, crc) in compressed? {
            self.crc.combine(&crc);
            self.out.write_all(&deflated)?;
        }
        Ok(())
    }

    /// Compresses what is left, writes the CRC-32/ISIZE trailer and returns the summary and
    /// the inner writer.
    pub fn finish(mut self) -> io::Result<(GzipSummary, W)> {
        let mut chunks = std::mem::take(&mut self.pending);
        chunks.push(std::mem::take(&mut self.current));
        self.compress_round(chunks, true)?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.write_all(&(self.total_in as u32).to_le_bytes())?;
        self.out.flush()?;
        let (compressed_digest, compressed_size, inner) = self.out.finish();
        let summary = GzipSummary {
            compressed_digest,
            compressed_size,
            uncompressed_digest: Digest::from_bytes(self.sha.finalize().into()),
            uncompressed_size: self.total_in,
        };
        Ok((summary, inner))
    }
}

impl<W: Write> Write for ParallelGzWriter<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let n = buf.len();
        while !buf.is_empty() {
            let take = (CHUNK_SIZE - self.current.len()).min(buf.len());
            self.current.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.current.len() == CHUNK_SIZE {
                let full = std::mem::replace(&mut self.current, Vec::with_capacity(CHUNK_SIZE));
                self.pending.push(full);
                if self.pending.len() >= self.window {
                    let chunks = std::mem::take(&mut self.pending);
                    self.compress_round(chunks, false)?;
                }
            }
        }
        self.total_in += n as u64;
        Ok(n)
    }

    /// Does not force a chunk boundary (that would make the bytes depend on write
    /// patterns); flushes only the inner writer.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Raw-deflates one chunk with a fresh state. Non-final chunks end with a sync flush (an
/// empty stored block, byte aligned) so the next chunk can follow directly.
fn deflate_chunk(data: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(LEVEL), false);
    // Deflate never expands by more than a few bytes per 16 KiB stored block; this bound
    // means a single call normally suffices.
    let mut out = Vec::with_capacity(data.len() + data.len() / 8 + 1024);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(|e| io::Error::other(format!("deflate: {e}")))?;
        let all_in = c.total_in() as usize == data.len();
        let done = match status {
            Status::StreamEnd => true,
            _ if last => false,
            _ => all_in && out.len() < out.capacity(),
        };
        if done {
            return Ok(out);
        }
        out.reserve(64 * 1024);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Read;

    use super::*;

    /// Seeded xorshift bytes mixed with repetitive text: compressible but not trivially.
    pub(crate) fn sample(len: usize, seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            if s.is_multiple_of(3) {
                out.extend_from_slice(b"the quick brown fox jumps over the lazy dog ");
            } else {
                out.extend_from_slice(&s.to_le_bytes());
            }
        }
        out.truncate(len);
        out
    }

    fn gz(data: &[u8], threads: usize, write_size: usize) -> (Vec<u8>, GzipSummary) {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut w = ParallelGzWriter::new(Vec::new());
            for part in data.chunks(write_size.max(1)) {
                w.write_all(part).unwrap();
            }
            let (s, out) = w.finish().unwrap();
            (out, s)
        })
    }

    #[test]
    fn decodes_back_and_hashes_both_sides() {
        for len in [0, 1, CHUNK_SIZE, CHUNK_SIZE + 17, 3 * CHUNK_SIZE] {
            let data = sample(len, 7);
            let (out, s) = gz(&data, 2, 4096);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&out[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "len {len}");
            let mut back = Vec::new();
            flate2::read::MultiGzDecoder::new(&out[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "len {len}");
            assert_eq!(s.uncompressed_digest, Digest::of(&data));
            assert_eq!(s.uncompressed_size, len as u64);
            assert_eq!(s.compressed_digest, Digest::of(&out));
            assert_eq!(s.compressed_size, out.len() as u64);
            assert_eq!(&out[..10], &HEADER);
        }
    }

    #[test]
    fn independent_of_threads_and_write_pattern() {
        let data = sample(5 * CHUNK_SIZE + 12345, 42);
        let (one, _) = gz(&data, 1, 1 << 16);
        let (four, _) = gz(&data, 4, 777);
        let (three, _) = gz(&data, 3, data.len());
        assert!(one == four, "1-thread and 4-thread output differ");
        assert!(one == three, "output depends on thread count / write sizes");
        // Really compressed, and really more than one chunk.
        assert!(one.len() < data.len());
    }
}
