//! The actions' rights checks and side effects, against a real redb store in a temp folder (the
//! WebSocket part is covered by `server/tests/control.rs`).

use std::sync::Arc;

use serde_json::Value;
use tether_common::control::*;
use tether_common::ids::{DeviceId, GroupId, UserId};
use tether_common::install::InviteStatus;
use tether_common::rights::Rights;
use tokio::sync::broadcast;

use super::action_store::ActionStore;
use super::actions::{ActionContext, perform};
use crate::agents::OnlineAgents;
use crate::events::{EventBus, Published};
use crate::relay::RelayBroker;
use crate::store::redb::RedbStore;
use crate::store::{DeviceRecord, NewEvent, Store, UserRecord};

struct World {
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
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RedbStore::open(&dir.path().join("tether.redb")).unwrap());
        let info = ServerInfo {
            name: "test".into(),
            version: "0".into(),
            protocol: 1,
            agent_cert_hash: String::new(),
            web_cert_hash: String::new(),
            https_port: 0,
            stun_port: None,
            mps_port: None,
        };
        World {
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
            info,
        }
    }

    async fn user(&self, name: &str, site_admin: bool) -> UserRecord {
        super::access::tests::user(self.store.as_ref(), name, site_admin).await
    }

    async fn reread(&self, user: &UserRecord) -> UserRecord {
        self.store.user(&user.id).await.unwrap().unwrap()
    }

    /// The reply's JSON as the WebSocket would send it.
    async fn run_raw(&self, caller: &UserRecord, body: RequestBody) -> Result<Value, ErrorCode> {
        let caller = self.reread(caller).await;
        let ctx = ActionContext {
            store: ActionStore::new(self.store.as_ref()),
            events: &self.events,
            agents: &self.agents,
            amt: &self.amt,
            relay: &self.relay,
            server_info: &self.info,
            turn: None,
            site: &crate::install::Site::default(),
            login_limiter: &self.limiter,
            second_factor_policy: crate::config::SecondFactorPolicy::Off,
            datapath: std::path::Path::new("/nonexistent"),
            site_config: &self.config,
            updates: &self.updates,
            passkeys: &self.passkeys,
            client_ip: std::net::IpAddr::from([127, 0, 0, 1]),
            caller: &caller,
        };
        perform(&ctx, body).await.map_err(|e| e.code())
    }

    /// Performs `request` as `caller` through the same dispatch as the WebSocket, and reads the
    /// reply's JSON back as the action's typed output.
    async fn run<A: Action>(
        &self,
        caller: &UserRecord,
        request: A,
    ) -> Result<A::Output, ErrorCode> {
        let value = self.run_raw(caller, request.into()).await?;
        Ok(serde_json::from_value(value).expect("the reply is the action's output"))
    }

    async fn create_group(&self, admin: &UserRecord, name: &str) -> GroupId {
        let body = CreateGroup {
            name: name.into(),
            description: String::new(),
        };
        self.run(admin, body).await.unwrap().id
    }

    async fn grant(&self, admin: &UserRecord, group: &GroupId, user: &UserRecord, rights: Rights) {
        let body = SetGroupRights {
            group: group.clone(),
            user: user.id.clone(),
            rights,
        };
        self.run(admin, body).await.unwrap();
    }

    async fn add_device(&self, group: &GroupId, name: &str) -> DeviceId {
        let device = DeviceRecord {
            id: DeviceId(format!("device-{name}")),
            group: group.clone(),
            name: name.into(),
            hostname: name.into(),
            os: "Linux".into(),
            agent_info: Value::Null,
            last_seen: 5,
            created: 1,
            amt_admin: None,
            amt_uuid: None,
        };
        self.store.put_device(&device).await.unwrap();
        device.id
    }
}

fn names(list: &[GroupInfo]) -> Vec<&str> {
    list.iter().map(|item| item.name.as_str()).collect()
}

fn device_names(list: &[DeviceInfo]) -> Vec<&str> {
    list.iter().map(|item| item.name.as_str()).collect()
}

fn next_published(events: &mut broadcast::Receiver<Arc<Published>>) -> Arc<Published> {
    events.try_recv().expect("an event was published")
}

