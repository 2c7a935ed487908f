//! Cursors. A calls cursor carries the sort field, direction, the last row's sort key and seq
//! (`c1.<order_by>.<order>.<key>.<seq>`); it is rejected if used with a different order, so a
//! page can never silently skip or repeat rows. A resource list's cursor is the last seq seen
//! (`s1.<seq>`). Both are plain text, so the OpenAPI document can state their exact shape
//! (a pattern) and generated clients and testers can tell a well-formed cursor from garbage;
//! clients still pass them back unchanged. The earlier base64 form is still read, so cursors
//! handed out before remain valid.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use switchboard_domain::{KeysetPosition, Order, OrderBy, ParseError};

pub fn encode_cursor(p: &KeysetPosition) -> String {
    format!("c1.{}.{}.{}.{}", p.order_by, p.order, p.key, p.seq)
}

/// The text of a cursor: the plain form as is, the earlier base64 form decoded.
fn cursor_text(s: &str, prefix: &str) -> Option<String> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) {
        return Some(format!("{prefix}:{}", rest.replace('.', ":")));
    }
    let raw = URL_SAFE_NO_PAD.decode(s).ok()?;
    String::from_utf8(raw).ok()
}

fn bad_cursor() -> ParseError {
    ParseError::new(
        "cursor is not valid: pass the cursor value returned by the previous page unchanged",
    )
}

pub fn decode_cursor(s: &str) -> Result<KeysetPosition, ParseError> {
    let text = cursor_text(s, "c1").ok_or_else(bad_cursor)?;
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
    format!("s1.{seq}")
}

pub fn decode_seq_cursor(s: &str) -> Result<i64, ParseError> {
    let text = cursor_text(s, "s1").ok_or_else(bad_cursor)?;
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
        assert!(decode_seq_cursor(&encode_cursor(&p)).is_err());
        // The earlier base64 form is still read.
        assert_eq!(decode_seq_cursor("czE6Nw").unwrap(), 7);
        assert_eq!(
            decode_cursor(&URL_SAFE_NO_PAD.encode("c1:started_at:desc:1700000000000000:42"))
                .unwrap(),
            p
        );
        assert_eq!(encode_seq_cursor(7), "s1.7");
        assert_eq!(encode_cursor(&p), "c1.started_at.desc.1700000000000000.42");
    }
}
