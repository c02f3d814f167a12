//! A small, strict DER reader and writer: just what pkjwt needs for ECDSA signatures
//! (`ECDSA-Sig-Value`, RFC 3279 §2.2.3), `SubjectPublicKeyInfo` (RFC 5280 §4.1) and
//! `RSAPublicKey` (RFC 8017 §A.1.1).
//!
//! Strict means DER, not BER: definite lengths in their shortest form, minimal INTEGER encodings,
//! no trailing bytes. Every function returns an error instead of panicking on any input; a fuzz
//! target (`fuzz/fuzz_targets/der_signature.rs`) holds it to that.

use crate::{Curve, Error, Result};

pub(crate) const TAG_INTEGER: u8 = 0x02;
pub(crate) const TAG_BIT_STRING: u8 = 0x03;
pub(crate) const TAG_NULL: u8 = 0x05;
pub(crate) const TAG_OID: u8 = 0x06;
pub(crate) const TAG_SEQUENCE: u8 = 0x30;

/// A cursor over DER bytes.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    what: &'static str,
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(what: &'static str, input: &'a [u8]) -> Self {
        Reader { what, rest: input }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn err(&self, reason: impl std::fmt::Display) -> Error {
        Error::der(self.what, reason)
    }

    /// Reads one element with the given tag and returns its contents.
    pub(crate) fn read(&mut self, tag: u8, name: &str) -> Result<&'a [u8]> {
        let (&t, rest) = self
            .rest
            .split_first()
            .ok_or_else(|| self.err(format!("input ends where {name} was expected")))?;
        if t != tag {
            return Err(self.err(format!(
                "expected {name} (tag 0x{tag:02x}), found tag 0x{t:02x}"
            )));
        }
        let (&first, mut rest) = rest
            .split_first()
            .ok_or_else(|| self.err(format!("{name}: missing length")))?;
        let len = if first < 0x80 {
            usize::from(first)
        } else if first == 0x80 {
            return Err(self.err(format!("{name}: indefinite length (BER) is not DER")));
        } else {
            let n = usize::from(first & 0x7f);
            if n > 4 {
                return Err(self.err(format!("{name}: length of {n} bytes is too large")));
            }
            if rest.len() < n {
                return Err(self.err(format!("{name}: truncated length")));
            }
            let (len_bytes, after) = rest.split_at(n);
            if len_bytes[0] == 0 {
                return Err(self.err(format!(
                    "{name}: length has a leading zero byte (BER long form, not DER)"
                )));
            }
            let len = len_bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            if len < 0x80 {
                return Err(self.err(format!(
                    "{name}: length {len} in long form where DER requires the short form"
                )));
            }
            rest = after;
            len
        };
        if rest.len() < len {
            return Err(self.err(format!(
                "{name}: length {len} exceeds the {} remaining bytes",
                rest.len()
            )));
        }
        let (value, after) = rest.split_at(len);
        self.rest = after;
        Ok(value)
    }

    /// Reads a SEQUENCE and returns a reader over its contents.
    pub(crate) fn sequence(&mut self, name: &str) -> Result<Reader<'a>> {
        let what = self.what;
        Ok(Reader::new(what, self.read(TAG_SEQUENCE, name)?))
    }

    /// Reads a non-negative INTEGER in minimal encoding and returns its magnitude without the
    /// sign byte (may be empty-free: zero comes back as `[0]`).
    pub(crate) fn unsigned_integer(&mut self, name: &str) -> Result<&'a [u8]> {
        let v = self.read(TAG_INTEGER, name)?;
        match v {
            [] => Err(self.err(format!("{name}: INTEGER with no content bytes"))),
            [b, ..] if b & 0x80 != 0 => Err(self.err(format!("{name}: negative INTEGER"))),
            [0, b, ..] if b & 0x80 == 0 => Err(self.err(format!(
                "{name}: INTEGER has a superfluous leading zero (not minimal DER)"
            ))),
            [0, rest @ ..] if !rest.is_empty() => Ok(rest),
            _ => Ok(v),
        }
    }

    /// Fails if anything is left.
    pub(crate) fn finish(&self, name: &str) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.err(format!("{} trailing bytes after {name}", self.rest.len())))
        }
    }
}

/// Appends a DER length.
fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        // Invariant: len < 0x80 fits in one byte.
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Appends a TLV.
pub(crate) fn push_tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    push_len(out, value.len());
    out.extend_from_slice(value);
}

/// Encodes an unsigned big-endian magnitude as a minimal DER INTEGER.
pub(crate) fn push_unsigned_integer(out: &mut Vec<u8>, magnitude: &[u8]) {
    let trimmed = strip_leading_zeros(magnitude);
    let mut v = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.is_empty() {
        v.push(0);
    } else {
        if trimmed[0] & 0x80 != 0 {
            v.push(0);
        }
        v.extend_from_slice(trimmed);
    }
    push_tlv(out, TAG_INTEGER, &v);
}

