//! The checks that hand out proofs: each refuses a caller without its right and yields a proof for
//! one with it; a site admin gets every proof; a caller who cannot see the group is told it does
//! not exist. And the proof-taking writes of `ActionStore` stay inside what their proof was for.

use std::sync::Arc;

use serde_json::Value;
use tether_common::control::{ErrorCode, ServerInfo};
use tether_common::ids::{DeviceId, GroupId, UserId};
use tether_common::relay::SessionKind;
use tether_common::rights::Rights;

use super::*;
use crate::agents::OnlineAgents;
use crate::control::action_store::ActionStore;
use crate::events::EventBus;
use crate::install::Site;
use crate::relay::RelayBroker;
use crate::store::redb::RedbStore;
use crate::store::{BlockedDeviceRecord, InviteRecord, Store};

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    events: EventBus,
    agents: OnlineAgents,
    amt: crate::mps::AmtOnline,
    relay: RelayBroker,
    limiter: crate::auth::ratelimit::LoginLimiter,
    config: crate::config::Config,
    passkeys: crate::auth::passkeys::Ceremonies,
    updates: crate::updates::Updates,
    info: ServerInfo,
    site: Site,
    admin: UserRecord,
    /// A member of `group` with rights given per test.
    member: UserRecord,
    /// In no group.
    stranger: UserRecord,
    group: GroupId,
    other_group: GroupId,
    device: DeviceId,
}

impl Fixture {
    /// One group holding one device, the member holding `member_rights` on it.
    async fn new(member_rights: Rights) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(RedbStore::open(&dir.path().join("tether.redb")).unwrap());
        let admin = user(&*store, "admin", true).await;
        let member = user(&*store, "member", false).await;
        let stranger = user(&*store, "stranger", false).await;
        let group = put_group(&*store, "one", &[(&member.id, member_rights)]).await;
        let other_group = put_group(&*store, "two", &[]).await;
        let device = DeviceRecord {
            id: DeviceId("device-1".into()),
            group: group.clone(),
            name: "pc".into(),
            hostname: "pc".into(),
            os: "Linux".into(),
            agent_info: Value::Null,
            last_seen: 5,
            created: 1,
            amt_admin: None,
            amt_uuid: None,
        };
        store.put_device(&device).await.unwrap();
        Fixture {
            _dir: dir,
            store,
            events: EventBus::default(),
            agents: OnlineAgents::default(),
            amt: crate::mps::AmtOnline::default(),
            relay: RelayBroker::new(std::time::Duration::from_secs(60)),
            limiter: crate::auth::ratelimit::LoginLimiter::default(),
            config: crate::config::Config::default(),
            passkeys: crate::auth::passkeys::Ceremonies::default(),
            updates: crate::updates::Updates::default(),
            info: ServerInfo {
                name: "test".into(),
                version: "0".into(),
                protocol: 1,
                agent_cert_hash: String::new(),
                web_cert_hash: String::new(),
                https_port: 0,
                stun_port: None,
                mps_port: None,
            },
            site: Site::default(),
            admin,
            member,
            stranger,
            group,
            other_group,
            device: device.id,
        }
    }

    fn ctx<'a>(&'a self, caller: &'a UserRecord) -> ActionContext<'a> {
        ActionContext {
            store: ActionStore::new(self.store.as_ref()),
            events: &self.events,
            agents: &self.agents,
            amt: &self.amt,
            relay: &self.relay,
            server_info: &self.info,
            turn: None,
            site: &self.site,
            login_limiter: &self.limiter,
            second_factor_policy: crate::config::SecondFactorPolicy::Off,
            datapath: std::path::Path::new("/nonexistent"),
            site_config: &self.config,
            updates: &self.updates,
            passkeys: &self.passkeys,
            client_ip: std::net::IpAddr::from([127, 0, 0, 1]),
            caller,
        }
    }

    async fn on_group<R: Right>(&self, caller: &UserRecord) -> Result<Rights, ErrorCode> {
        group_with::<R>(&self.ctx(caller), &self.group)
            .await
            .map(|granted| {
                assert_eq!(granted.group().id, self.group);
                granted.held()
            })
            .map_err(|e| e.code())
    }

    async fn on_device<R: Right>(&self, caller: &UserRecord) -> Result<Rights, ErrorCode> {
        device_with::<R>(&self.ctx(caller), &self.device)
            .await
            .map(|granted| {
                assert_eq!(granted.device().id, self.device);
                assert_eq!(granted.group().id, self.group);
                granted.held()
            })
            .map_err(|e| e.code())
    }
}

