//! Parameters ([`Value`]) and result rows ([`Row`]) of both backends.
//!
//! A [`Value`] binds to either backend: to SQLite as its own storage class, to PostgreSQL as the type
//! the server inferred for the placeholder (`I64` into `BIGINT`, `INTEGER` or `SMALLINT` when it fits;
//! `F64` into `DOUBLE PRECISION` or `REAL`; `Null` into any type). A [`Row`]'s typed getters read a
//! column as `i64`, `f64`, text or blob, each also as an `Option` for a nullable column; a mismatch is
//! a [`DbError::Column`] naming the column and the statement.

use super::DbError;
use postgres::types::{IsNull, ToSql, Type};
use rusqlite::types::{ToSqlOutput, ValueRef};

/// One parameter of a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL; accepted for a column of any type.
    Null,
    I64(i64),
    F64(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::I64(v)
    }
}
macro_rules! from_small_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::I64(i64::from(v))
            }
        }
    )*};
}
from_small_int!(i32, u32, i16, u16, u8);

/// A boolean is stored as the integer 0 or 1 on both backends (as rusqlite stores it).
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::I64(i64::from(v))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::F64(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Blob(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::I64(v) => ValueRef::Integer(*v),
            Value::F64(v) => ValueRef::Real(*v),
            Value::Text(v) => ValueRef::Text(v.as_bytes()),
            Value::Blob(v) => ValueRef::Blob(v),
        }))
    }
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::I64(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                _ => Err(mismatch("an integer", ty)),
            },
            Value::F64(v) => match *ty {
                Type::FLOAT8 => v.to_sql(ty, out),
                // Narrowing to the column's precision is what the column asks for.
                Type::FLOAT4 => (*v as f32).to_sql(ty, out),
                _ => Err(mismatch("a float", ty)),
            },
            Value::Text(v) => match *ty {
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                    v.as_str().to_sql(ty, out)
                }
                _ => Err(mismatch("text", ty)),
            },
            Value::Blob(v) => match *ty {
                Type::BYTEA => v.as_slice().to_sql(ty, out),
                _ => Err(mismatch("a blob", ty)),
            },
        }
    }

    /// Any type: NULL binds to every column, and `to_sql` says which other pairings do not fit.
    fn accepts(_ty: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

fn mismatch(what: &str, ty: &Type) -> Box<dyn std::error::Error + Sync + Send> {
    format!("{what} cannot be bound to a parameter of PostgreSQL type {ty}").into()
}

/// One result row, borrowed for the duration of the callback that receives it.
pub struct Row<'a> {
    pub(super) inner: RowInner<'a>,
    pub(super) statement: &'a str,
}

pub(super) enum RowInner<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Postgres(&'a postgres::Row),
}

macro_rules! getters {
    ($($name:ident, $opt:ident, $ty:ty, $what:literal;)*) => {$(
        #[doc = concat!("Column `idx` (from 0) as ", $what, "; NULL is an error.")]
        pub fn $name(&self, idx: usize) -> Result<$ty, DbError> {
            self.$opt(idx)?.ok_or_else(|| self.column_error(idx, concat!($what, " (not NULL)"), "NULL".into()))
        }
    )*};
}

