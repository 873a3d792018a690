//! Frontend messages (encoding) and a reader for backend message bodies
//! (protocol 3.0). Decoding never panics: a short or malformed body is
//! [`PgError::Lost`].

use super::{PgError, Value};

/// Appends one frontend message: `tag` (0 for the untagged startup
/// messages), the length, then what `body` writes.
pub fn put(out: &mut Vec<u8>, tag: u8, body: impl FnOnce(&mut Vec<u8>)) {
    if tag != 0 {
        out.push(tag);
    }
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    body(out);
    let len = u32::try_from(out.len() - at).unwrap_or(u32::MAX);
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// A C string; callers made sure it holds no NUL.
pub fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

pub fn i16(out: &mut Vec<u8>, v: i16) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub const SSL_REQUEST: i32 = 80_877_103;
pub const PROTOCOL_3_0: i32 = 196_608;

/// The type OID we declare for a parameter (0: the server infers it).
pub fn oid(v: &Value<'_>) -> i32 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 16,
        Value::Int4(_) => 23,
        Value::Int8(_) => 20,
        Value::Text(_) => 25,
        Value::Bytea(_) => 17,
    }
}

/// Parse/Bind/Describe/Execute of one unnamed statement, binary in and
/// out. Errors only when a statement or parameter cannot be sent at all.
pub fn extended(out: &mut Vec<u8>, sql: &str, params: &[Value<'_>]) -> Result<(), String> {
    if sql.contains('\0') {
        return Err("a statement holds a NUL byte".into());
    }
    let n = i16::try_from(params.len()).map_err(|_| "too many parameters".to_string())?;
    for p in params {
        if let Value::Text(t) = p
            && t.contains('\0')
        {
            return Err("a text parameter holds a NUL byte".into());
        }
        let len = match p {
            Value::Text(t) => t.len(),
            Value::Bytea(b) => b.len(),
            _ => 0,
        };
        if i32::try_from(len).is_err() {
            return Err("a parameter is too large".into());
        }
    }
    put(out, b'P', |b| {
        cstr(b, "");
        cstr(b, sql);
        i16(b, n);
        for p in params {
            i32(b, oid(p));
        }
    });
    put(out, b'B', |b| {
        cstr(b, "");
        cstr(b, "");
        i16(b, 1);
        i16(b, 1);
        i16(b, n);
        for p in params {
            let bytes: Vec<u8> = match p {
                Value::Null => {
                    i32(b, -1);
                    continue;
                }
                Value::Bool(v) => vec![u8::from(*v)],
                Value::Int4(v) => v.to_be_bytes().to_vec(),
                Value::Int8(v) => v.to_be_bytes().to_vec(),
                Value::Text(t) => t.as_bytes().to_vec(),
                Value::Bytea(x) => x.to_vec(),
            };
            i32(b, i32::try_from(bytes.len()).unwrap_or(i32::MAX));
            b.extend_from_slice(&bytes);
        }
        i16(b, 1);
        i16(b, 1);
    });
    put(out, b'D', |b| {
        b.push(b'P');
        cstr(b, "");
    });
    put(out, b'E', |b| {
        cstr(b, "");
        i32(b, 0);
    });
    Ok(())
}

/// Reads a backend message body front to back.
pub struct Reader<'a> {
    buf: &'a [u8],
}

fn short() -> PgError {
    PgError::Lost("malformed message from the server".into())
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], PgError> {
        if n > self.buf.len() {
            return Err(short());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, PgError> {
        Ok(self.bytes(1)?[0])
    }

    pub fn i16(&mut self) -> Result<i16, PgError> {
        let b = self.bytes(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub fn i32(&mut self) -> Result<i32, PgError> {
        let b = self.bytes(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A NUL-terminated string, as UTF-8 (invalid bytes replaced: these
    /// are names and messages, never data).
    pub fn cstr(&mut self) -> Result<String, PgError> {
        let end = self.buf.iter().position(|&c| c == 0).ok_or_else(short)?;
        let s = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
}

/// The SQLSTATE ('C') and message ('M') of an ErrorResponse.
pub fn error_fields(body: &[u8]) -> Result<(String, String), PgError> {
    let mut r = Reader::new(body);
    let (mut code, mut message) = (String::new(), String::new());
    loop {
        let field = r.u8()?;
        if field == 0 {
            break;
        }
        let value = r.cstr()?;
        match field {
            b'C' => code = value,
            b'M' => message = value,
            _ => {}
        }
    }
    Ok((code, message))
}

/// A ParameterStatus body: name and value.
pub fn parameter_status(body: &[u8]) -> Result<(String, String), PgError> {
    let mut r = Reader::new(body);
    Ok((r.cstr()?, r.cstr()?))
}

/// The row count at the end of a CommandComplete tag (`INSERT 0 n`,
/// `UPDATE n`, `SELECT n`, ...); 0 when the tag has none.
pub fn affected(body: &[u8]) -> Result<u64, PgError> {
    let tag = Reader::new(body).cstr()?;
    Ok(tag
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}

/// The column type OIDs of a RowDescription; every column must be in
/// binary format (we asked for it).
pub fn row_description(body: &[u8]) -> Result<Vec<u32>, PgError> {
    let mut r = Reader::new(body);
    let n = r.i16()?;
    let mut types = Vec::new();
    for _ in 0..n.max(0) {
        r.cstr()?;
        r.i32()?;
        r.i16()?;
        let oid = r.i32()? as u32;
        r.i16()?;
        r.i32()?;
        let format = r.i16()?;
        if format != 1 {
            return Err(PgError::Lost("a column not in binary format".into()));
        }
        types.push(oid);
    }
    Ok(types)
}

/// The values of a DataRow (None for NULL).
pub fn data_row(body: &[u8]) -> Result<Vec<Option<Vec<u8>>>, PgError> {
    let mut r = Reader::new(body);
    let n = r.i16()?;
    let mut values = Vec::new();
    for _ in 0..n.max(0) {
        let len = r.i32()?;
        if len < 0 {
            values.push(None);
        } else {
            values.push(Some(r.bytes(len as usize)?.to_vec()));
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_tags_give_the_row_count() {
        assert_eq!(affected(b"INSERT 0 3\0").unwrap(), 3);
        assert_eq!(affected(b"UPDATE 7\0").unwrap(), 7);
        assert_eq!(affected(b"DELETE 0\0").unwrap(), 0);
        assert_eq!(affected(b"SELECT 2\0").unwrap(), 2);
        assert_eq!(affected(b"CREATE TABLE\0").unwrap(), 0);
        assert!(affected(b"UPDATE 7").is_err());
    }

    #[test]
    fn short_bodies_are_errors() {
        assert!(data_row(&[0, 1, 0, 0, 0, 9, 1]).is_err());
        assert!(row_description(&[0, 1, b'a']).is_err());
        assert!(error_fields(b"Cabc").is_err());
    }

    #[test]
    fn lengths_are_filled_in() {
        let mut out = Vec::new();
        put(&mut out, b'Q', |b| cstr(b, "SELECT 1"));
        assert_eq!(out[0], b'Q');
        assert_eq!(&out[1..5], &13u32.to_be_bytes());
    }
}
