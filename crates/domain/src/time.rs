//! Timestamps: stored as microseconds since the Unix epoch (sorts and indexes the same on
//! SQLite and PostgreSQL), rendered as RFC 3339 UTC with milliseconds.

use crate::ParseError;
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        Self(Utc::now().timestamp_micros())
    }
    pub fn micros(self) -> i64 {
        self.0
    }
    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_micros(self.0).single().unwrap_or_default()
    }
    pub fn to_rfc3339(self) -> String {
        self.to_datetime()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// Parses an ISO 8601 date or date-time as clients send them: RFC 3339 with an offset,
    /// a date-time without offset (taken as UTC), or a bare date (midnight UTC).
    pub fn parse_param(param: &str, s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        // A '+' offset arrives as ' ' when the client did not URL-encode it.
        let fixed = if s.len() > 19 && s.as_bytes().get(s.len() - 6) == Some(&b' ') {
            let mut f = s.to_string();
            f.replace_range(s.len() - 6..s.len() - 5, "+");
            f
        } else {
            s.to_string()
        };
        if let Ok(dt) = DateTime::parse_from_rfc3339(&fixed) {
            return Ok(Self(dt.with_timezone(&Utc).timestamp_micros()));
        }
        for fmt in [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%d %H:%M:%S",
        ] {
            if let Ok(n) = NaiveDateTime::parse_from_str(&fixed, fmt) {
                return Ok(Self(n.and_utc().timestamp_micros()));
            }
        }
        if let Ok(d) = NaiveDate::parse_from_str(&fixed, "%Y-%m-%d") {
            return Ok(Self(
                d.and_hms_opt(0, 0, 0)
                    .unwrap_or_default()
                    .and_utc()
                    .timestamp_micros(),
            ));
        }
        Err(ParseError::new(format!(
            "{param} must be an ISO 8601 date or date-time such as 2024-01-31 or \
             2024-01-31T23:59:59Z, got {:?}",
            crate::phone::clip(s)
        )))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_iso_forms() {
        let a = Timestamp::parse_param("from", "2024-01-01T00:00:00Z").unwrap();
        assert_eq!(a.to_rfc3339(), "2024-01-01T00:00:00.000Z");
        assert_eq!(Timestamp::parse_param("from", "2024-01-01").unwrap(), a);
        assert_eq!(
            Timestamp::parse_param("from", "2024-01-01T01:00:00+01:00").unwrap(),
            a
        );
        assert_eq!(
            Timestamp::parse_param("from", "2024-01-01T01:00:00 01:00").unwrap(),
            a
        );
        assert_eq!(
            Timestamp::parse_param("from", "2024-01-01T00:00:00").unwrap(),
            a
        );
    }

    #[test]
    fn rejects_garbage() {
        for s in ["yesterday", "2024-13-01", "2024-01-01T25:00:00Z", ""] {
            let e = Timestamp::parse_param("from", s).unwrap_err();
            assert!(e.message.starts_with("from must be an ISO 8601"), "{e}");
        }
    }
}
