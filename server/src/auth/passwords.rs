//! Password hashing: Argon2id in PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`).
//!
//! The cost is OWASP's minimum recommendation for Argon2id (19 MiB, 2 passes, 1 lane). It is the
//! setting that keeps a login under ~50 ms on a small server, so that a burst of logins (or an
//! attacker's guesses, which the rate limiter caps) cannot exhaust a 1–2 core machine, while every
//! offline guess still costs an attacker 19 MiB of memory traffic. The parameters are written into
//! each hash, so raising them later only affects new hashes; old ones keep verifying.
//!
//! Hashing is CPU-bound: async callers run these functions through `hashing`, on its threads.
//!
//! Each thread hashes in one 19 MiB memory area of its own, kept between hashes, instead of letting
//! the crate allocate and free it every time: the allocator would keep each freed area anyway (its
//! mmap threshold rises to the size of the last freed block), and did so once per thread and arena,
//! ~20 MiB more after each of the first hashes (measured: 18 MiB idle, 96 MiB after five logins).

use std::cell::RefCell;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Shortest password accepted for a new account.
pub(crate) const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in bytes (Argon2 itself would take more; this bounds request work).
pub(crate) const MAX_PASSWORD_BYTES: usize = 1024;

const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;
/// Stored hashes asking for more memory than this are refused rather than computed.
const MAX_MEMORY_KIB: u32 = 256 * 1024;
const OUTPUT_BYTES: usize = 32;

thread_local! {
    /// This thread's argon2 memory, grown to the largest hash it has computed.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs argon2 with `params` into `out`, in this thread's memory area.
fn argon2_into(params: &Params, password: &[u8], salt: &[u8], out: &mut [u8]) -> bool {
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    BLOCKS.with_borrow_mut(|blocks| {
        let needed = params.block_count();
        if blocks.len() < needed {
            blocks.resize(needed, Block::default());
        }
        argon2
            .hash_password_into_with_memory(password, salt, out, &mut blocks[..needed])
            .is_ok()
    })
}

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
pub(crate) fn check_password_rules(password: &str) -> Result<(), PasswordRuleError> {
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

fn params() -> Params {
    // The constants are within Argon2's limits; a failure here is a programming error.
    Params::new(MEMORY_KIB, PASSES, LANES, Some(OUTPUT_BYTES)).expect("argon2 parameters are valid")
}

/// Hashes `password` with a fresh random salt; returns the PHC string to store.
pub(crate) fn hash_password(password: &str) -> String {
    let salt_bytes: [u8; 16] = rand::random();
    // 16 bytes always fit a salt string; neither step can fail for this input.
    let salt = SaltString::encode_b64(&salt_bytes).expect("16-byte salt encodes");
    let params = params();
    let mut out = [0u8; OUTPUT_BYTES];
    let hashed = argon2_into(&params, password.as_bytes(), &salt_bytes, &mut out);
    assert!(hashed, "argon2 hashing with valid parameters succeeds");
    PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).expect("argon2 parameters fit a PHC string"),
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).expect("a 32-byte output is valid")),
    }
    .to_string()
}

/// True when `password` matches the PHC string `phc`. The comparison is constant-time
/// (`Output`'s equality); an unreadable `phc`, or one asking for absurd memory, never matches.
pub(crate) fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    if hash.algorithm != Algorithm::Argon2id.ident() || hash.version != Some(0x13) {
        return false;
    }
    // The parameters and salt come from `hash`, so older, cheaper or costlier hashes still verify.
    let (Ok(params), Some(salt), Some(expected)) = (Params::try_from(&hash), hash.salt, hash.hash)
    else {
        return false;
    };
    if params.m_cost() > MAX_MEMORY_KIB {
        return false;
    }
    let mut salt_buffer = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buffer) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    argon2_into(&params, password.as_bytes(), salt, &mut out)
        && Output::new(&out).is_ok_and(|computed| computed == expected)
}

/// Spends the same work as [`verify_password`] on a stored hash, and always fails. Used when the
/// account does not exist, so that the response time does not tell an attacker which names are
/// real.
pub(crate) fn verify_nonexistent(password: &str) -> bool {
    let mut output = [0u8; OUTPUT_BYTES];
    let password = &password.as_bytes()[..password.len().min(MAX_PASSWORD_BYTES)];
    let _ = argon2_into(&params(), password, b"tether-no-such-account", &mut output);
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
    fn hashes_made_by_the_crate_itself_verify() {
        use argon2::password_hash::PasswordHasher;
        let salt = SaltString::encode_b64(b"sixteen byte salt").unwrap();
        let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
            .hash_password(b"from elsewhere", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password("from elsewhere", &phc));
        assert!(!verify_password("from elsewherf", &phc));
        let ours = hash_password("from elsewhere");
        assert_eq!(ours.len(), 97, "{ours}: 16-byte salt, 32-byte hash");
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
