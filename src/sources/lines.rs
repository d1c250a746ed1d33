//! Splitting a byte stream into lines, across chunk boundaries, with a cap on line length.
//!
//! Used by every line-oriented source: replay files, stdin, the X stream body.
//! A line may be cut at any byte between two chunks; a line longer than the cap
//! is not buffered whole: its first bytes are kept for the report and the rest
//! is skipped up to the next newline.

/// How many bytes of an oversized line are kept for the dead-letter report.
pub const OVERSIZED_PREFIX_BYTES: usize = 1024;

/// One line out of the splitter. The line excludes its `\n` (a `\r` before it is kept).
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    Complete(&'a [u8]),
    /// A line over the cap: its total length and its first bytes.
    Oversized {
        len: usize,
        prefix: &'a [u8],
    },
}

/// Incremental line splitter.
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max_line_bytes: usize,
    /// Set while skipping the rest of an oversized line: its length so far.
    skipping: Option<usize>,
}

impl LineSplitter {
    pub fn new(max_line_bytes: usize) -> Self {
        LineSplitter {
            buf: Vec::new(),
            max_line_bytes: max_line_bytes.max(1),
            skipping: None,
        }
    }

    /// Feeds a chunk; calls `emit` for every line it completes.
    pub fn push(&mut self, mut chunk: &[u8], mut emit: impl FnMut(Line<'_>)) {
        while !chunk.is_empty() {
            match memchr::memchr(b'\n', chunk) {
                Some(pos) => {
                    let (head, rest) = (&chunk[..pos], &chunk[pos + 1..]);
                    self.end_line(head, &mut emit);
                    chunk = rest;
                }
                None => {
                    self.extend_partial(chunk);
                    chunk = &[];
                }
            }
        }
    }

    /// Ends the input: a last line without a newline is emitted as it is.
    /// Returns true if there was such an unterminated line.
    pub fn finish(&mut self, mut emit: impl FnMut(Line<'_>)) -> bool {
        let had_partial = !self.buf.is_empty() || self.skipping.is_some();
        if had_partial {
            self.end_line(&[], &mut emit);
        }
        had_partial
    }

    /// Drops a partial line (after a broken connection, for example); returns its length.
    pub fn discard_partial(&mut self) -> usize {
        let len = self.skipping.take().unwrap_or(self.buf.len());
        self.buf.clear();
        len
    }

    /// Bytes of the current unterminated line.
    pub fn partial_len(&self) -> usize {
        self.skipping.unwrap_or(self.buf.len())
    }

    fn extend_partial(&mut self, part: &[u8]) {
        if let Some(len) = self.skipping {
            self.skipping = Some(len + part.len());
            self.keep_prefix(part);
            return;
        }
        let total = self.buf.len() + part.len();
        if total > self.max_line_bytes {
            // The line stops being one: keep only the report's prefix of what was buffered.
            self.buf.truncate(OVERSIZED_PREFIX_BYTES);
            self.buf.shrink_to(OVERSIZED_PREFIX_BYTES);
            self.keep_prefix(part);
            self.skipping = Some(total);
        } else {
            self.buf.extend_from_slice(part);
        }
    }

    /// Keeps at most `OVERSIZED_PREFIX_BYTES` of an oversized line in `buf`.
    fn keep_prefix(&mut self, part: &[u8]) {
        if self.buf.len() >= OVERSIZED_PREFIX_BYTES {
            return;
        }
        let keep = (OVERSIZED_PREFIX_BYTES - self.buf.len()).min(part.len());
        self.buf.extend_from_slice(&part[..keep]);
    }

    fn end_line(&mut self, head: &[u8], emit: &mut impl FnMut(Line<'_>)) {
        if let Some(len) = self.skipping.take() {
            self.keep_prefix(head);
            emit(Line::Oversized {
                len: len + head.len(),
                prefix: &self.buf[..OVERSIZED_PREFIX_BYTES.min(self.buf.len())],
            });
        } else if self.buf.is_empty() {
            if head.len() > self.max_line_bytes {
                emit(Line::Oversized {
                    len: head.len(),
                    prefix: &head[..OVERSIZED_PREFIX_BYTES.min(head.len())],
                });
            } else {
                emit(Line::Complete(head));
            }
            return;
        } else {
            let total = self.buf.len() + head.len();
            if total > self.max_line_bytes {
                self.keep_prefix(head);
                emit(Line::Oversized {
                    len: total,
                    prefix: &self.buf[..OVERSIZED_PREFIX_BYTES.min(self.buf.len())],
                });
            } else {
                self.buf.extend_from_slice(head);
                emit(Line::Complete(&self.buf));
            }
        }
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Clone)]
    enum Out {
        L(Vec<u8>),
        O(usize, Vec<u8>),
    }

    fn split(chunks: &[&[u8]], max: usize) -> (Vec<Out>, bool) {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        let mut emit = |l: Line<'_>| match l {
            Line::Complete(b) => out.push(Out::L(b.to_vec())),
            Line::Oversized { len, prefix } => out.push(Out::O(len, prefix.to_vec())),
        };
        for c in chunks {
            s.push(c, &mut emit);
        }
        let partial = s.finish(&mut emit);
        (out, partial)
    }

    #[test]
    fn lines_cut_at_every_byte_come_out_whole() {
        let input = b"{\"a\":1}\r\n\r\n{\"b\":\"\xc3\xa9\xf0\x9f\x98\x80\"}\r\n";
        let expected = vec![
            Out::L(b"{\"a\":1}\r".to_vec()),
            Out::L(b"\r".to_vec()),
            Out::L(b"{\"b\":\"\xc3\xa9\xf0\x9f\x98\x80\"}\r".to_vec()),
        ];
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(
                split(&[a, b], 1 << 20),
                (expected.clone(), false),
                "cut at {cut}"
            );
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(split(&bytes, 1 << 20).0, expected);
    }

    #[test]
    fn a_last_line_without_newline_is_kept() {
        assert_eq!(
            split(&[b"a\nb"], 10),
            (vec![Out::L(b"a".to_vec()), Out::L(b"b".to_vec())], true)
        );
        assert_eq!(split(&[b""], 10), (vec![], false));
    }

    #[test]
    fn oversized_lines_are_reported_not_buffered() {
        let big = vec![b'x'; 5000];
        // In one chunk.
        let mut input = big.clone();
        input.extend_from_slice(b"\nok\n");
        let (out, _) = split(&[&input], 100);
        assert_eq!(
            out,
            vec![
                Out::O(5000, vec![b'x'; OVERSIZED_PREFIX_BYTES]),
                Out::L(b"ok".to_vec())
            ]
        );
        // Spread over many chunks, cut inside the line and inside the newline neighbourhood.
        let chunks: Vec<&[u8]> = input.chunks(7).collect();
        let (out, _) = split(&chunks, 100);
        assert_eq!(
            out,
            vec![
                Out::O(5000, vec![b'x'; OVERSIZED_PREFIX_BYTES]),
                Out::L(b"ok".to_vec())
            ]
        );
        // Just at the cap is fine, one over is not.
        assert_eq!(split(&[b"12345\n"], 5).0, vec![Out::L(b"12345".to_vec())]);
        assert_eq!(
            split(&[b"123", b"456\n"], 5).0,
            vec![Out::O(6, b"123456".to_vec())]
        );
        // A line that passes the cap only in a later chunk keeps no more than the prefix
        // of what was buffered before (it used to keep up to the cap).
        let (out, _) = split(&[&big[..3000], &big[3000..], b"\n"], 4096);
        assert_eq!(out, vec![Out::O(5000, vec![b'x'; OVERSIZED_PREFIX_BYTES])]);
        let (out, _) = split(&[&big[..3000], &big[3000..]], 4096);
        assert_eq!(out, vec![Out::O(5000, vec![b'x'; OVERSIZED_PREFIX_BYTES])]);
        // An oversized unterminated tail.
        assert_eq!(
            split(&[&big], 100).0,
            vec![Out::O(5000, vec![b'x'; OVERSIZED_PREFIX_BYTES])]
        );
    }

    #[test]
    fn an_oversized_line_keeps_only_the_prefix_whatever_the_cap() {
        // Found by proptests::line_splitter_emits_every_line_once_at_any_chunk_boundary:
        // with a cap above the prefix size, a line that went over the cap in a
        // later chunk was reported with everything buffered so far (up to the
        // cap, 16 MiB by default) instead of its first 1 KiB.
        let line: Vec<u8> = (0..2500u32).map(|i| b'a' + (i % 26) as u8).collect();
        let (a, b) = line.split_at(1500);
        let (out, _) = split(&[a, b, b"\n"], 2000);
        assert_eq!(
            out,
            vec![Out::O(2500, line[..OVERSIZED_PREFIX_BYTES].to_vec())]
        );
    }

    #[test]
    fn discard_partial_forgets_a_cut_line() {
        let mut s = LineSplitter::new(100);
        s.push(b"{\"cut", |_| panic!("no line yet"));
        assert_eq!(s.partial_len(), 5);
        assert_eq!(s.discard_partial(), 5);
        let mut got = Vec::new();
        s.push(b"{}\n", |l| got.push(format!("{l:?}")));
        assert_eq!(got.len(), 1);
    }
}
