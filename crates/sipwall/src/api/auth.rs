//! The API's bearer token: read from a file that only its owner may read, compared in
//! constant time.
use std::path::Path;

/// Largest token file read.
const MAX_TOKEN_FILE: u64 = 4096;
/// Shortest token accepted (a short token is guessable over the network).
pub const MIN_TOKEN_LEN: usize = 16;

/// Read the token of `[api] token_file` (written at `line` of the config). Refused, naming the
/// key and the line: a file group or others may read or write (mode not 0600 or stricter),
/// an unreadable file, a token shorter than [`MIN_TOKEN_LEN`] or holding white space inside.
pub fn read_token(path: &Path, line: usize) -> anyhow::Result<Vec<u8>> {
    let at =
        if line > 0 { format!("line {line}: api.token_file") } else { "api.token_file".into() };
    let text = crate::config::read_secret_file(path, &at, MAX_TOKEN_FILE)?;
    let token = text.as_str();
    anyhow::ensure!(
        token.len() >= MIN_TOKEN_LEN,
        "{at}: {} holds a token shorter than {MIN_TOKEN_LEN} characters",
        path.display()
    );
    anyhow::ensure!(
        !token.chars().any(|c| c.is_whitespace() || c.is_control()),
        "{at}: {} holds more than one word (the token is the file's one line)",
        path.display()
    );
    Ok(token.as_bytes().to_vec())
}

/// Compare without an early exit: the time taken depends on the lengths only, never on where
/// the first differing byte is.
pub fn same_token(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ given.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// The token of an `Authorization: Bearer TOKEN` header value.
pub fn bearer(header: Option<&[u8]>) -> Option<&[u8]> {
    let h = header?;
    let rest = h.strip_prefix(b"Bearer ").or_else(|| h.strip_prefix(b"bearer "))?;
    Some(rest.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn tokens_compare_by_every_byte_and_length() {
        assert!(same_token(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_token(b"0123456789abcdeX", b"0123456789abcdef"));
        assert!(!same_token(b"X123456789abcdef", b"0123456789abcdef"));
        assert!(!same_token(b"0123456789abcde", b"0123456789abcdef"));
        assert!(!same_token(b"0123456789abcdef0", b"0123456789abcdef"));
        assert!(!same_token(b"", b"0123456789abcdef"));
        assert_eq!(bearer(Some(b"Bearer abc")), Some(&b"abc"[..]));
        assert_eq!(bearer(Some(b"Basic abc")), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn the_token_file_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "s3cret-token-0123456789\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_token(&f, 7).unwrap_err().to_string();
        assert!(e.contains("line 7: api.token_file") && e.contains("0644"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(read_token(&f, 7).is_err());
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token(&f, 7).unwrap(), b"s3cret-token-0123456789");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(read_token(&f, 7).is_ok());
        std::fs::write(&f, "short\n").unwrap();
        assert!(read_token(&f, 7).unwrap_err().to_string().contains("shorter"));
        let e = read_token(&dir.path().join("missing"), 3).unwrap_err().to_string();
        assert!(e.contains("line 3: api.token_file"), "{e}");
    }
}