pub(crate) fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|x| **x == 0).count();
    &b[n..]
}

/// The order `n` of each curve's base point, big-endian and left-padded to the field size, so
/// that `r` and `s` can be range-checked (`0 < r, s < n`, SEC 1 §4.1.4 step 1).
fn curve_order(curve: Curve) -> &'static [u8] {
    const P256_N: [u8; 32] =
        hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
    const P384_N: [u8; 48] = hex(concat!(
        "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf",
        "581a0db248b0a77aecec196accc52973"
    ));
    const P521_N: [u8; 66] = hex(concat!(
        "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "fffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e9138",
        "6409"
    ));
    const K256_N: [u8; 32] =
        hex("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141");
    match curve {
        Curve::P256 => &P256_N,
        Curve::P384 => &P384_N,
        Curve::P521 => &P521_N,
        Curve::Secp256k1 => &K256_N,
    }
}

const fn hex<const N: usize>(s: &str) -> [u8; N] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("bad hex digit in a constant"),
        }
    }
    let b = s.as_bytes();
    assert!(b.len() == 2 * N, "hex constant has the wrong length");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = (nibble(b[2 * i]) << 4) | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// Checks `0 < v < n` for a magnitude already known to fit in `field_len` bytes, and writes it
/// left-padded into `out`.
fn put_scalar(curve: Curve, name: &str, v: &[u8], out: &mut [u8]) -> Result<()> {
    let field = curve.field_len();
    if v.len() > field {
        return Err(Error::der(
            "ECDSA signature",
            format!(
                "{name} is {} bytes, wider than the {field}-byte field of {curve}",
                v.len()
            ),
        ));
    }
    if v.iter().all(|b| *b == 0) {
        return Err(Error::der("ECDSA signature", format!("{name} is zero")));
    }
    out[field - v.len()..].copy_from_slice(v);
    // Big-endian byte strings of equal length compare like the numbers they encode.
    if &*out >= curve_order(curve) {
        return Err(Error::der(
            "ECDSA signature",
            format!("{name} is not less than the order of {curve}"),
        ));
    }
    Ok(())
}

/// Converts a DER `ECDSA-Sig-Value` into the fixed-width `r || s` form of RFC 7518 §3.4
/// (64, 96 or 132 bytes for P-256, P-384, P-521; 64 for secp256k1).
///
/// Strict: rejects BER long forms and indefinite lengths, non-minimal or negative integers, zero,
/// values not below the curve order, values wider than the field, wrong tags and trailing bytes.
/// `r` and `s` are left-padded with zeros, which a naive conversion forgets (the cause of
/// intermittent "invalid signature": about one P-256 signature in 128 has a 31-byte `r` or `s`).
pub fn ecdsa_der_to_fixed(der: &[u8], curve: Curve) -> Result<Vec<u8>> {
    let mut outer = Reader::new("ECDSA signature", der);
    let mut seq = outer.sequence("ECDSA-Sig-Value SEQUENCE")?;
    outer.finish("the ECDSA-Sig-Value SEQUENCE")?;
    let r = seq.unsigned_integer("r")?;
    let s = seq.unsigned_integer("s")?;
    seq.finish("r and s inside the SEQUENCE")?;
    let field = curve.field_len();
    let mut out = vec![0u8; 2 * field];
    let (r_out, s_out) = out.split_at_mut(field);
    put_scalar(curve, "r", r, r_out)?;
    put_scalar(curve, "s", s, s_out)?;
    Ok(out)
}

/// Replaces `s` by `n - s` when `s > n/2` in a fixed-width secp256k1 signature (`r || s`).
///
/// Both values verify under ECDSA, but libsecp256k1-based verifiers (and RustCrypto's `k256`)
/// accept only the low-S form, and KMS returns high-S about half the time. RFC 8812 does not
/// forbid low-S, so pkjwt always sends it for ES256K. Other curves are left alone: their
/// verifiers accept both, and changing a signature needlessly would only surprise.
pub(crate) fn normalize_low_s(fixed: &mut [u8], curve: Curve) {
    if curve != Curve::Secp256k1 || fixed.len() != 64 {
        return;
    }
    let n = curve_order(curve);
    let s = &mut fixed[32..];
    // s > n/2  ⇔  2s > n  ⇔  s > n - s.
    let mut neg = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(n[i]) - i16::from(s[i]) - borrow;
        // Invariant: a borrowed digit is in 0..=255 after adding 256.
        neg[i] = if d < 0 { (d + 256) as u8 } else { d as u8 };
        borrow = i16::from(d < 0);
    }
    if *s > neg[..] {
        s.copy_from_slice(&neg);
    }
}