impl Row<'_> {
    getters! {
        i64, opt_i64, i64, "an integer";
        f64, opt_f64, f64, "a float";
        text, opt_text, String, "text";
        blob, opt_blob, Vec<u8>, "a blob";
    }

    /// Column `idx` as an integer of type `T` (e.g. `u32`), `None` for NULL; a value out of `T`'s
    /// range is an error.
    pub fn opt_int<T: TryFrom<i64>>(&self, idx: usize) -> Result<Option<T>, DbError> {
        match self.opt_i64(idx)? {
            None => Ok(None),
            Some(v) => T::try_from(v).map(Some).map_err(|_| {
                self.column_error(
                    idx,
                    std::any::type_name::<T>(),
                    format!("{v}, out of range"),
                )
            }),
        }
    }

    /// Column `idx` as an integer of type `T`; NULL or a value out of range is an error.
    pub fn int<T: TryFrom<i64>>(&self, idx: usize) -> Result<T, DbError> {
        self.opt_int(idx)?
            .ok_or_else(|| self.column_error(idx, std::any::type_name::<T>(), "NULL".into()))
    }

    /// Column `idx` as a boolean stored as an integer (0 is false, anything else true, as rusqlite
    /// reads it); NULL is an error.
    pub fn bool(&self, idx: usize) -> Result<bool, DbError> {
        Ok(self.i64(idx)? != 0)
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        match &self.inner {
            RowInner::Sqlite(r) => r.as_ref().column_count(),
            RowInner::Postgres(r) => r.len(),
        }
    }

    /// Whether the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Column `idx` as an integer, `None` for NULL.
    pub fn opt_i64(&self, idx: usize) -> Result<Option<i64>, DbError> {
        match &self.inner {
            RowInner::Sqlite(r) => match self.sqlite_ref(r, idx)? {
                ValueRef::Null => Ok(None),
                ValueRef::Integer(v) => Ok(Some(v)),
                other => Err(self.column_error(idx, "an integer", sqlite_kind(&other))),
            },
            RowInner::Postgres(r) => {
                let ty = self.pg_type(r, idx)?;
                let got = match *ty {
                    Type::INT8 => r.try_get::<_, Option<i64>>(idx),
                    Type::INT4 => r.try_get::<_, Option<i32>>(idx).map(|v| v.map(i64::from)),
                    Type::INT2 => r.try_get::<_, Option<i16>>(idx).map(|v| v.map(i64::from)),
                    _ => return Err(self.column_error(idx, "an integer", ty.to_string())),
                };
                got.map_err(|e| self.column_error(idx, "an integer", e.to_string()))
            }
        }
    }

    /// Column `idx` as a float, `None` for NULL. An integer column reads as a float too (SQLite
    /// stores a whole-number REAL as written, e.g. `sum` of integers).
    pub fn opt_f64(&self, idx: usize) -> Result<Option<f64>, DbError> {
        match &self.inner {
            RowInner::Sqlite(r) => match self.sqlite_ref(r, idx)? {
                ValueRef::Null => Ok(None),
                ValueRef::Real(v) => Ok(Some(v)),
                ValueRef::Integer(v) => Ok(Some(v as f64)),
                other => Err(self.column_error(idx, "a float", sqlite_kind(&other))),
            },
            RowInner::Postgres(r) => {
                let ty = self.pg_type(r, idx)?;
                let got = match *ty {
                    Type::FLOAT8 => r.try_get::<_, Option<f64>>(idx),
                    Type::FLOAT4 => r.try_get::<_, Option<f32>>(idx).map(|v| v.map(f64::from)),
                    Type::INT8 => r
                        .try_get::<_, Option<i64>>(idx)
                        .map(|v| v.map(|v| v as f64)),
                    Type::INT4 => r.try_get::<_, Option<i32>>(idx).map(|v| v.map(f64::from)),
                    _ => return Err(self.column_error(idx, "a float", ty.to_string())),
                };
                got.map_err(|e| self.column_error(idx, "a float", e.to_string()))
            }
        }
    }

    /// Column `idx` as text, `None` for NULL.
    pub fn opt_text(&self, idx: usize) -> Result<Option<String>, DbError> {
        match &self.inner {
            RowInner::Sqlite(r) => match self.sqlite_ref(r, idx)? {
                ValueRef::Null => Ok(None),
                ValueRef::Text(v) => String::from_utf8(v.to_vec())
                    .map(Some)
                    .map_err(|_| self.column_error(idx, "text", "text that is not UTF-8".into())),
                other => Err(self.column_error(idx, "text", sqlite_kind(&other))),
            },
            RowInner::Postgres(r) => r
                .try_get::<_, Option<String>>(idx)
                .map_err(|e| self.column_error(idx, "text", e.to_string())),
        }
    }

    /// Column `idx` as bytes, `None` for NULL.
    pub fn opt_blob(&self, idx: usize) -> Result<Option<Vec<u8>>, DbError> {
        match &self.inner {
            RowInner::Sqlite(r) => match self.sqlite_ref(r, idx)? {
                ValueRef::Null => Ok(None),
                ValueRef::Blob(v) => Ok(Some(v.to_vec())),
                other => Err(self.column_error(idx, "a blob", sqlite_kind(&other))),
            },
            RowInner::Postgres(r) => r
                .try_get::<_, Option<Vec<u8>>>(idx)
                .map_err(|e| self.column_error(idx, "a blob", e.to_string())),
        }
    }

    fn sqlite_ref<'r>(
        &self,
        r: &'r rusqlite::Row<'_>,
        idx: usize,
    ) -> Result<ValueRef<'r>, DbError> {
        r.get_ref(idx)
            .map_err(|e| self.column_error(idx, "a column", e.to_string()))
    }

    fn pg_type<'r>(&self, r: &'r postgres::Row, idx: usize) -> Result<&'r Type, DbError> {
        r.columns()
            .get(idx)
            .map(|c| c.type_())
            .ok_or_else(|| self.column_error(idx, "a column", "no such column".into()))
    }

    fn column_name(&self, idx: usize) -> String {
        let name = match &self.inner {
            RowInner::Sqlite(r) => r.as_ref().column_name(idx).ok().map(str::to_owned),
            RowInner::Postgres(r) => r.columns().get(idx).map(|c| c.name().to_owned()),
        };
        name.unwrap_or_else(|| format!("#{idx}"))
    }

    fn column_error(&self, idx: usize, expected: &str, found: String) -> DbError {
        DbError::Column {
            column: self.column_name(idx),
            index: idx,
            expected: expected.to_owned(),
            found,
            statement: super::statement_head(self.statement),
        }
    }
}

fn sqlite_kind(v: &ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL",
        ValueRef::Integer(_) => "an integer",
        ValueRef::Real(_) => "a float",
        ValueRef::Text(_) => "text",
        ValueRef::Blob(_) => "a blob",
    }
    .to_owned()
}
