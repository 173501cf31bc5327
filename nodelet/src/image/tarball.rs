//! A tar reader for `oci-archive:` files: the archive itself plain, gzip or zstd; member headers
//! with GNU long names, pax records and base-256 numbers; member paths normalised. Blocking.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

/// At most this many entries in an archive's tar.
const MAX_ARCHIVE_ENTRIES: usize = 100_000;

/// How an archive file itself is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Packing {
    Plain,
    Gzip,
    Zstd,
}

/// How a file or a blob is compressed, by its first bytes.
pub(super) fn packing_of(head: &[u8]) -> Packing {
    if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        Packing::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Packing::Zstd
    } else {
        Packing::Plain
    }
}

/// Reads a tar sequentially from an archive file: a plain one by seeking, a compressed one
/// through its decompressor.
pub(super) struct TarStream<'a> {
    file: &'a File,
    packed: Option<Box<dyn Read + 'a>>,
    pos: u64,
    len: u64,
    /// Headers read so far (extension headers included).
    headers: usize,
}

impl<'a> TarStream<'a> {
    /// Reads `file` (of `len` bytes, packed as `packing`) from its start.
    pub(super) fn open(file: &'a File, packing: Packing, len: u64) -> std::io::Result<Self> {
        let mut f = file;
        f.seek(SeekFrom::Start(0))?;
        let reader = std::io::BufReader::with_capacity(1 << 16, file);
        let packed: Option<Box<dyn Read + 'a>> = match packing {
            Packing::Plain => None,
            Packing::Gzip => Some(Box::new(flate2::read::MultiGzDecoder::new(reader))),
            Packing::Zstd => Some(Box::new(zstd::stream::read::Decoder::with_buffer(reader)?)),
        };
        Ok(Self {
            file,
            packed,
            pos: 0,
            len,
            headers: 0,
        })
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = match &mut self.packed {
            Some(r) => r.read(buf)?,
            None => {
                let mut f = self.file;
                f.read(buf)?
            }
        };
        self.pos += n as u64;
        Ok(n)
    }

    /// Fills `buf`, or fails at the end of the stream.
    pub(super) fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        let mut at = 0;
        while at < buf.len() {
            match self.read(&mut buf[at..])? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                n => at += n,
            }
        }
        Ok(())
    }

    /// A 512-byte block, or None at the very end.
    fn block(&mut self) -> std::io::Result<Option<[u8; 512]>> {
        let mut b = [0u8; 512];
        let mut at = 0;
        while at < 512 {
            match self.read(&mut b[at..])? {
                0 if at == 0 => return Ok(None),
                0 => return Err(std::io::Error::other("truncated tar header")),
                n => at += n,
            }
        }
        Ok(Some(b))
    }

    /// Skips `n` bytes, or fails at the end of the stream.
    pub(super) fn skip(&mut self, n: u64) -> std::io::Result<()> {
        match &mut self.packed {
            Some(r) => {
                let copied = std::io::copy(&mut r.take(n), &mut std::io::sink())?;
                self.pos += copied;
                if copied < n {
                    return Err(std::io::Error::other("truncated tar"));
                }
            }
            None => {
                if self.pos.saturating_add(n) > self.len {
                    return Err(std::io::Error::other("truncated tar"));
                }
                let mut f = self.file;
                f.seek(SeekFrom::Current(n as i64))?;
                self.pos += n;
            }
        }
        Ok(())
    }

    /// Moves to `offset` of the tar stream (forward only when compressed).
    pub(super) fn seek_to(&mut self, offset: u64) -> std::io::Result<()> {
        if self.packed.is_none() {
            let mut f = self.file;
            f.seek(SeekFrom::Start(offset))?;
            self.pos = offset;
            return Ok(());
        }
        if offset < self.pos {
            return Err(std::io::Error::other("overlapping entries"));
        }
        self.skip(offset - self.pos)
    }
}

/// A member's header, its extension headers (GNU long names, pax records) applied.
#[derive(Debug)]
pub(super) struct MemberHeader {
    /// The type flag (`0`, `1`, `5`, …).
    pub(super) typeflag: u8,
    /// The path as written.
    pub(super) name: String,
    /// The link target (hard and symbolic links).
    pub(super) link: String,
    /// The size of its data.
    pub(super) size: u64,
    /// Where its data starts in the tar stream.
    pub(super) data_at: u64,
}