/// An account made directly in the store: these tests are about rights, not passwords.
pub(in crate::control) async fn user(
    store: &dyn Store,
    name: &str,
    site_admin: bool,
) -> UserRecord {
    let user = UserRecord {
        id: UserId::from_name(name),
        name: name.into(),
        email: None,
        password_hash: "$argon2id$not-a-real-hash".into(),
        site_admin,
        created: 1,
        password_changed: 1,
        second_factor: None,
        pending_totp: None,
        passkeys: Vec::new(),
    };
    store.create_user(&user).await.unwrap();
    user
}

async fn put_group(store: &dyn Store, name: &str, members: &[(&UserId, Rights)]) -> GroupId {
    let group = GroupRecord {
        id: GroupId(format!("group-{name}")),
        name: name.into(),
        description: String::new(),
        members: members
            .iter()
            .map(|(id, rights)| ((*id).clone(), *rights))
            .collect(),
        created: 1,
        direct_connections: true,
        record_sessions: false,
        chat_transcripts: false,
        microphone: false,
        consent: Default::default(),
        cira: None,
    };
    store.put_group(&group).await.unwrap();
    group.id
}

#[tokio::test]
async fn a_site_admin_gets_every_proof_with_full_rights() {
    let f = Fixture::new(Rights::VIEW).await;
    let admin = &f.admin;
    assert_eq!(f.on_group::<View>(admin).await, Ok(Rights::FULL));
    assert_eq!(f.on_group::<ManageGroup>(admin).await, Ok(Rights::FULL));
    assert_eq!(f.on_group::<ManageDevices>(admin).await, Ok(Rights::FULL));
    assert_eq!(f.on_group::<Events>(admin).await, Ok(Rights::FULL));
    assert_eq!(f.on_group::<Enrol>(admin).await, Ok(Rights::FULL));
    assert_eq!(f.on_device::<ManageDevices>(admin).await, Ok(Rights::FULL));
    assert_eq!(f.on_device::<Events>(admin).await, Ok(Rights::FULL));
    assert!(require_site_admin(admin).is_ok());
    let session = session_on(&f.ctx(admin), &f.device, SessionKind::Desktop)
        .await
        .unwrap();
    assert_eq!(session.rights(), Rights::FULL);
}

#[tokio::test]
async fn a_viewer_gets_view_only_and_is_refused_the_rest() {
    let f = Fixture::new(Rights::VIEW).await;
    let member = &f.member;
    assert_eq!(f.on_group::<View>(member).await, Ok(Rights::VIEW));
    assert_eq!(f.on_device::<View>(member).await, Ok(Rights::VIEW));
    for refused in [
        f.on_group::<ManageGroup>(member).await,
        f.on_group::<ManageDevices>(member).await,
        f.on_group::<Events>(member).await,
        f.on_group::<Enrol>(member).await,
        f.on_device::<ManageDevices>(member).await,
        f.on_device::<Events>(member).await,
    ] {
        assert_eq!(refused, Err(ErrorCode::Forbidden));
    }
}

#[tokio::test]
async fn each_right_yields_its_own_proof_and_no_other() {
    let f = Fixture::new(Rights::MANAGE_DEVICES).await;
    let member = &f.member;
    // Any right implies VIEW; the proof carries everything held, for set_rights' rule.
    let held = Rights::MANAGE_DEVICES.union(Rights::VIEW);
    assert_eq!(f.on_device::<ManageDevices>(member).await, Ok(held));
    assert_eq!(f.on_group::<Enrol>(member).await, Ok(held));
    assert_eq!(
        f.on_group::<ManageGroup>(member).await,
        Err(ErrorCode::Forbidden)
    );
    assert_eq!(
        f.on_device::<Events>(member).await,
        Err(ErrorCode::Forbidden)
    );

    let f = Fixture::new(Rights::MANAGE_GROUP).await;
    assert!(f.on_group::<ManageGroup>(&f.member).await.is_ok());
    assert!(f.on_group::<Enrol>(&f.member).await.is_ok());
    assert_eq!(
        f.on_device::<ManageDevices>(&f.member).await,
        Err(ErrorCode::Forbidden)
    );

    let f = Fixture::new(Rights::EVENTS).await;
    assert!(f.on_group::<Events>(&f.member).await.is_ok());
    assert!(f.on_device::<Events>(&f.member).await.is_ok());
    assert_eq!(
        f.on_group::<Enrol>(&f.member).await,
        Err(ErrorCode::Forbidden)
    );
}