#[tokio::test]
async fn only_site_admins_create_groups_and_the_creator_gets_every_right() {
    let world = World::new();
    let admin = world.user("Admin", true).await;
    let alice = world.user("alice", false).await;
    let mut events = world.events.subscribe();
    let body = CreateGroup {
        name: "  Office ".into(),
        description: "desk".into(),
    };
    let group = world.run(&admin, body.clone()).await.unwrap();
    assert_eq!(group.name, "Office");
    assert_eq!(group.members[0].user.as_str(), "admin");
    assert_eq!(group.members[0].rights, Rights::FULL);
    assert_eq!(group.id.to_bytes().map(|b| b.len()), Some(48));
    let published = next_published(&mut events);
    assert!(matches!(&published.event, Event::GroupCreated { group: g } if g.name == "Office"));
    assert!(
        published.audience.includes(&admin.id, false),
        "the creator is a member"
    );
    assert!(!published.audience.includes(&alice.id, false));
    assert!(
        matches!(next_published(&mut events).event, Event::Logged { .. }),
        "and an audit record"
    );
    assert_eq!(world.run(&alice, body).await, Err(ErrorCode::Forbidden));
}

#[tokio::test]
async fn users_see_only_their_groups_and_invisible_ones_look_missing() {
    let world = World::new();
    let admin = world.user("admin", true).await;
    let alice = world.user("alice", false).await;
    let office = world.create_group(&admin, "Office").await;
    let lab = world.create_group(&admin, "Lab").await;
    world.grant(&admin, &office, &alice, Rights::VIEW).await;

    assert_eq!(
        names(&world.run(&admin, ListGroups {}).await.unwrap()),
        ["Lab", "Office"]
    );
    assert_eq!(
        names(&world.run(&alice, ListGroups {}).await.unwrap()),
        ["Office"]
    );
    // VIEW is not MANAGE_GROUP: forbidden on a group she sees, not_found on one she does not.
    assert_eq!(
        world
            .run(
                &alice,
                DeleteGroup {
                    group: office.clone()
                }
            )
            .await,
        Err(ErrorCode::Forbidden)
    );
    assert_eq!(
        world.run(&alice, DeleteGroup { group: lab.clone() }).await,
        Err(ErrorCode::NotFound)
    );
    let nowhere = GroupId::from_bytes(&[9; 48]);
    assert_eq!(
        world.run(&alice, DeleteGroup { group: nowhere }).await,
        Err(ErrorCode::NotFound)
    );
    let rename = EditGroup {
        name: Some("Mine".into()),
        ..EditGroup::of(lab)
    };
    assert_eq!(world.run(&alice, rename).await, Err(ErrorCode::NotFound));
    assert_eq!(
        world.run(&alice, ListUsers {}).await,
        Err(ErrorCode::Forbidden)
    );

    // Removing her rights hides the group again.
    world.grant(&admin, &office, &alice, Rights::NONE).await;
    assert_eq!(
        names(&world.run(&alice, ListGroups {}).await.unwrap()),
        Vec::<&str>::new()
    );
}

#[tokio::test]
async fn group_managers_cannot_hand_out_more_than_they_hold() {
    let world = World::new();
    let admin = world.user("admin", true).await;
    let manager = world.user("manager", false).await;
    let bob = world.user("bob", false).await;
    let office = world.create_group(&admin, "Office").await;
    world
        .grant(
            &admin,
            &office,
            &manager,
            Rights::MANAGE_GROUP.union(Rights::TERMINAL),
        )
        .await;
    let mut events = world.events.subscribe();

    let too_much = SetGroupRights {
        group: office.clone(),
        user: bob.id.clone(),
        rights: Rights::FULL,
    };
    assert_eq!(
        world.run(&manager, too_much).await,
        Err(ErrorCode::Forbidden)
    );
    let fine = SetGroupRights {
        group: office.clone(),
        user: bob.id.clone(),
        rights: Rights::TERMINAL,
    };
    world.run(&manager, fine).await.unwrap();
    let published = next_published(&mut events);
    assert!(matches!(published.event, Event::GroupChanged { .. }));
    assert!(
        published.audience.includes(&bob.id, false),
        "the affected user hears about it"
    );

    let ghost = SetGroupRights {
        group: office,
        user: UserId::from("ghost"),
        rights: Rights::VIEW,
    };
    assert_eq!(world.run(&manager, ghost).await, Err(ErrorCode::NotFound));
}

