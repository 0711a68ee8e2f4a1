//! Password hashing: Argon2id in PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`).
//!
//! The cost is OWASP's minimum recommendation for Argon2id (19 MiB, 2 passes, 1 lane). It is the
//! setting that keeps a login under ~50 ms on a small server, so that a burst of logins (or an
//! attacker's guesses, which the rate limiter caps) cannot exhaust a 1–2 core machine, while every
//! offline guess still costs an attacker 19 MiB of memory traffic. The parameters are written into
//! each hash, so raising them later only affects new hashes; old ones keep verifying.
//!
//! Hashing is CPU-bound: async callers run these functions in `spawn_blocking`.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Shortest password accepted for a new account.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in bytes (Argon2 itself would take more; this bounds request work).
pub const MAX_PASSWORD_BYTES: usize = 1024;

const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRuleError {
    #[error("the password is empty")]
    Empty,
    #[error("the password must be at least {MIN_PASSWORD_CHARS} characters long")]
    TooShort,
    #[error("the password must be at most {MAX_PASSWORD_BYTES} bytes long")]
    TooLong,
}

/// The rules a new password must meet.
pub fn check_password_rules(password: &str) -> Result<(), PasswordRuleError> {
    if password.is_empty() {
        Err(PasswordRuleError::Empty)
    } else if password.len() > MAX_PASSWORD_BYTES {
        Err(PasswordRuleError::TooLong)
    } else if password.chars().count() < MIN_PASSWORD_CHARS {
        Err(PasswordRuleError::TooShort)
    } else {
        Ok(())
    }
}

fn hasher() -> Argon2<'static> {
    // The constants are within Argon2's limits; a failure here is a programming error.
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).expect("argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` with a fresh random salt; returns the PHC string to store.
pub fn hash_password(password: &str) -> String {
    let salt_bytes: [u8; 16] = rand::random();
    // 16 bytes always fit a salt string; neither step can fail for this input.
    let salt = SaltString::encode_b64(&salt_bytes).expect("16-byte salt encodes");
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing with valid parameters succeeds")
        .to_string()
}

/// True when `password` matches the PHC string `phc`. The comparison is constant-time (done by
/// the crate); an unreadable `phc` never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    // The parameters and salt come from `hash`, so older, cheaper or costlier hashes still verify.
    hasher().verify_password(password.as_bytes(), &hash).is_ok()
}

/// Spends the same work as [`verify_password`] on a stored hash, and always fails. Used when the
/// account does not exist, so that the response time does not tell an attacker which names are
/// real.
pub fn verify_nonexistent(password: &str) -> bool {
    let mut output = [0u8; 32];
    let password = &password.as_bytes()[..password.len().min(MAX_PASSWORD_BYTES)];
    let _ = hasher().hash_password_into(password, b"tether-no-such-account", &mut output);
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_own_password_only() {
        let phc = hash_password("correct horse");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("correct horsf", &phc));
        assert!(!verify_password("", &phc));
    }

    #[test]
    fn the_same_password_gets_a_different_salt_each_time() {
        assert_ne!(
            hash_password("same password"),
            hash_password("same password")
        );
    }

    #[test]
    fn garbage_hashes_never_match() {
        assert!(!verify_password("anything", ""));
        assert!(!verify_password("anything", "$argon2id$v=19$nonsense"));
        assert!(!verify_nonexistent("anything"));
    }

    #[test]
    fn password_rules() {
        assert_eq!(check_password_rules(""), Err(PasswordRuleError::Empty));
        assert_eq!(
            check_password_rules("seven77"),
            Err(PasswordRuleError::TooShort)
        );
        assert_eq!(check_password_rules("eight888"), Ok(()));
        assert_eq!(
            check_password_rules("ünïcödé!"),
            Ok(()),
            "characters, not bytes, count"
        );
        assert_eq!(check_password_rules(&"x".repeat(1024)), Ok(()));
        assert_eq!(
            check_password_rules(&"x".repeat(1025)),
            Err(PasswordRuleError::TooLong)
        );
    }
}
