//! Opaque cursors. A calls cursor carries the sort field, direction, the last row's sort key
//! and seq; it is rejected if used with a different order, so a page can never silently skip
//! or repeat rows.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use switchboard_domain::{KeysetPosition, Order, OrderBy, ParseError};

pub fn encode_cursor(p: &KeysetPosition) -> String {
    URL_SAFE_NO_PAD.encode(format!("c1:{}:{}:{}:{}", p.order_by, p.order, p.key, p.seq))
}

fn bad_cursor() -> ParseError {
    ParseError::new(
        "cursor is not valid: pass the cursor value returned by the previous page unchanged",
    )
}

pub fn decode_cursor(s: &str) -> Result<KeysetPosition, ParseError> {
    let raw = URL_SAFE_NO_PAD.decode(s.trim()).map_err(|_| bad_cursor())?;
    let text = String::from_utf8(raw).map_err(|_| bad_cursor())?;
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 5 || parts[0] != "c1" {
        return Err(bad_cursor());
    }
    Ok(KeysetPosition {
        order_by: OrderBy::parse(parts[1]).map_err(|_| bad_cursor())?,
        order: Order::parse(parts[2]).map_err(|_| bad_cursor())?,
        key: parts[3].parse().map_err(|_| bad_cursor())?,
        seq: parts[4].parse().map_err(|_| bad_cursor())?,
    })
}

/// Cursor for the simple resource lists (agents, numbers...): the last seq seen.
pub fn encode_seq_cursor(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("s1:{seq}"))
}

pub fn decode_seq_cursor(s: &str) -> Result<i64, ParseError> {
    let raw = URL_SAFE_NO_PAD.decode(s.trim()).map_err(|_| bad_cursor())?;
    let text = String::from_utf8(raw).map_err(|_| bad_cursor())?;
    text.strip_prefix("s1:")
        .and_then(|n| n.parse().ok())
        .ok_or_else(bad_cursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let p = KeysetPosition {
            order_by: OrderBy::StartedAt,
            order: Order::Desc,
            key: 1700000000000000,
            seq: 42,
        };
        assert_eq!(decode_cursor(&encode_cursor(&p)).unwrap(), p);
        assert_eq!(decode_seq_cursor(&encode_seq_cursor(7)).unwrap(), 7);
        assert!(decode_cursor("garbage!").is_err());
        assert!(decode_cursor(&encode_seq_cursor(7)).is_err());
    }
}