/// Converts a fixed-width `r || s` signature (what PKCS#11 `CKM_ECDSA` returns, and what a JWS
/// carries) into DER, after checking its length and range. The inverse of
/// [`ecdsa_der_to_fixed`].
pub fn ecdsa_fixed_to_der(fixed: &[u8], curve: Curve) -> Result<Vec<u8>> {
    let field = curve.field_len();
    if fixed.len() != 2 * field {
        return Err(Error::der(
            "ECDSA signature",
            format!(
                "raw r||s for {curve} must be {} bytes, got {}",
                2 * field,
                fixed.len()
            ),
        ));
    }
    let (r, s) = fixed.split_at(field);
    let mut scratch = vec![0u8; field];
    put_scalar(curve, "r", strip_leading_zeros(r), &mut scratch)?;
    scratch.fill(0);
    put_scalar(curve, "s", strip_leading_zeros(s), &mut scratch)?;
    let mut body = Vec::with_capacity(2 * field + 8);
    push_unsigned_integer(&mut body, r);
    push_unsigned_integer(&mut body, s);
    let mut out = Vec::with_capacity(body.len() + 4);
    push_tlv(&mut out, TAG_SEQUENCE, &body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(r: &[u8], s: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        push_tlv(&mut body, TAG_INTEGER, r);
        push_tlv(&mut body, TAG_INTEGER, s);
        let mut out = Vec::new();
        push_tlv(&mut out, TAG_SEQUENCE, &body);
        out
    }

    #[test]
    fn short_values_are_left_padded() {
        let sig = der(&[0x01], &[0x00, 0x80]);
        let fixed = ecdsa_der_to_fixed(&sig, Curve::P256).unwrap();
        assert_eq!(fixed.len(), 64);
        assert_eq!(fixed[31], 1);
        assert!(fixed[..31].iter().all(|b| *b == 0));
        assert_eq!(fixed[63], 0x80);
        assert_eq!(ecdsa_fixed_to_der(&fixed, Curve::P256).unwrap(), sig);
    }

    #[test]
    fn p521_is_132_bytes() {
        let mut r = vec![0x01];
        r.extend_from_slice(&[0x11; 65]);
        let sig = der(&r, &[0x05]);
        let fixed = ecdsa_der_to_fixed(&sig, Curve::P521).unwrap();
        assert_eq!(fixed.len(), 132);
        assert_eq!(&fixed[..66], &r[..]);
    }

    #[test]
    fn malformed_inputs_are_refused_with_reasons() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "input ends"),
            (
                vec![0x30, 0x80, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0, 0],
                "indefinite",
            ),
            (
                vec![0x30, 0x81, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
                "short form",
            ),
            (der(&[0x00, 0x01], &[0x01]), "leading zero"),
            (der(&[0x81], &[0x01]), "negative"),
            (der(&[0x00], &[0x01]), "r is zero"),
            (der(&[], &[0x01]), "no content"),
            (der(&[0x01; 33], &[0x01]), "wider than"),
            (
                der(&[[0u8].as_slice(), &[0xff; 32]].concat(), &[0x01]),
                "not less than the order",
            ),
            ([der(&[0x01], &[0x01]), vec![0x00]].concat(), "trailing"),
            (
                vec![0x31, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
                "expected",
            ),
            (
                vec![0x30, 0x09, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
                "exceeds",
            ),
            (vec![0x30, 0x03, 0x02, 0x01, 0x01], "input ends"),
            (
                vec![
                    0x30, 0x09, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01,
                ],
                "trailing",
            ),
        ];
        for (input, want) in cases {
            let e = ecdsa_der_to_fixed(&input, Curve::P256)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{input:02x?}: {e} (wanted {want:?})");
        }
    }

    #[test]
    fn secp256k1_high_s_becomes_low_s() {
        let n = curve_order(Curve::Secp256k1);
        let mut sig = vec![1u8; 64];
        // s = n - 1 (high) becomes 1.
        sig[32..].copy_from_slice(n);
        sig[63] -= 1;
        normalize_low_s(&mut sig, Curve::Secp256k1);
        assert_eq!(&sig[32..63], &[0u8; 31]);
        assert_eq!(sig[63], 1);
        // A low s stays.
        let before = sig.clone();
        normalize_low_s(&mut sig, Curve::Secp256k1);
        assert_eq!(sig, before);
        // Other curves are untouched.
        let mut p256 = vec![0xffu8; 64];
        normalize_low_s(&mut p256, Curve::P256);
        assert_eq!(p256, vec![0xffu8; 64]);
    }

    #[test]
    fn fixed_to_der_checks_length_and_range() {
        assert!(ecdsa_fixed_to_der(&[1; 63], Curve::P256).is_err());
        assert!(ecdsa_fixed_to_der(&[0; 64], Curve::P256).is_err());
        assert!(ecdsa_fixed_to_der(&[0xff; 64], Curve::P256).is_err());
    }

    #[test]
    fn never_panics_on_arbitrary_prefixes() {
        let good = der(&[0x7f; 32], &[0x01; 32]);
        for cut in 0..good.len() {
            assert!(ecdsa_der_to_fixed(&good[..cut], Curve::P256).is_err());
        }
        assert!(ecdsa_der_to_fixed(&good, Curve::P256).is_ok());
    }
}
