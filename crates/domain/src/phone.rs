//! E.164 phone numbers (ITU-T E.164): a `+`, a country code that does not start with 0, and
//! at most 15 digits in all.

use crate::ParseError;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

/// Shortens a hostile value before echoing it in an error message.
pub(crate) fn clip(s: &str) -> String {
    if s.chars().count() > 64 {
        let mut t: String = s.chars().take(64).collect();
        t.push('…');
        t
    } else {
        s.to_string()
    }
}

impl PhoneNumber {
    /// Parses a number in E.164 form. Spaces, dashes, dots and parentheses between digits are
    /// tolerated (people paste "+1 (415) 555-1234"), everything else is refused. A leading
    /// space stands for a `+` because an unencoded `+` in a query string decodes to a space.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let bad = || {
            ParseError::new(format!(
                "{:?} is not an E.164 phone number: expected '+' followed by a country code and \
                 subscriber number, 8 to 15 digits in all, e.g. +14155551234",
                clip(s)
            ))
        };
        let t = s.trim_end();
        let rest = if let Some(r) = t.strip_prefix('+') {
            r
        } else if let Some(r) = t.strip_prefix(' ') {
            r.trim_start()
        } else {
            return Err(bad());
        };
        let mut digits = String::with_capacity(15);
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' if !digits.is_empty() => {}
                _ => return Err(bad()),
            }
        }
        if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
            return Err(bad());
        }
        Ok(Self(format!("+{digits}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Digits only, without the '+': the form used as a SIP user part.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// For logs at info level: keeps the country code and last two digits only.
    pub fn masked(&self) -> String {
        let d = self.digits();
        format!("+{}…{}", &d[..2.min(d.len())], &d[d.len() - 2..])
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PhoneNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_e164_and_normalises_separators() {
        assert_eq!(
            PhoneNumber::parse("+14155551234").unwrap().as_str(),
            "+14155551234"
        );
        assert_eq!(
            PhoneNumber::parse("+1 (415) 555-1234").unwrap().as_str(),
            "+14155551234"
        );
        // '+' decoded to ' ' from an unencoded query string
        assert_eq!(
            PhoneNumber::parse(" 14155551234").unwrap().as_str(),
            "+14155551234"
        );
    }

    #[test]
    fn rejects_non_e164() {
        for s in [
            "14155551234",
            "+0123456789",
            "+1234",
            "+1234567890123456",
            "+1415abc1234",
            "",
            "+",
            "' OR 1=1 --",
        ] {
            assert!(PhoneNumber::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn masks() {
        assert_eq!(
            PhoneNumber::parse("+14155551234").unwrap().masked(),
            "+14…34"
        );
    }
}
