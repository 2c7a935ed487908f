//! Row decoding shared by the repositories. Anything that fails to decode is reported as
//! corrupt data (a 500), never silently defaulted.

use crate::read::Cols;
use crate::StoreError;
use serde_json::Value;
use switchboard_domain::{PhoneNumber, Timestamp};
use uuid::Uuid;

pub(crate) fn s(row: &dyn Cols, col: &str) -> Result<String, StoreError> {
    os(row, col)?.ok_or_else(|| StoreError::Corrupt(format!("{col} is null")))
}

pub(crate) fn os(row: &dyn Cols, col: &str) -> Result<Option<String>, StoreError> {
    row.text(col)
}

pub(crate) fn i(row: &dyn Cols, col: &str) -> Result<i64, StoreError> {
    oi(row, col)?.ok_or_else(|| StoreError::Corrupt(format!("{col} is null")))
}

pub(crate) fn oi(row: &dyn Cols, col: &str) -> Result<Option<i64>, StoreError> {
    row.int(col)
}

pub(crate) fn ob(row: &dyn Cols, col: &str) -> Result<Option<bool>, StoreError> {
    Ok(oi(row, col)?.map(|v| v != 0))
}

pub(crate) fn ts(row: &dyn Cols, col: &str) -> Result<Timestamp, StoreError> {
    Ok(Timestamp(i(row, col)?))
}

pub(crate) fn ots(row: &dyn Cols, col: &str) -> Result<Option<Timestamp>, StoreError> {
    Ok(oi(row, col)?.map(Timestamp))
}

pub(crate) fn uuid<T: From<Uuid>>(row: &dyn Cols, col: &str) -> Result<T, StoreError> {
    let v = s(row, col)?;
    Uuid::parse_str(&v)
        .map(T::from)
        .map_err(|_| StoreError::Corrupt(format!("{col} is not a UUID")))
}

pub(crate) fn ouuid<T: From<Uuid>>(row: &dyn Cols, col: &str) -> Result<Option<T>, StoreError> {
    match os(row, col)? {
        None => Ok(None),
        Some(v) => Uuid::parse_str(&v)
            .map(|u| Some(T::from(u)))
            .map_err(|_| StoreError::Corrupt(format!("{col} is not a UUID"))),
    }
}

pub(crate) fn phone(row: &dyn Cols, col: &str) -> Result<PhoneNumber, StoreError> {
    PhoneNumber::parse(&s(row, col)?)
        .map_err(|_| StoreError::Corrupt(format!("{col} is not E.164")))
}

pub(crate) fn ophone(row: &dyn Cols, col: &str) -> Result<Option<PhoneNumber>, StoreError> {
    os(row, col)?
        .map(|v| {
            PhoneNumber::parse(&v).map_err(|_| StoreError::Corrupt(format!("{col} is not E.164")))
        })
        .transpose()
}

pub(crate) fn ojson(row: &dyn Cols, col: &str) -> Result<Option<Value>, StoreError> {
    os(row, col)?
        .map(|v| {
            serde_json::from_str(&v).map_err(|_| StoreError::Corrupt(format!("{col} is not JSON")))
        })
        .transpose()
}

pub(crate) fn json_text(v: &Option<Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

pub(crate) fn b(v: bool) -> i64 {
    v as i64
}
