//! Names derived from a chat id, and the checks every identifier passes before it is used in a
//! path, a user name or a system call.
//!
//! A chat's directory and its Linux user share one name: `chat-` and the first 8 hex digits of
//! the chat id's SHA-256, with `-<n>` appended on the rare hash collision. Nothing else is ever
//! accepted where such a name is expected, so no path or shell syntax can pass.

use sha2::{Digest as _, Sha256};

/// The longest chat id accepted (Linq's ids are UUIDs; this leaves room for other channels).
pub const MAX_CHAT_ID_LEN: usize = 128;
/// The highest collision suffix tried before giving up.
pub const MAX_SUFFIX: u32 = 99;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("the chat id is empty")]
    EmptyChatId,
    #[error("the chat id is longer than {MAX_CHAT_ID_LEN} bytes")]
    ChatIdTooLong,
    #[error(
        "the chat id may hold only letters, digits, '-', '_', '.', '+', ':' and '@' (got {0:?})"
    )]
    ChatIdCharacters(String),
    #[error("{0:?} is not a chat name (expected chat-<8 hex digits>[-<1..{MAX_SUFFIX}>])")]
    ChatName(String),
}

/// `chat-` and the first 8 hex digits of the chat id's SHA-256 (before any collision suffix).
pub fn chat_dir_name(chat_id: &str) -> String {
    let digest = Sha256::digest(chat_id.as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("chat-{hex}")
}

/// The name for collision suffix `n` (0: the plain name).
pub fn chat_name_with_suffix(chat_id: &str, n: u32) -> String {
    let base = chat_dir_name(chat_id);
    if n == 0 { base } else { format!("{base}-{n}") }
}

/// Checks a chat id received from outside: non-empty, bounded, and made of characters that
/// cannot carry path or shell syntax (no `/`, `..` alone is harmless but `/` is refused, no NUL,
/// no whitespace or quotes).
pub fn validate_chat_id(chat_id: &str) -> Result<(), IdError> {
    if chat_id.is_empty() {
        return Err(IdError::EmptyChatId);
    }
    if chat_id.len() > MAX_CHAT_ID_LEN {
        return Err(IdError::ChatIdTooLong);
    }
    let ok = chat_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | ':' | '@'));
    if !ok || chat_id.starts_with('.') || chat_id.starts_with('-') {
        return Err(IdError::ChatIdCharacters(chat_id.to_owned()));
    }
    Ok(())
}

/// Checks a chat directory / user name: exactly `chat-` + 8 lowercase hex digits, optionally
/// `-<n>` with 1 ≤ n ≤ [`MAX_SUFFIX`] and no leading zero. Fits the 32-byte Linux user name limit.
pub fn validate_chat_name(name: &str) -> Result<(), IdError> {
    let bad = || IdError::ChatName(name.to_owned());
    let rest = name.strip_prefix("chat-").ok_or_else(bad)?;
    let (hex, suffix) = match rest.split_once('-') {
        Some((h, s)) => (h, Some(s)),
        None => (rest, None),
    };
    if hex.len() != 8 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(bad());
    }
    if let Some(s) = suffix {
        if s.is_empty() || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        match s.parse::<u32>() {
            Ok(n) if (1..=MAX_SUFFIX).contains(&n) => {}
            _ => return Err(bad()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_valid() {
        let name = chat_dir_name("3c1f0e5e-8c8a-4b1e-9a0e-0d0c5b1f7a11");
        assert_eq!(name.len(), "chat-".len() + 8);
        assert_eq!(name, chat_dir_name("3c1f0e5e-8c8a-4b1e-9a0e-0d0c5b1f7a11"));
        assert!(validate_chat_name(&name).is_ok());
        assert!(validate_chat_name(&chat_name_with_suffix("x", 7)).is_ok());
    }

    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            "",
            "chat-",
            "../x",
            "a;b",
            "chat-0123456",
            "chat-0123456g",
            "chat-0123456A",
            "chat-01234567/..",
            "chat-01234567-0",
            "chat-01234567-01",
            "chat-01234567-100",
            "chat-01234567-",
            "chat-01234567\0",
            "chat-01234567 ",
        ] {
            assert!(validate_chat_name(bad).is_err(), "{bad:?} accepted");
        }
        let long = "a".repeat(MAX_CHAT_ID_LEN + 1);
        for bad in [
            "",
            "../x",
            "a;b",
            "a/b",
            "a\0b",
            "a b",
            "-rf",
            ".hidden",
            long.as_str(),
        ] {
            assert!(validate_chat_id(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_chat_id("3c1f0e5e-8c8a-4b1e-9a0e-0d0c5b1f7a11").is_ok());
        assert!(validate_chat_id("+15551234567").is_ok());
    }
}
