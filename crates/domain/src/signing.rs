//! Standard Webhooks signatures (https://www.standardwebhooks.com, "Signature scheme"):
//! `webhook-signature: v1,<base64 HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")>`
//! where the key is the base64 part of the `whsec_` secret, decoded.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The HMAC key of a `whsec_<base64>` secret; `None` if it is not one.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()
        .filter(|k| !k.is_empty())
}

/// The `webhook-signature` header value for one message.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length (RFC 2104 §2).
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Verifies a `webhook-signature` header (space-separated `v1,<sig>` entries) the way a
/// receiver does; for tests and tools. Timestamps more than `tolerance_s` away are refused.
pub fn verify(
    secret: &str,
    msg_id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now_s: i64,
    tolerance_s: i64,
) -> bool {
    let (Some(key), Ok(ts)) = (secret_key(secret), timestamp.parse::<i64>()) else {
        return false;
    };
    if (now_s - ts).abs() > tolerance_s {
        return false;
    }
    let want = sign(&key, msg_id, ts, body);
    let want = want.as_bytes();
    signature_header.split(' ').any(|s| {
        // Constant-time comparison: a timing difference must not leak the signature.
        s.len() == want.len()
            && s.bytes()
                .zip(want.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries (svix/standard-webhooks
    /// javascript and python tests): this secret, id, timestamp and payload sign to this value.
    #[test]
    fn matches_the_reference_example() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let key = secret_key(secret).unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(verify(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            "v1,bad v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            body,
            1614265330,
            300
        ));
        assert!(!verify(
            secret,
            "msg_other",
            "1614265330",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            body,
            1614265330,
            300
        ));
    }
}
