//! `createCiraLogin`: a device group's login for Intel AMT machines that connect to the MPS port
//! (`crate::mps`). The server keeps the password's argon2id hash only, so the password is shown
//! once; making a new login replaces the old one, and machines provisioned with it no longer get
//! in (the audit log says so).

use rand::Rng;
use sha2::{Digest, Sha256};
use tether_common::control::CiraLogin;
use tether_common::ids::GroupId;
use tether_common::rights::Rights;

use super::access::{ManageGroup, group_with};
use super::actions::{ActionContext, ActionError};
use super::audit::{Subject, record};
use crate::events::Audience;
use crate::store::CiraAccount;

/// AMT takes at most 16 characters for the MPS password, and wants every kind of character.
const PASSWORD_LEN: usize = 16;

pub(super) async fn create_login(
    ctx: &ActionContext<'_>,
    id: &GroupId,
) -> Result<CiraLogin, ActionError> {
    let Some(mps_port) = ctx.server_info.mps_port else {
        return Err(ActionError::Conflict(
            "the MPS port is off (mpsport = 0): Intel AMT machines cannot connect".into(),
        ));
    };
    let granted = group_with::<ManageGroup>(ctx, id).await?;
    let user = cira_user(id);
    let password = new_password();
    let password_hash = crate::auth::accounts::hash_password(&password)
        .await
        .map_err(|e| ActionError::Internal(format!("hashing the CIRA password: {e}")))?;
    let group = ctx
        .store
        .update_group(&granted, |group| {
            group.cira = Some(CiraAccount {
                user: user.clone(),
                password_hash,
            });
        })
        .await?;
    let message = format!(
        "{} made a new Intel AMT (CIRA) login for device group {}: machines provisioned with an \
         earlier one no longer connect",
        ctx.caller.name, group.name
    );
    let subject = Subject {
        group: Some(&group.id),
        ..Subject::default()
    };
    let audience = Audience::group(&group, Rights::EVENTS);
    record(ctx, "cira_login_created", subject, message, audience).await;
    // The name the MPS certificate is issued for (`--cert`), which AMT checks, rather than the
    // address this console happened to use.
    let mps_host = ctx.server_info.name.clone();
    Ok(CiraLogin {
        user,
        password,
        mps_host,
        mps_port,
        root_cert_sha256: hex::encode_upper(Sha256::digest(&ctx.site.root_cert_der)),
        root_cert_pem: ctx.site.root_cert_pem.clone(),
    })
}

/// The user name AMT sends for `group`: 16 characters (AMT's limit), the same for the group's
/// life, so a new login only changes the password.
pub(crate) fn cira_user(group: &GroupId) -> String {
    let hash = hex::encode(Sha256::digest(group.as_str().as_bytes()));
    format!("t{}", &hash[..15])
}

/// 16 random characters with upper and lower case letters, digits and symbols, as AMT requires.
fn new_password() -> String {
    const CLASSES: [&[u8]; 4] = [
        b"ABCDEFGHJKLMNPQRSTUVWXYZ",
        b"abcdefghijkmnopqrstuvwxyz",
        b"23456789",
        b"!#$%*+-.:=?@_",
    ];
    let mut rng = rand::rng();
    let mut chars: Vec<u8> = CLASSES
        .iter()
        .map(|class| class[rng.random_range(0..class.len())])
        .collect();
    let all: Vec<u8> = CLASSES.concat();
    while chars.len() < PASSWORD_LEN {
        chars.push(all[rng.random_range(0..all.len())]);
    }
    // Where each class landed should not be predictable either.
    for i in (1..chars.len()).rev() {
        chars.swap(i, rng.random_range(0..=i));
    }
    String::from_utf8(chars).expect("ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_have_every_kind_of_character_and_users_fit_amt() {
        for _ in 0..200 {
            let password = new_password();
            assert_eq!(password.len(), PASSWORD_LEN);
            assert!(
                password.bytes().any(|b| b.is_ascii_uppercase()),
                "{password}"
            );
            assert!(
                password.bytes().any(|b| b.is_ascii_lowercase()),
                "{password}"
            );
            assert!(password.bytes().any(|b| b.is_ascii_digit()), "{password}");
            assert!(
                password.bytes().any(|b| !b.is_ascii_alphanumeric()),
                "{password}"
            );
        }
        let user = cira_user(&GroupId::from("some-group"));
        assert_eq!(user.len(), 16);
        assert_eq!(user, cira_user(&GroupId::from("some-group")));
        assert_ne!(user, cira_user(&GroupId::from("other-group")));
    }
}
