//! gzip decompression (RFC 1951 and 1952), for the rare web client that does
//! not take gzip: the page is embedded only compressed, and inflated on the
//! fly for such a client.
//!
//! Embedding the plain files as well cost 45,024 bytes of binary (x86_64,
//! `cargo build --release`); this decoder, after Mark Adler's `puff.c`,
//! costs 5,720. It is slow (one bit at a time through canonical Huffman
//! tables), which does not matter for a 35 KB page asked for by a script.
//! It trusts its input no more than any other: every read is bounded and a
//! bad stream is an error, never a panic.

/// The bytes a gzip member holds, or why it is not one.
pub fn gunzip(data: &[u8]) -> Result<Vec<u8>, &'static str> {
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    const FHCRC: u8 = 2;
    if data.len() < 18 || data[..3] != [0x1f, 0x8b, 8] {
        return Err("not gzip");
    }
    let flags = data[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let n =
            usize::from(u16::from_le_bytes([*data.get(at).ok_or("cut short")?, *data.get(at + 1).ok_or("cut short")?]));
        at += 2 + n;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            at += data.get(at..).ok_or("cut short")?.iter().position(|b| *b == 0).ok_or("cut short")? + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    let body = data.get(at..data.len() - 8).ok_or("cut short")?;
    let out = inflate(body)?;
    let size = u32::from_le_bytes(data[data.len() - 4..].try_into().map_err(|_| "cut short")?);
    if size != out.len() as u32 {
        return Err("wrong length");
    }
    Ok(out)
}

struct Bits<'a> {
    data: &'a [u8],
    at: usize,
    buf: u32,
    n: u32,
}

impl Bits<'_> {
    fn bits(&mut self, need: u32) -> Result<u32, &'static str> {
        while self.n < need {
            let byte = *self.data.get(self.at).ok_or("cut short")?;
            self.at += 1;
            self.buf |= u32::from(byte) << self.n;
            self.n += 8;
        }
        let value = self.buf & ((1u32 << need) - 1);
        self.buf >>= need;
        self.n -= need;
        Ok(value)
    }
}

/// A canonical Huffman code: how many codes of each length, and the
/// symbols in code order.
struct Huffman {
    count: [u16; 16],
    symbol: Vec<u16>,
}

impl Huffman {
    fn new(lengths: &[u8]) -> Huffman {
        let mut count = [0u16; 16];
        for &len in lengths {
            count[usize::from(len)] += 1;
        }
        let mut offset = [0u16; 16];
        for len in 1..15 {
            offset[len + 1] = offset[len] + count[len];
        }
        let mut symbol = vec![0u16; lengths.len()];
        for (sym, &len) in lengths.iter().enumerate() {
            if len != 0 {
                symbol[usize::from(offset[usize::from(len)])] = sym as u16;
                offset[usize::from(len)] += 1;
            }
        }
        count[0] = 0;
        Huffman { count, symbol }
    }

    fn decode(&self, bits: &mut Bits) -> Result<u16, &'static str> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= bits.bits(1)? as i32;
            let count = i32::from(self.count[len]);
            if code - count < first {
                return self.symbol.get((index + code - first) as usize).copied().ok_or("bad code");
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err("bad code")
    }
}

const LENGTH_BASE: [u16; 29] =
    [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LENGTH_EXTRA: [u8; 29] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145,
    8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] =
    [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];

/// A raw deflate stream's bytes.
fn inflate(data: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut bits = Bits { data, at: 0, buf: 0, n: 0 };
    let mut out = Vec::new();
    loop {
        let last = bits.bits(1)? == 1;
        match bits.bits(2)? {
            0 => {
                // Stored: from the next byte, LEN, its complement, the bytes.
                bits.buf = 0;
                bits.n = 0;
                let at = bits.at;
                let head = data.get(at..at + 4).ok_or("cut short")?;
                let len = usize::from(u16::from_le_bytes([head[0], head[1]]));
                if u16::from_le_bytes([head[2], head[3]]) != !(len as u16) {
                    return Err("bad stored block");
                }
                out.extend_from_slice(data.get(at + 4..at + 4 + len).ok_or("cut short")?);
                bits.at = at + 4 + len;
            }
            1 => {
                let mut lengths = [8u8; 288];
                lengths[144..256].fill(9);
                lengths[256..280].fill(7);
                codes(&mut bits, &mut out, &Huffman::new(&lengths), &Huffman::new(&[5; 30]))?;
            }
            2 => {
                let (length, distance) = dynamic(&mut bits)?;
                codes(&mut bits, &mut out, &length, &distance)?;
            }
            _ => return Err("bad block type"),
        }
        if last {
            return Ok(out);
        }
    }
}

