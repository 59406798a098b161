//! The 32-byte key-encryption key as a type: zeroized on drop, never printed, known by its KCV.

use std::fmt;

use aws_lc_rs::cipher::{EncryptingKey, UnboundCipherKey, AES_256};
use zeroize::{Zeroize, Zeroizing};

/// Length of a secret in bytes.
pub const SECRET_LEN: usize = 32;

/// A key-encryption key. Its bytes are wiped when it is dropped; `Debug` shows only the KCV.
#[derive(Clone)]
pub struct Secret {
    /// On the heap, so that moving a `Secret` (into a map, out of a vector) moves a pointer and
    /// never leaves a copy of the bytes in memory that is freed unwiped (`tests/zeroize.rs`).
    bytes: Box<Zeroizing<[u8; SECRET_LEN]>>,
    kcv: Kcv,
}

/// Why a secret was refused. Never carries any of the secret's characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("must be 64 hexadecimal characters (32 bytes); found {0} characters")]
    Length(usize),
    #[error("must be 64 hexadecimal characters (32 bytes); found a character that is not 0-9, a-f or A-F")]
    NotHex,
    #[error("the key check value could not be computed")]
    Kcv,
}

impl Secret {
    /// Takes ownership of 32 bytes, computing the KCV once.
    pub fn from_bytes(bytes: Zeroizing<[u8; SECRET_LEN]>) -> Result<Self, SecretError> {
        let kcv = Kcv::of(&bytes)?;
        let mut boxed = Box::new(Zeroizing::new([0u8; SECRET_LEN]));
        boxed.copy_from_slice(bytes.as_slice());
        Ok(Self { bytes: boxed, kcv })
    }

    /// Parses 64 hex characters, either case. Surrounding white space is refused, not trimmed.
    pub fn from_hex(hex_text: &str) -> Result<Self, SecretError> {
        if hex_text.len() != 2 * SECRET_LEN {
            return Err(SecretError::Length(hex_text.chars().count()));
        }
        let mut bytes = Zeroizing::new([0u8; SECRET_LEN]);
        hex::decode_to_slice(hex_text, bytes.as_mut_slice()).map_err(|_| SecretError::NotHex)?;
        Self::from_bytes(bytes)
    }

    /// Fresh random bytes from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, SecretError> {
        let mut bytes = Zeroizing::new([0u8; SECRET_LEN]);
        aws_lc_rs::rand::fill(bytes.as_mut_slice()).map_err(|_| SecretError::Kcv)?;
        Self::from_bytes(bytes)
    }

    /// The raw bytes, for the wrapping code only.
    pub fn expose(&self) -> &[u8; SECRET_LEN] {
        &self.bytes
    }

    /// The 64 lowercase ASCII hex characters, in a buffer that is wiped on drop.
    pub fn to_hex(&self) -> Zeroizing<[u8; 2 * SECRET_LEN]> {
        let mut out = Zeroizing::new([0u8; 2 * SECRET_LEN]);
        // Cannot fail: the output is exactly twice the input length.
        let _ = hex::encode_to_slice(self.bytes.as_slice(), out.as_mut_slice());
        out
    }

    /// The key check value.
    pub fn kcv(&self) -> Kcv {
        self.kcv
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(redacted, kcv {})", self.kcv)
    }
}

/// Key check value: the first 3 bytes of AES-256-ECB of a zero block under the secret.
/// Shown as 6 upper-case hex digits, the convention of key ceremonies.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kcv([u8; 3]);

impl Kcv {
    /// Computes the KCV of 32 key bytes.
    pub fn of(key: &[u8; SECRET_LEN]) -> Result<Self, SecretError> {
        let key = UnboundCipherKey::new(&AES_256, key).map_err(|_| SecretError::Kcv)?;
        let cipher = EncryptingKey::ecb(key).map_err(|_| SecretError::Kcv)?;
        let mut block = [0u8; 16];
        cipher.encrypt(&mut block).map_err(|_| SecretError::Kcv)?;
        let kcv = Kcv([block[0], block[1], block[2]]);
        block.zeroize();
        Ok(kcv)
    }

    /// Reads 6 hex digits, either case (as `Display` writes them).
    pub fn parse(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 3];
        (text.len() == 6 && hex::decode_to_slice(text, &mut bytes).is_ok()).then_some(Kcv(bytes))
    }

    /// The 3 bytes.
    pub fn as_bytes(&self) -> &[u8; 3] {
        &self.0
    }
}

impl std::str::FromStr for Kcv {
    type Err = String;

    /// Six hex digits, either case.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut bytes = [0u8; 3];
        match s.len() == 6 && hex::decode_to_slice(s, &mut bytes).is_ok() {
            true => Ok(Kcv(bytes)),
            false => Err(format!("{s:?} is not a KCV: six hex digits")),
        }
    }
}

impl fmt::Display for Kcv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02X}{:02X}{:02X}", self.0[0], self.0[1], self.0[2])
    }
}

impl fmt::Debug for Kcv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kcv({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn parses_either_case_and_refuses_the_rest() {
        let lower = Secret::from_hex(HEX).unwrap_or_else(|e| panic!("{e}"));
        let upper = Secret::from_hex(&HEX.to_uppercase()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(lower.expose(), upper.expose());
        assert_eq!(&upper.to_hex()[..], HEX.as_bytes());
        let rows = [
            ("", SecretError::Length(0)),
            ("00", SecretError::Length(2)),
            (&HEX[..63], SecretError::Length(63)),
            (&format!("{HEX}0"), SecretError::Length(65)),
            (&format!(" {}", &HEX[1..]), SecretError::NotHex),
            (&format!("g{}", &HEX[1..]), SecretError::NotHex),
        ];
        for (text, want) in rows {
            assert_eq!(Secret::from_hex(text).err(), Some(want), "{text:?}");
        }
    }

    #[test]
    fn kcv_matches_openssl_vectors() {
        // AES-256 of a zero block under the zero key is dc95c078a2408989ad48a21492842087
        // (FIPS-197 style known answer; `openssl enc -aes-256-ecb` agrees).
        let zero = Kcv::of(&[0u8; 32]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(zero.to_string(), "DC95C0");
    }

    #[test]
    fn debug_never_shows_the_bytes() {
        let secret = Secret::from_hex(HEX).unwrap_or_else(|e| panic!("{e}"));
        let shown = format!("{secret:?}");
        assert!(!shown.contains("0102"), "{shown}");
        assert!(shown.contains(&secret.kcv().to_string()));
    }
}
