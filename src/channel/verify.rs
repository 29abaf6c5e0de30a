//! Signed channel specs (optional, off by default).
//!
//! With `--channel-public-key`, every spec must carry a valid ed25519
//! signature of its exact bytes, or it is refused: over HTTP in the
//! `X-Hydrant-Signature` header or at the spec's URL with `.sig` added to the
//! path; on disk in `<file>.sig`. A signature is the base64 of the 64 signature
//! bytes. A vendor signs with OpenSSL 3:
//!
//! ```sh
//! openssl genpkey -algorithm ed25519 -out channel-key.pem          # once; keep it secret
//! openssl pkey -in channel-key.pem -pubout -out channel-key.pub    # give this to customers
//! openssl pkeyutl -sign -rawin -inkey channel-key.pem -in stable.json | base64 -w0 > stable.json.sig
//! ```

use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};

/// The DER prefix of an ed25519 `SubjectPublicKeyInfo` (RFC 8410).
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

#[derive(Debug, Clone)]
pub struct Verifier {
    key: VerifyingKey,
}

fn b64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
}

impl Verifier {
    /// Reads a public key: a PEM `PUBLIC KEY`, or the 32 key bytes in base64 or hex.
    pub fn parse(text: &str) -> Result<Verifier, String> {
        let text = text.trim();
        let bytes = if text.starts_with("-----BEGIN PUBLIC KEY-----") {
            let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
            let der = b64(&body).ok_or("the PEM body is not base64")?;
            der.strip_prefix(&SPKI_PREFIX[..])
                .map(<[u8]>::to_vec)
                .ok_or("the PEM key is not an ed25519 public key")?
        } else {
            hex::decode(text)
                .ok()
                .or_else(|| b64(text))
                .ok_or("expected a PEM public key, or 32 bytes in base64 or hex")?
        };
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "an ed25519 public key has 32 bytes")?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|e| format!("not an ed25519 public key: {e}"))?;
        Ok(Verifier { key })
    }

    /// Checks `signature` (base64) over `body`.
    pub fn verify(&self, body: &[u8], signature: &str) -> Result<(), String> {
        let sig = b64(signature).ok_or("the signature is not base64")?;
        let sig: [u8; 64] = sig
            .try_into()
            .map_err(|_| "the signature is not 64 bytes")?;
        self.key
            .verify(body, &Signature::from_bytes(&sig))
            .map_err(|_| {
                "the signature does not match the spec (tampered, or signed with another key)"
                    .to_string()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    #[test]
    fn a_valid_signature_verifies_and_a_tampered_spec_does_not() {
        let v = Verifier::parse(&hex::encode(key().verifying_key().to_bytes())).unwrap();
        let sig = base64::engine::general_purpose::STANDARD.encode(key().sign(b"spec").to_bytes());
        assert!(v.verify(b"spec", &sig).is_ok());
        assert!(v.verify(b"spec!", &sig).is_err());
        assert!(v.verify(b"spec", "bm90IGEgc2lnbmF0dXJl").is_err());
    }

    #[test]
    fn pem_public_keys_are_read() {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&key().verifying_key().to_bytes());
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        );
        assert!(Verifier::parse(&pem).is_ok());
        assert!(Verifier::parse("not a key").is_err());
    }
}
