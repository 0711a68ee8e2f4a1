//! Two-factor sign-in: TOTP codes (RFC 6238: six digits, 30-second steps, HMAC-SHA-1, which is
//! what every authenticator app reads from an `otpauth://` QR code) and ten single-use backup
//! codes.
//!
//! Setting up: the user asks for a secret (`beginTotp`), which is kept sealed as pending and shown
//! once as a QR code; a code from the app confirms it (`confirmTotp`) and the backup codes are
//! shown once. Signing in: after the password, `POST /api/login` wants `otp`, a current code or a
//! backup code. A code is accepted once (its time step is remembered) and one step either side
//! of the server's clock is allowed for drift. Wrong codes count against the login limits like
//! wrong passwords.
//!
//! Backup codes are 50 random bits each, so a fast hash (SHA-256) is enough to keep them
//! unreadable in the store; argon2's cost is for guessable secrets such as passwords.

use sha2::{Digest, Sha256};
use tether_common::ids::UserId;
use totp_rs::{Builder, Secret, Totp};

use crate::clock::now_secs;
use crate::store::{SecondFactor, Store, StoreResult, UserRecord};
use crate::vault::{TOTP_KEY, Vault};

/// Checks and spends happen one at a time, so that one code cannot be spent twice by two
/// requests that both read the record before either wrote it.
static SPENDING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Backup codes made at a time.
pub(crate) const BACKUP_CODES: usize = 10;
/// Bytes of a TOTP secret (RFC 4226 asks for at least 128 bits; 160 is the usual).
const SECRET_BYTES: usize = 20;
/// The alphabet of backup codes: no 0/o, 1/l/i to misread.
const CODE_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";

/// What a code turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accepted {
    /// A TOTP code of this time step.
    Totp { step: u64 },
    /// The backup code at this place in the list.
    Backup { index: usize },
}

/// A new random TOTP secret.
pub(crate) fn new_secret() -> Vec<u8> {
    let mut secret = vec![0; SECRET_BYTES];
    rand::fill(secret.as_mut_slice());
    secret
}

fn totp(secret: &[u8], account: &str, issuer: &str) -> Totp {
    // An issuer or account name with ':' would break the URI: it is left out rather than fail.
    let clean = |text: &str| text.replace(':', " ");
    Builder::new()
        .with_secret(secret.to_vec())
        .with_account_name(clean(account))
        .with_issuer(Some(clean(issuer)))
        .build()
        .expect("six digits, a 160-bit secret and a 30 s step are valid")
}

/// What the user sees to set it up: the secret in base32 (to type in), the `otpauth://` URI, and
/// that URI as a QR code (SVG).
pub(crate) struct Enrolment {
    pub secret_base32: String,
    pub uri: String,
    pub qr_svg: String,
}

pub(crate) fn enrolment(secret: &[u8], account: &str, issuer: &str) -> Enrolment {
    let totp = totp(secret, account, issuer);
    let uri = totp.to_url().expect("the account name is set");
    let qr_svg = qrcode::QrCode::new(uri.as_bytes())
        .map(|code| {
            code.render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build()
        })
        .unwrap_or_default();
    Enrolment {
        secret_base32: Secret::from(secret.to_vec()).to_base32(),
        uri,
        qr_svg,
    }
}

/// The step of a current TOTP code for `secret` at Unix time `now`, if `code` is one.
pub(crate) fn totp_step(secret: &[u8], code: &str, now: u64) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp(secret, "-", "-").check(&code, now)
}

/// Whether `code` (a TOTP code or a backup code) is good for `factor` now.
pub(crate) fn check(
    factor: &SecondFactor,
    secret: &[u8],
    code: &str,
    now: u64,
) -> Option<Accepted> {
    if let Some(step) = totp_step(secret, code, now) {
        // A code already used (or an older one) is refused: RFC 6238 §5.2.
        return (step > factor.last_step).then_some(Accepted::Totp { step });
    }
    let hashed = hash_backup_code(code)?;
    factor
        .backup_codes
        .iter()
        .position(|stored| *stored == hashed)
        .map(|index| Accepted::Backup { index })
}

/// Spends what was accepted: the step is remembered, a backup code is gone.
pub(crate) fn spend(factor: &mut SecondFactor, accepted: Accepted) {
    match accepted {
        Accepted::Totp { step } => factor.last_step = step,
        Accepted::Backup { index } => {
            factor.backup_codes.remove(index);
        }
    }
}