#[tokio::test]
async fn a_non_member_is_told_the_group_and_device_do_not_exist() {
    let f = Fixture::new(Rights::FULL).await;
    let stranger = &f.stranger;
    for refused in [
        f.on_group::<View>(stranger).await,
        f.on_group::<ManageGroup>(stranger).await,
        f.on_group::<Enrol>(stranger).await,
        f.on_device::<View>(stranger).await,
        f.on_device::<ManageDevices>(stranger).await,
    ] {
        assert_eq!(refused, Err(ErrorCode::NotFound));
    }
    // Word for word what a missing device gets, so the id cannot be probed.
    let err = device_with::<View>(&f.ctx(stranger), &f.device)
        .await
        .err()
        .unwrap();
    assert_eq!(err.client_message(), format!("no device {}", f.device));
    let session = session_on(&f.ctx(stranger), &f.device, SessionKind::Chat).await;
    assert_eq!(session.err().map(|e| e.code()), Some(ErrorCode::NotFound));
}

#[tokio::test]
async fn only_a_site_admin_gets_the_site_admin_proof() {
    let f = Fixture::new(Rights::FULL).await;
    assert!(require_site_admin(&f.admin).is_ok());
    let refused = require_site_admin(&f.member).err().map(|e| e.code());
    assert_eq!(refused, Some(ErrorCode::Forbidden));
}

#[tokio::test]
async fn a_session_proof_records_the_kind_it_was_checked_for() {
    let f = Fixture::new(Rights::TERMINAL).await;
    let ctx = f.ctx(&f.member);
    let granted = session_on(&ctx, &f.device, SessionKind::Terminal)
        .await
        .unwrap();
    assert_eq!(granted.kind(), SessionKind::Terminal);
    assert_eq!(granted.rights(), Rights::TERMINAL.union(Rights::VIEW));
    assert_eq!(granted.user(), &f.member.id);
    assert_eq!(granted.device().id, f.device);
    assert_eq!(granted.group().id, f.group);
    for kind in [SessionKind::Files, SessionKind::Desktop, SessionKind::Chat] {
        let refused = session_on(&ctx, &f.device, kind).await;
        assert_eq!(refused.err().map(|e| e.code()), Some(ErrorCode::Forbidden));
    }
}

#[tokio::test]
async fn myself_is_the_caller() {
    let f = Fixture::new(Rights::NONE).await;
    let ctx = f.ctx(&f.stranger);
    assert_eq!(myself(&ctx).user().id, f.stranger.id);
}

#[tokio::test]
async fn a_group_proof_unblocks_only_devices_blocked_in_that_group() {
    let f = Fixture::new(Rights::MANAGE_GROUP).await;
    let elsewhere = DeviceId("device-elsewhere".into());
    f.store
        .block_device(&BlockedDeviceRecord {
            device: elsewhere.clone(),
            group: f.other_group.clone(),
            name: "other".into(),
            blocked_by: f.admin.id.clone(),
            time: 1,
        })
        .await
        .unwrap();
    let ctx = f.ctx(&f.member);
    let granted = group_with::<Enrol>(&ctx, &f.group).await.unwrap();
    assert!(
        !ctx.store
            .unblock_device(&granted, &elsewhere)
            .await
            .unwrap()
    );
    assert!(f.store.blocked_device(&elsewhere).await.unwrap().is_some());
}

#[tokio::test]
async fn a_group_proof_revokes_only_invites_to_that_group() {
    let f = Fixture::new(Rights::MANAGE_GROUP).await;
    let invite = InviteRecord {
        id: "invite-elsewhere".into(),
        group: f.other_group.clone(),
        created_by: f.admin.id.clone(),
        created: 1,
        expires: i64::MAX,
        enrolment_key: "ab".repeat(48),
        enrolled: 0,
        max_devices: None,
        revoked: None,
        revoked_by: None,
    };
    f.store.create_invite(&invite).await.unwrap();
    let ctx = f.ctx(&f.member);
    let granted = group_with::<Enrol>(&ctx, &f.group).await.unwrap();
    let revoked = ctx
        .store
        .revoke_invite(&granted, &invite.id, &f.member.id, 2)
        .await
        .unwrap();
    assert_eq!(revoked, None);
    let stored = f.store.invite(&invite.id).await.unwrap().unwrap();
    assert_eq!(stored.revoked, None);
}

#[tokio::test]
async fn a_group_edit_is_written_to_the_checked_group_whatever_it_does_to_the_id() {
    let f = Fixture::new(Rights::MANAGE_GROUP).await;
    let ctx = f.ctx(&f.member);
    let granted = group_with::<ManageGroup>(&ctx, &f.group).await.unwrap();
    let written = ctx
        .store
        .update_group(&granted, |group| {
            group.id = f.other_group.clone();
            group.name = "renamed".into();
        })
        .await
        .unwrap();
    assert_eq!(written.id, f.group);
    let other = f.store.group(&f.other_group).await.unwrap().unwrap();
    assert_eq!(other.name, "two");
    let checked = f.store.group(&f.group).await.unwrap().unwrap();
    assert_eq!(checked.name, "renamed");
}