#[tokio::test]
async fn group_managers_cannot_take_away_what_they_do_not_hold() {
    let world = World::new();
    let admin = world.user("admin", true).await;
    let manager = world.user("manager", false).await;
    let owner = world.user("owner", false).await;
    let viewer = world.user("viewer", false).await;
    let office = world.create_group(&admin, "Office").await;
    world.grant(&admin, &office, &owner, Rights::FULL).await;
    world
        .grant(
            &admin,
            &office,
            &manager,
            Rights::VIEW.union(Rights::MANAGE_GROUP),
        )
        .await;
    world.grant(&admin, &office, &viewer, Rights::VIEW).await;
    let set = |user: &UserRecord, rights| SetGroupRights {
        group: office.clone(),
        user: user.id.clone(),
        rights,
    };
    assert_eq!(
        world.run(&manager, set(&owner, Rights::NONE)).await,
        Err(ErrorCode::Forbidden),
        "the owner holds rights the manager lacks"
    );
    assert_eq!(
        world.run(&manager, set(&owner, Rights::VIEW)).await,
        Err(ErrorCode::Forbidden)
    );
    world
        .run(&manager, set(&viewer, Rights::NONE))
        .await
        .unwrap();
    world.run(&admin, set(&owner, Rights::VIEW)).await.unwrap();
}

#[tokio::test]
async fn two_admins_demoting_each_other_at_once_leave_one() {
    for _ in 0..20 {
        let world = World::new();
        let first = world.user("first", true).await;
        let second = world.user("second", true).await;
        let demote = |user: &UserRecord| EditUser {
            user: user.id.clone(),
            email: None,
            site_admin: Some(false),
        };
        let (a, b) = tokio::join!(
            world.run(&first, demote(&second)),
            world.run(&second, demote(&first))
        );
        let admins = world
            .store
            .users()
            .await
            .unwrap()
            .iter()
            .filter(|u| u.site_admin)
            .count();
        assert_eq!(admins, 1, "{a:?} {b:?}");
        assert!(a.is_ok() != b.is_ok(), "exactly one wins: {a:?} {b:?}");
    }
}