/// New backup codes: as shown (`xxxxx-xxxxx`) and as stored.
pub(crate) fn new_backup_codes() -> (Vec<String>, Vec<String>) {
    let shown: Vec<String> = (0..BACKUP_CODES)
        .map(|_| {
            let mut bytes = [0u8; 10];
            rand::fill(&mut bytes);
            let chars: String = bytes
                .iter()
                .map(|b| CODE_ALPHABET[*b as usize % CODE_ALPHABET.len()] as char)
                .collect();
            format!("{}-{}", &chars[..5], &chars[5..])
        })
        .collect();
    let stored = shown
        .iter()
        .map(|code| hash_backup_code(code).expect("a code we made"))
        .collect();
    (shown, stored)
}

/// What a code did for an account.
pub(crate) enum Verdict {
    /// Good, and spent; the account as it is now.
    Accepted(Box<UserRecord>, Accepted),
    Wrong,
}

/// Checks `code` for `user`'s second factor and spends it if it is good.
pub(crate) async fn verify_and_spend(
    store: &dyn Store,
    user: &UserId,
    code: &str,
) -> StoreResult<Verdict> {
    let _one_at_a_time = SPENDING.lock().await;
    let Some(mut account) = store.user(user).await? else {
        return Ok(Verdict::Wrong);
    };
    let Some(vault) = Vault::load(store, TOTP_KEY).await? else {
        return Ok(Verdict::Wrong);
    };
    let Some(factor) = account.second_factor.as_mut() else {
        return Ok(Verdict::Wrong);
    };
    let Some(secret) = vault.open_bytes(&factor.sealed_secret) else {
        tracing::error!(account = %account.name, "auth: the TOTP secret does not open with this server's key");
        return Ok(Verdict::Wrong);
    };
    let now = u64::try_from(now_secs()).unwrap_or_default();
    let Some(accepted) = check(factor, &secret, code, now) else {
        return Ok(Verdict::Wrong);
    };
    spend(factor, accepted);
    store.update_user(&account).await?;
    Ok(Verdict::Accepted(Box::new(account), accepted))
}

/// SHA-256 of a backup code as typed (any case, dashes and spaces ignored); `None` for text that
/// cannot be one.
fn hash_backup_code(code: &str) -> Option<String> {
    let normal: String = code
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if normal.len() != 10 || !normal.bytes().all(|b| CODE_ALPHABET.contains(&b)) {
        return None;
    }
    Some(hex::encode(Sha256::digest(normal.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn factor(backup_codes: Vec<String>) -> SecondFactor {
        SecondFactor {
            sealed_secret: String::new(),
            last_step: 0,
            backup_codes,
            enabled: 0,
        }
    }

    #[test]
    fn rfc_6238_vectors_are_accepted_once() {
        // RFC 6238 appendix B, SHA-1: secret "12345678901234567890"; the RFC's eight digits, and
        // our six are their last six.
        let secret = b"12345678901234567890";
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
        ] {
            assert_eq!(totp_step(secret, code, time), Some(time / 30), "{time}");
        }
        let mut f = factor(Vec::new());
        let accepted = check(&f, secret, "287 082", 59).expect("a current code");
        spend(&mut f, accepted);
        assert_eq!(check(&f, secret, "287082", 59), None, "a replay");
        // One step of drift either way, not two.
        assert!(totp_step(secret, "287082", 59 + 30).is_some());
        assert_eq!(totp_step(secret, "287082", 59 + 60), None);
        assert_eq!(totp_step(secret, "28708", 59), None);
        assert_eq!(totp_step(secret, "28708x", 59), None);
    }

    #[test]
    fn backup_codes_work_once_in_any_spelling() {
        let (shown, stored) = new_backup_codes();
        assert_eq!(shown.len(), BACKUP_CODES);
        assert!(
            shown
                .iter()
                .all(|c| c.len() == 11 && c.as_bytes()[5] == b'-')
        );
        let mut f = factor(stored);
        let typed = shown[3].to_uppercase().replace('-', " ");
        let accepted = check(&f, b"12345678901234567890", &typed, 0).expect("a backup code");
        assert_eq!(accepted, Accepted::Backup { index: 3 });
        spend(&mut f, accepted);
        assert_eq!(check(&f, b"12345678901234567890", &shown[3], 0), None);
        assert_eq!(f.backup_codes.len(), BACKUP_CODES - 1);
        assert_eq!(check(&f, b"12345678901234567890", "not-a-code!", 0), None);
    }

    #[test]
    fn the_enrolment_uri_names_the_issuer_and_account() {
        let e = enrolment(b"12345678901234567890", "ali:ce", "Tether");
        assert_eq!(e.secret_base32, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert!(
            e.uri.starts_with("otpauth://totp/Tether:ali%20ce?"),
            "{}",
            e.uri
        );
        assert!(
            e.uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{}",
            e.uri
        );
        assert!(e.qr_svg.starts_with("<?xml") && e.qr_svg.contains("<svg"));
    }
}