/// The codes of a dynamic block, read from its header.
fn dynamic(bits: &mut Bits) -> Result<(Huffman, Huffman), &'static str> {
    const ORDER: [usize; 19] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
    let n_length = bits.bits(5)? as usize + 257;
    let n_dist = bits.bits(5)? as usize + 1;
    let n_code = bits.bits(4)? as usize + 4;
    if n_length > 286 || n_dist > 30 {
        return Err("bad counts");
    }
    let mut lengths = [0u8; 320];
    for &i in &ORDER[..n_code] {
        lengths[i] = bits.bits(3)? as u8;
    }
    let code = Huffman::new(&lengths[..19]);
    lengths = [0u8; 320];
    let mut i = 0;
    while i < n_length + n_dist {
        let (len, repeat) = match code.decode(bits)? {
            sym @ 0..=15 => (sym as u8, 1),
            16 if i > 0 => (lengths[i - 1], 3 + bits.bits(2)? as usize),
            17 => (0, 3 + bits.bits(3)? as usize),
            18 => (0, 11 + bits.bits(7)? as usize),
            _ => return Err("bad lengths"),
        };
        if i + repeat > n_length + n_dist {
            return Err("bad lengths");
        }
        lengths[i..i + repeat].fill(len);
        i += repeat;
    }
    if lengths[256] == 0 {
        return Err("no end code");
    }
    Ok((Huffman::new(&lengths[..n_length]), Huffman::new(&lengths[n_length..n_length + n_dist])))
}

/// Literals and back-references until the end of the block.
fn codes(bits: &mut Bits, out: &mut Vec<u8>, length: &Huffman, distance: &Huffman) -> Result<(), &'static str> {
    loop {
        let sym = usize::from(length.decode(bits)?);
        if sym < 256 {
            out.push(sym as u8);
            continue;
        }
        if sym == 256 {
            return Ok(());
        }
        let sym = sym - 257;
        let (Some(&base), Some(&extra)) = (LENGTH_BASE.get(sym), LENGTH_EXTRA.get(sym)) else {
            return Err("bad length");
        };
        let len = usize::from(base) + bits.bits(u32::from(extra))? as usize;
        let dsym = usize::from(distance.decode(bits)?);
        let (Some(&base), Some(&extra)) = (DIST_BASE.get(dsym), DIST_EXTRA.get(dsym)) else {
            return Err("bad distance");
        };
        let dist = usize::from(base) + bits.bits(u32::from(extra))? as usize;
        if dist > out.len() {
            return Err("distance too far back");
        }
        for _ in 0..len {
            out.push(out[out.len() - dist]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn fixed_and_stored_blocks_and_a_name_in_the_header() {
        let fixed = unhex("1f8b0800000000000203cb48cdc9c9d751c840a214b90063e29b7a15000000");
        assert_eq!(gunzip(&fixed).unwrap(), b"hello, hello, hello!\n");
        let stored = unhex("1f8b08080000000000036e616d652e74787400010c00f3ff73746f7265642062797465737877a60f0c000000");
        assert_eq!(gunzip(&stored).unwrap(), b"stored bytes");
    }

    #[test]
    fn the_built_page_inflates_to_its_plain_files() {
        let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web/dist");
        let mut n = 0;
        for dir in [dist.clone(), dist.join("assets")] {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "gz") {
                    let plain = std::fs::read(path.with_extension("")).unwrap();
                    assert_eq!(gunzip(&std::fs::read(&path).unwrap()).unwrap(), plain, "{}", path.display());
                    n += 1;
                }
            }
        }
        assert!(n > 0 || !dist.join("index.html").exists());
    }

    #[test]
    fn every_cut_and_every_flipped_byte_is_an_error_or_a_result_never_a_panic() {
        let fixed = unhex("1f8b0800000000000203cb48cdc9c9d751c840a214b90063e29b7a15000000");
        for n in 0..fixed.len() {
            let _ = gunzip(&fixed[..n]);
            for bit in 0..8 {
                let mut bad = fixed.clone();
                bad[n] ^= 1 << bit;
                let _ = gunzip(&bad);
            }
        }
        assert!(gunzip(b"not gzip at all, not at all").is_err());
    }
}