#[tokio::test]
async fn deleting_a_group_tells_its_former_members() {
    let world = World::new();
    let admin = world.user("admin", true).await;
    let alice = world.user("alice", false).await;
    let office = world.create_group(&admin, "Office").await;
    world.grant(&admin, &office, &alice, Rights::VIEW).await;
    world.add_device(&office, "pc1").await;
    let mut events = world.events.subscribe();
    let reply = world
        .run(
            &admin,
            DeleteGroup {
                group: office.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(reply.deleted, office);
    let published = next_published(&mut events);
    assert!(matches!(&published.event, Event::GroupDeleted { group } if *group == office));
    assert!(published.audience.includes(&alice.id, false));
    assert!(
        world.store.devices(Some(&office)).await.unwrap().is_empty(),
        "its devices went with it"
    );
}

#[tokio::test]
async fn devices_follow_their_groups_rights() {
    let world = World::new();
    let admin = world.user("admin", true).await;
    let alice = world.user("alice", false).await;
    let office = world.create_group(&admin, "Office").await;
    let lab = world.create_group(&admin, "Lab").await;
    let pc = world.add_device(&office, "pc1").await;
    let secret = world.add_device(&lab, "secret").await;
    world.grant(&admin, &office, &alice, Rights::VIEW).await;

    let listed = world
        .run(&alice, ListDevices { group: None })
        .await
        .unwrap();
    assert_eq!(device_names(&listed), ["pc1"]);
    assert!(!listed[0].online);
    assert_eq!(listed[0].lastseen, 5);
    assert_eq!(
        listed[0].agent, None,
        "a device without a report has no agent details"
    );
    assert_eq!(
        device_names(
            &world
                .run(&admin, ListDevices { group: None })
                .await
                .unwrap()
        ),
        ["pc1", "secret"]
    );
    let lab_devices = ListDevices { group: Some(lab) };
    assert_eq!(
        world.run(&alice, lab_devices).await,
        Err(ErrorCode::NotFound)
    );

    let rename = |device: &DeviceId| RenameDevice {
        device: device.clone(),
        name: "new".into(),
    };
    assert_eq!(
        world.run(&alice, rename(&pc)).await,
        Err(ErrorCode::Forbidden)
    );
    assert_eq!(
        world.run(&alice, rename(&secret)).await,
        Err(ErrorCode::NotFound)
    );
    world
        .grant(&admin, &office, &alice, Rights::MANAGE_DEVICES)
        .await;
    assert_eq!(world.run(&alice, rename(&pc)).await.unwrap().name, "new");
    world
        .run(
            &alice,
            DeleteDevice {
                device: pc.clone(),
                block: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        world
            .run(
                &alice,
                DeleteDevice {
                    device: pc,
                    block: false
                }
            )
            .await,
        Err(ErrorCode::NotFound)
    );
}

#[tokio::test]
async fn event_readers_see_their_groups_events_only() {
    let world = World::new();
    let admin = world.user("admin", true).await;
    let alice = world.user("alice", false).await;
    let office = world.create_group(&admin, "Office").await;
    let lab = world.create_group(&admin, "Lab").await;
    world.grant(&admin, &office, &alice, Rights::VIEW).await;
    let kinds =
        |list: Vec<EventRecord>| -> Vec<String> { list.into_iter().map(|r| r.kind).collect() };
    let list = |limit| ListEvents {
        limit,
        group: None,
        device: None,
        ..Default::default()
    };

    // Without EVENTS she reads nothing about the groups…
    assert!(kinds(world.run(&alice, list(None)).await.unwrap()).is_empty());
    let office_events = ListEvents {
        limit: None,
        group: Some(office.clone()),
        device: None,
        ..Default::default()
    };
    assert_eq!(
        world.run(&alice, office_events.clone()).await,
        Err(ErrorCode::Forbidden)
    );
    let lab_events = ListEvents {
        limit: None,
        group: Some(lab.clone()),
        device: None,
        ..Default::default()
    };
    assert_eq!(
        world.run(&alice, lab_events).await,
        Err(ErrorCode::NotFound)
    );

    // …with it, the office's but never the lab's; plus records about her own account.
    world.grant(&admin, &office, &alice, Rights::EVENTS).await;
    let about_alice = NewEvent {
        kind: "login".into(),
        user: Some(alice.id.clone()),
        ..NewEvent::default()
    };
    world.store.append_event(about_alice).await.unwrap();
    let seen = world.run(&alice, list(None)).await.unwrap();
    assert_eq!(
        kinds(seen.clone()),
        [
            "login",
            "group_rights_changed",
            "group_rights_changed",
            "group_created"
        ]
    );
    assert!(seen.iter().all(|r| r.group.as_ref() != Some(&lab)));
    assert_eq!(
        kinds(world.run(&alice, list(Some(2))).await.unwrap()).len(),
        2
    );
    assert_eq!(
        kinds(world.run(&alice, office_events).await.unwrap()).len(),
        3
    );
    // Site admins read everything: 2 creations, 2 grants, 1 login.
    assert_eq!(
        kinds(world.run(&admin, list(Some(1000))).await.unwrap()).len(),
        5
    );
}

#[tokio::test]
async fn the_last_site_admin_cannot_be_removed_or_demoted() {
    let world = World::new();
    let admin = world.user("admin", true).await;
    let alice = world.user("alice", false).await;
    assert_eq!(
        world
            .run(
                &admin,
                RemoveUser {
                    user: admin.id.clone()
                }
            )
            .await,
        Err(ErrorCode::Conflict)
    );
    let demote = |user: &UserRecord| EditUser {
        user: user.id.clone(),
        email: None,
        site_admin: Some(false),
    };
    assert_eq!(
        world.run(&admin, demote(&admin)).await,
        Err(ErrorCode::Conflict)
    );

    let promote = EditUser {
        user: alice.id.clone(),
        email: Some("a@x.example".into()),
        site_admin: Some(true),
    };
    let info = world.run(&admin, promote).await.unwrap();
    assert_eq!(
        (info.site_admin, info.email.as_deref()),
        (true, Some("a@x.example"))
    );
    // With two admins, one may step down or go; the check re-reads the caller every time.
    world.run(&alice, demote(&admin)).await.unwrap();
    assert_eq!(
        world.run(&admin, ListUsers {}).await,
        Err(ErrorCode::Forbidden)
    );
    let mut events = world.events.subscribe();
    world
        .run(
            &alice,
            RemoveUser {
                user: admin.id.clone(),
            },
        )
        .await
        .unwrap();
    let published = next_published(&mut events);
    assert!(matches!(&published.event, Event::UserRemoved { user } if *user == admin.id));
    assert!(
        published.audience.includes(&admin.id, false),
        "the removed user's consoles hear it"
    );
    assert_eq!(
        world.run(&alice, RemoveUser { user: admin.id }).await,
        Err(ErrorCode::NotFound)
    );
}

#[tokio::test]
async fn added_users_log_in_with_their_password_and_may_change_it() {
    let world = World::new();
    let admin = world.user("admin", true).await;
    let add = AddUser {
        name: "Carol".into(),
        password: "correct horse battery".into(),
        email: None,
        site_admin: true,
    };
    let reply = world.run_raw(&admin, add.clone().into()).await.unwrap();
    let fields = reply.as_object().expect("a user object");
    assert!(
        fields
            .keys()
            .all(|key| !key.to_lowercase().contains("hash")),
        "{reply}"
    );
    let info: UserInfo = serde_json::from_value(reply).unwrap();
    assert_eq!((info.id.as_str(), info.site_admin), ("carol", true));
    assert_eq!(world.run(&admin, add).await, Err(ErrorCode::Conflict));
    let weak = AddUser {
        name: "dave".into(),
        password: "x".into(),
        email: None,
        site_admin: false,
    };
    assert_eq!(world.run(&admin, weak).await, Err(ErrorCode::BadRequest));

    let carol = world
        .store
        .user(&UserId::from("carol"))
        .await
        .unwrap()
        .unwrap();
    let wrong = ChangePassword {
        old_password: "nope".into(),
        new_password: "another long one".into(),
    };
    assert_eq!(world.run(&carol, wrong).await, Err(ErrorCode::Forbidden));
    let right = ChangePassword {
        old_password: "correct horse battery".into(),
        new_password: "another long one".into(),
    };
    world.run(&carol, right).await.unwrap();
    let carol = world.reread(&carol).await;
    assert!(crate::auth::passwords::verify_password(
        "another long one",
        &carol.password_hash
    ));
}

#[tokio::test]
async fn invites_and_blocks_are_managed_by_those_who_may_enrol_and_hidden_from_others() {
    let world = World::new();
    let admin = world.user("admin", true).await;
    let helper = world.user("helper", false).await;
    let viewer = world.user("viewer", false).await;
    let stranger = world.user("stranger", false).await;
    let office = world.create_group(&admin, "Office").await;
    world
        .grant(&admin, &office, &helper, Rights::MANAGE_DEVICES)
        .await;
    world.grant(&admin, &office, &viewer, Rights::VIEW).await;
    let pc = world.add_device(&office, "pc").await;

    let created = CreateInvite {
        group: office.clone(),
        expires_minutes: Some(5),
        max_devices: Some(0),
    };
    assert_eq!(
        world.run(&helper, created).await,
        Err(ErrorCode::BadRequest),
        "an invite for no device is refused"
    );
    let invite = world
        .run(
            &helper,
            CreateInvite {
                group: office.clone(),
                expires_minutes: Some(5),
                max_devices: Some(3),
            },
        )
        .await
        .unwrap();
    let id = invite.id;
    let revoke = || RevokeInvite { invite: id.clone() };
    assert_eq!(
        world.run(&stranger, revoke()).await,
        Err(ErrorCode::NotFound)
    );
    assert_eq!(
        world.run(&viewer, revoke()).await,
        Err(ErrorCode::Forbidden)
    );

    let delete = DeleteDevice {
        device: pc.clone(),
        block: true,
    };
    assert_eq!(
        world.run(&viewer, delete.clone()).await,
        Err(ErrorCode::Forbidden)
    );
    world.run(&helper, delete).await.unwrap();
    let blocked = world
        .store
        .blocked_device(&pc)
        .await
        .unwrap()
        .expect("blocked");
    assert_eq!(
        (blocked.name.as_str(), &blocked.blocked_by),
        ("pc", &helper.id)
    );
    let unblock = || UnblockDevice { device: pc.clone() };
    assert_eq!(
        world.run(&stranger, unblock()).await,
        Err(ErrorCode::NotFound)
    );
    assert_eq!(
        world.run(&viewer, unblock()).await,
        Err(ErrorCode::Forbidden)
    );
    let listed = world
        .run(
            &helper,
            ListBlockedDevices {
                group: office.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(listed[0].device, pc);
    world.run(&helper, unblock()).await.unwrap();
    assert_eq!(
        world.run(&helper, unblock()).await,
        Err(ErrorCode::NotFound)
    );

    let revoked = world.run(&helper, revoke()).await.unwrap();
    assert_eq!(revoked.status, InviteStatus::Revoked);
    assert_eq!(revoked.revoked_by, Some(helper.id.clone()));
    let invites = world
        .run(&admin, ListInvites { group: office })
        .await
        .unwrap();
    assert_eq!(invites.len(), 1);
    assert_eq!(invites[0].max_devices, Some(3));
}