impl TarStream<'_> {
    /// The next member's header, at most [`MAX_ARCHIVE_ENTRIES`] headers in all, checksums
    /// checked; None at the end of the archive. The caller reads or skips the member's data (its
    /// size rounded up with [`padded`]) before asking for the next one.
    pub(super) fn next_member(&mut self) -> std::io::Result<Option<MemberHeader>> {
        let mut long_name: Option<String> = None;
        let mut long_link: Option<String> = None;
        let mut pax: HashMap<String, String> = HashMap::new();
        while let Some(h) = self.block()? {
            if h.iter().all(|b| *b == 0) {
                break;
            }
            let stored = tar_number(&h[148..156])?;
            let unsigned: u64 = h
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        *b as u64
                    }
                })
                .sum();
            let signed: i64 = h
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        *b as i8 as i64
                    }
                })
                .sum();
            if stored != unsigned && stored as i64 != signed {
                return Err(std::io::Error::other(format!(
                    "bad tar header checksum at offset {}",
                    self.pos - 512
                )));
            }
            self.headers += 1;
            if self.headers > MAX_ARCHIVE_ENTRIES {
                return Err(std::io::Error::other(format!(
                    "more than {MAX_ARCHIVE_ENTRIES} members"
                )));
            }
            let typeflag = h[156];
            let mut size = tar_number(&h[124..136])?;
            match typeflag {
                b'L' => {
                    long_name = Some(c_string(&read_meta(self, size, 1 << 16)?));
                    continue;
                }
                b'K' => {
                    long_link = Some(c_string(&read_meta(self, size, 1 << 16)?));
                    continue;
                }
                b'x' => {
                    pax = pax_records(&read_meta(self, size, 1 << 20)?)?;
                    continue;
                }
                b'g' => {
                    self.skip(padded(size))?;
                    continue;
                }
                _ => {}
            }
            if let Some(s) = pax.get("size") {
                size = s
                    .parse()
                    .map_err(|_| std::io::Error::other("bad pax size"))?;
            }
            let ustar = &h[257..263] == b"ustar\0";
            let name = long_name.take().or(pax.remove("path")).unwrap_or_else(|| {
                let name = c_string(&h[..100]);
                let prefix = c_string(&h[345..500]);
                if ustar && !prefix.is_empty() {
                    format!("{prefix}/{name}")
                } else {
                    name
                }
            });
            let link = long_link
                .take()
                .or(pax.remove("linkpath"))
                .unwrap_or_else(|| c_string(&h[157..257]));
            return Ok(Some(MemberHeader {
                typeflag,
                name,
                link,
                size,
                data_at: self.pos,
            }));
        }
        Ok(None)
    }
}

/// The data of a tar extension header (long name, pax), at most `max` bytes.
fn read_meta(t: &mut TarStream<'_>, size: u64, max: u64) -> std::io::Result<Vec<u8>> {
    if size > max {
        return Err(std::io::Error::other("tar extension header too large"));
    }
    let mut buf = vec![0u8; size as usize];
    t.read_exact(&mut buf)?;
    t.skip(padded(size) - size)?;
    Ok(buf)
}

/// `size` rounded up to whole 512-byte blocks.
pub(super) fn padded(size: u64) -> u64 {
    size.div_ceil(512) * 512
}

/// A numeric tar header field: octal text, or GNU base-256.
pub(super) fn tar_number(field: &[u8]) -> std::io::Result<u64> {
    let bad = || std::io::Error::other("bad number in a tar header");
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        if field[0] != 0x80 {
            return Err(bad());
        }
        let mut v: u64 = 0;
        for &b in &field[1..] {
            v = v.checked_mul(256).ok_or_else(bad)? + b as u64;
        }
        return Ok(v);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ' || *b == 0)
        .take_while(|b| *b != b' ' && *b != 0)
        .collect();
    if text.is_empty() {
        return Ok(0);
    }
    let s = std::str::from_utf8(&text).map_err(|_| bad())?;
    u64::from_str_radix(s, 8).map_err(|_| bad())
}

fn c_string(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// An archive member's path without `./`, leading or doubled slashes; None with `..`.
pub(super) fn normalize_member(name: &str) -> Option<String> {
    let parts: Vec<&str> = name
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if parts.contains(&"..") {
        return None;
    }
    Some(parts.join("/"))
}

/// Pax records (`LEN key=value\n`) of interest: path, linkpath, size.
fn pax_records(data: &[u8]) -> std::io::Result<HashMap<String, String>> {
    let bad = || std::io::Error::other("bad pax header");
    let mut out = HashMap::new();
    let mut rest = data;
    while !rest.is_empty() && rest[0] != 0 {
        let sp = rest.iter().position(|b| *b == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(bad());
        }
        let record = &rest[sp + 1..len - 1];
        let eq = record.iter().position(|b| *b == b'=').ok_or_else(bad)?;
        let key = String::from_utf8_lossy(&record[..eq]).into_owned();
        if matches!(key.as_str(), "path" | "linkpath" | "size") {
            out.insert(key, String::from_utf8_lossy(&record[eq + 1..]).into_owned());
        }
        rest = &rest[len..];
    }
    Ok(out)
}

/// Reads exactly one member's bytes.
pub(super) struct TarEntry<'t, 'a> {
    /// The stream, at the member's data.
    pub(super) t: &'t mut TarStream<'a>,
    /// Bytes of the member not read yet.
    pub(super) left: u64,
}

impl Read for TarEntry<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left as usize);
        let n = self.t.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::other("truncated archive"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
