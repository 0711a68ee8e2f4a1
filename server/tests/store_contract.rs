//! The behaviour every `Store` backend must have. [`store_contract`] takes a fresh, empty store;
//! it runs here on redb and on PostgreSQL (a real server: a database of its own per test).

use std::collections::BTreeMap;

use serde_json::json;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tether_common::ids::{DeviceId, GroupId, UserId};
use tether_common::rights::Rights;
use tether_common::share::{ShareKind, ShareStatus};
use tether_server::store::postgres::PostgresStore;

#[allow(dead_code)]
#[path = "common/postgres.rs"]
mod postgres;
use postgres::TestDatabase;
use tether_server::store::redb::RedbStore;
use tether_server::store::snapshot;
use tether_server::store::{
    BlockedDeviceRecord, DeviceRecord, EnrolmentKeyRecord, EventFilter, GroupRecord, InviteRecord,
    NewEvent, Readable, SessionRecord, ShareRecord, ShareUse, Store, StoreError, UserRecord,
};

#[tokio::test]
async fn redb_keeps_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("tether.redb")).unwrap();
    store_contract(&store).await;
}

#[tokio::test]
async fn redb_keeps_records_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tether.redb");
    records_survive_a_reopen(|| async {
        Box::new(RedbStore::open(&path).unwrap()) as Box<dyn Store>
    })
    .await;
}

/// Writes through one handle from `open`, drops it, and reads back through a fresh one.
async fn records_survive_a_reopen<F, Opened>(open: F)
where
    F: Fn() -> Opened,
    Opened: std::future::Future<Output = Box<dyn Store>>,
{
    {
        let store = open().await;
        store.create_first_user(&user("Alice", true)).await.unwrap();
        store.put_setting("k", "v").await.unwrap();
        store
            .append_event(event("e", None, None, None))
            .await
            .unwrap();
    }
    let store = open().await;
    assert_eq!(
        store.user(&UserId::from("alice")).await.unwrap(),
        Some(user("Alice", true))
    );
    assert_eq!(store.setting("k").await.unwrap().as_deref(), Some("v"));
    assert_eq!(
        store
            .append_event(event("f", None, None, None))
            .await
            .unwrap()
            .id,
        2
    );
}

#[tokio::test]
async fn postgres_keeps_the_store_contract() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let store = PostgresStore::connect_with(database.options(), 4)
        .await
        .unwrap();
    store_contract(&store).await;
    drop(store);
    database.drop().await;
}

#[tokio::test]
async fn postgres_keeps_records_across_a_reconnect_and_refuses_a_newer_schema() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    records_survive_a_reopen(|| async {
        Box::new(
            PostgresStore::connect_with(database.options(), 2)
                .await
                .unwrap(),
        ) as Box<dyn Store>
    })
    .await;
    // A newer server applied a migration this one does not know: refused, nothing changed.
    let mut connection = PgConnection::connect_with(&database.options())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99, 'from a newer server', true, '\\x00', 0)",
    )
    .execute(&mut connection)
    .await
    .unwrap();
    match PostgresStore::connect_with(database.options(), 2).await {
        Err(StoreError::TooNew { found: 99, .. }) => {}
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a database with a newer schema was used"),
    }
    drop(connection);
    database.drop().await;
}

#[tokio::test]
async fn migrate_copies_redb_into_postgres_and_back_and_verifies_it() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let redb = RedbStore::open(&dir.path().join("tether.redb")).unwrap();
    let last_event = populate(&redb).await;
    let postgres = PostgresStore::connect_with(database.options(), 2)
        .await
        .unwrap();

    let counts = snapshot::copy(&redb, &postgres).await.unwrap();
    for count in &counts {
        assert!(count.source > 0, "{} had nothing to copy", count.table);
        assert_eq!(count.source, count.target, "{}", count.table);
    }
    // The copy answers the typed queries the server makes, not just the snapshot.
    let office = GroupId::from("g-office");
    assert_eq!(postgres.devices(Some(&office)).await.unwrap().len(), 2);
    assert_eq!(
        postgres.user(&UserId::from("alice")).await.unwrap(),
        Some(user("Alice", true))
    );
    assert!(postgres.session("s-alice").await.unwrap().is_some());
    assert_eq!(
        postgres
            .enrolment_key(KEY_LAB)
            .await
            .unwrap()
            .map(|k| k.group),
        Some(GroupId::from("g-lab"))
    );
    assert_eq!(
        postgres.invite("i-live").await.unwrap().unwrap().enrolled,
        0
    );
    assert!(postgres.share("sh-1").await.unwrap().is_some());
    assert_eq!(
        postgres.blocked_devices(Some(&office)).await.unwrap().len(),
        1
    );
    assert_eq!(postgres.setting("k").await.unwrap().as_deref(), Some("v"));
    let copied_events = postgres.events(&EventFilter::default()).await.unwrap();
    assert_eq!(copied_events.len(), 3);
    assert_eq!(copied_events[0].id, last_event, "ids are kept");
    let next = postgres
        .append_event(event("after", None, None, None))
        .await
        .unwrap();
    assert_eq!(
        next.id,
        last_event + 1,
        "new events continue after the copied ones"
    );

    // A second run finds the same records and changes nothing.
    let again = snapshot::copy(&redb, &postgres).await.unwrap();
    assert_eq!(
        again.iter().map(|c| c.target).sum::<usize>(),
        counts.iter().map(|c| c.target).sum::<usize>() + 1,
        "only the event appended since is extra"
    );

    // A record that differs in the target is reported by name.
    let mut changed = postgres.user(&UserId::from("bob")).await.unwrap().unwrap();
    changed.site_admin = true;
    postgres.update_user(&changed).await.unwrap();
    match snapshot::verify(
        &redb.snapshot().await.unwrap(),
        &postgres.snapshot().await.unwrap(),
    ) {
        Err(snapshot::CopyError::Differs {
            table: "users",
            key,
        }) => assert_eq!(key, "bob"),
        other => panic!("expected a difference in users/bob, got {other:?}"),
    }

    // And back: PostgreSQL into a fresh redb file holds the same records.
    let back = RedbStore::open(&dir.path().join("back.redb")).unwrap();
    snapshot::copy(&postgres, &back).await.unwrap();
    assert_eq!(
        back.user(&UserId::from("bob"))
            .await
            .unwrap()
            .map(|u| u.site_admin),
        Some(true)
    );
    let after = back
        .append_event(event("later", None, None, None))
        .await
        .unwrap();
    assert_eq!(after.id, last_event + 2);
    drop(postgres);
    database.drop().await;
}

/// One record or more of every kind; the id of the last event.
async fn populate(store: &dyn Store) -> u64 {
    store.create_first_user(&user("Alice", true)).await.unwrap();
    store.create_user(&user("Bob", false)).await.unwrap();
    store
        .put_group(&group("g-office", &[("bob", Rights::VIEW)]))
        .await
        .unwrap();
    store.put_group(&group("g-lab", &[])).await.unwrap();
    for (id, group) in [("d1", "g-office"), ("d2", "g-office"), ("d3", "g-lab")] {
        store.put_device(&device(id, group)).await.unwrap();
    }
    let session = SessionRecord {
        user: UserId::from("alice"),
        created: 1,
        expires: i64::MAX,
    };
    store.put_session("s-alice", &session).await.unwrap();
    store
        .set_group_enrolment_key(&GroupId::from("g-lab"), KEY_LAB, false)
        .await
        .unwrap();
    store
        .create_invite(&invite("i-live", "g-office", "0a0a", i64::MAX))
        .await
        .unwrap();
    store
        .create_share(&share("sh-1", "d1", false))
        .await
        .unwrap();
    store.block_device(&block("d9", "g-office")).await.unwrap();
    store.put_setting("k", "v").await.unwrap();
    let mut last = 0;
    for kind in ["one", "two", "three"] {
        last = store
            .append_event(event(kind, Some("alice"), Some("g-office"), None))
            .await
            .unwrap()
            .id;
    }
    last
}

/// Runs every trait method against `store`, which must start empty.
pub async fn store_contract(store: &dyn Store) {
    empty_store(store).await;
    users(store).await;
    groups_and_devices(store).await;
    sessions_and_user_deletion(store).await;
    device_updates(store).await;
    enrolment_keys(store).await;
    invites(store).await;
    shares(store).await;
    blocked_devices(store).await;
    group_deletion(store).await;
    enrolment_goes_with_its_group(store).await;
    events(store).await;
    settings(store).await;
}

fn user(name: &str, site_admin: bool) -> UserRecord {
    UserRecord {
        id: UserId::from_name(name),
        name: name.to_owned(),
        email: Some(format!("{}@example.com", name.to_lowercase())),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        site_admin,
        created: 1_700_000_000,
        password_changed: 1_700_000_000,
        second_factor: None,
        pending_totp: None,
        passkeys: Vec::new(),
    }
}

fn group(id: &str, members: &[(&str, Rights)]) -> GroupRecord {
    GroupRecord {
        id: GroupId::from(id),
        name: format!("Group {id}"),
        description: "for tests".to_owned(),
        members: members
            .iter()
            .map(|(user, rights)| (UserId::from(*user), *rights))
            .collect::<BTreeMap<_, _>>(),
        created: 1_700_000_001,
        direct_connections: true,
        record_sessions: false,
        chat_transcripts: false,
        microphone: false,
        consent: Default::default(),
        cira: None,
    }
}

fn device(id: &str, group: &str) -> DeviceRecord {
    DeviceRecord {
        id: DeviceId::from(id),
        group: GroupId::from(group),
        name: format!("pc-{id}"),
        hostname: format!("pc-{id}.lan"),
        os: "Linux".to_owned(),
        agent_info: json!({ "cores": 4 }),
        last_seen: 1_700_000_002,
        created: 1_700_000_002,
        amt_admin: None,
        amt_uuid: None,
    }
}

fn event(kind: &str, user: Option<&str>, group: Option<&str>, device: Option<&str>) -> NewEvent {
    NewEvent {
        time: 0,
        kind: kind.to_owned(),
        user: user.map(UserId::from),
        group: group.map(GroupId::from),
        device: device.map(DeviceId::from),
        message: format!("{kind} happened"),
    }
}

fn sorted_ids<T, K: Ord + Clone>(items: &[T], key: impl Fn(&T) -> K) -> Vec<K> {
    let mut ids: Vec<K> = items.iter().map(key).collect();
    ids.sort();
    ids
}

async fn empty_store(store: &dyn Store) {
    assert_eq!(store.user_count().await.unwrap(), 0);
    assert!(store.users().await.unwrap().is_empty());
    assert!(store.groups().await.unwrap().is_empty());
    assert!(store.devices(None).await.unwrap().is_empty());
    assert!(
        store
            .events(&EventFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.user(&UserId::from("nobody")).await.unwrap(), None);
    assert_eq!(store.session("0".repeat(64).as_str()).await.unwrap(), None);
    assert_eq!(store.setting("nothing").await.unwrap(), None);
}

async fn users(store: &dyn Store) {
    let alice = user("Alice", true);
    store.create_first_user(&alice).await.unwrap();
    let second_first = store.create_first_user(&user("Mallory", true)).await;
    assert!(
        matches!(second_first, Err(StoreError::Conflict(_))),
        "{second_first:?}"
    );
    assert_eq!(store.user(&UserId::from("mallory")).await.unwrap(), None);

    let bob = user("Bob", false);
    store.create_user(&bob).await.unwrap();
    let again = store.create_user(&user("bob", true)).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(
        store.user(&bob.id).await.unwrap(),
        Some(bob.clone()),
        "a conflict changes nothing"
    );
    store.create_user(&user("Carol", false)).await.unwrap();

    assert_eq!(store.user_count().await.unwrap(), 3);
    let all = store.users().await.unwrap();
    assert_eq!(
        sorted_ids(&all, |u| u.id.clone()),
        ["alice", "bob", "carol"].map(UserId::from)
    );
    assert_eq!(
        all.iter().find(|u| u.id == alice.id),
        Some(&alice),
        "every field round-trips"
    );

    let renamed = UserRecord {
        email: None,
        password_changed: 1_800_000_000,
        second_factor: None,
        pending_totp: None,
        passkeys: Vec::new(),
        ..bob.clone()
    };
    store.update_user(&renamed).await.unwrap();
    assert_eq!(store.user(&bob.id).await.unwrap(), Some(renamed));
    store.update_user(&bob).await.unwrap();
}

async fn groups_and_devices(store: &dyn Store) {
    let office = group(
        "g-office",
        &[
            ("alice", Rights::FULL),
            ("bob", Rights::VIEW),
            ("carol", Rights::VIEW),
        ],
    );
    let lab = group("g-lab", &[("bob", Rights::VIEW)]);
    store.put_group(&office).await.unwrap();
    store.put_group(&lab).await.unwrap();
    assert_eq!(store.group(&office.id).await.unwrap(), Some(office.clone()));
    assert_eq!(store.group(&GroupId::from("g-none")).await.unwrap(), None);
    let groups = store.groups().await.unwrap();
    assert_eq!(
        sorted_ids(&groups, |g| g.id.clone()),
        [lab.id.clone(), office.id.clone()]
    );

    let edited = GroupRecord {
        name: "Head office".to_owned(),
        ..office.clone()
    };
    store.put_group(&edited).await.unwrap();
    assert_eq!(
        store.group(&office.id).await.unwrap().unwrap().name,
        "Head office"
    );
    store.put_group(&office).await.unwrap();

    for (id, group) in [
        ("d1", "g-office"),
        ("d2", "g-office"),
        ("d3", "g-lab"),
        ("d4", "g-lab"),
    ] {
        store.put_device(&device(id, group)).await.unwrap();
    }
    assert_eq!(
        store.device(&DeviceId::from("d1")).await.unwrap(),
        Some(device("d1", "g-office"))
    );
    assert_eq!(store.devices(None).await.unwrap().len(), 4);
    let in_office = store.devices(Some(&office.id)).await.unwrap();
    assert_eq!(
        sorted_ids(&in_office, |d| d.id.clone()),
        ["d1", "d2"].map(DeviceId::from)
    );

    let moved = DeviceRecord {
        name: "renamed".to_owned(),
        ..device("d2", "g-office")
    };
    store.put_device(&moved).await.unwrap();
    assert_eq!(store.device(&moved.id).await.unwrap(), Some(moved));

    assert!(store.delete_device(&DeviceId::from("d4")).await.unwrap());
    assert!(!store.delete_device(&DeviceId::from("d4")).await.unwrap());
    assert_eq!(store.device(&DeviceId::from("d4")).await.unwrap(), None);
}

async fn sessions_and_user_deletion(store: &dyn Store) {
    let session = |user: &str| SessionRecord {
        user: UserId::from(user),
        created: 10,
        expires: 20,
    };
    let keys = ["a".repeat(64), "b".repeat(64), "c".repeat(64)];
    store.put_session(&keys[0], &session("bob")).await.unwrap();
    store.put_session(&keys[1], &session("bob")).await.unwrap();
    store
        .put_session(&keys[2], &session("alice"))
        .await
        .unwrap();
    assert_eq!(store.session(&keys[0]).await.unwrap(), Some(session("bob")));

    assert!(store.delete_user(&UserId::from("bob")).await.unwrap());
    assert!(!store.delete_user(&UserId::from("bob")).await.unwrap());
    assert_eq!(store.user(&UserId::from("bob")).await.unwrap(), None);
    assert_eq!(store.user_count().await.unwrap(), 2);
    assert_eq!(
        store.session(&keys[0]).await.unwrap(),
        None,
        "the user's sessions end"
    );
    assert_eq!(store.session(&keys[1]).await.unwrap(), None);
    assert_eq!(
        store.session(&keys[2]).await.unwrap(),
        Some(session("alice")),
        "others' sessions stay"
    );
    for group in store.groups().await.unwrap() {
        assert!(
            !group.members.contains_key(&UserId::from("bob")),
            "bob left {}",
            group.id
        );
    }
    let office = store
        .group(&GroupId::from("g-office"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(office.members.len(), 2, "other members stay");

    store.delete_session(&keys[2]).await.unwrap();
    assert_eq!(store.session(&keys[2]).await.unwrap(), None);
    store.delete_session(&keys[2]).await.unwrap();

    let early = SessionRecord {
        user: UserId::from("alice"),
        created: 10,
        expires: 100,
    };
    let late = SessionRecord {
        expires: 200,
        ..early.clone()
    };
    store.put_session(&keys[0], &early).await.unwrap();
    store.put_session(&keys[1], &late).await.unwrap();
    assert_eq!(store.prune_sessions(50).await.unwrap(), 0);
    assert_eq!(store.prune_sessions(150).await.unwrap(), 1);
    assert_eq!(
        store.session(&keys[0]).await.unwrap(),
        None,
        "the expired session went"
    );
    assert_eq!(
        store.session(&keys[1]).await.unwrap(),
        Some(late),
        "the live one stayed"
    );
    store.delete_session(&keys[1]).await.unwrap();
}

async fn group_deletion(store: &dyn Store) {
    assert!(
        store
            .delete_group(&GroupId::from("g-office"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_group(&GroupId::from("g-office"))
            .await
            .unwrap()
    );
    assert_eq!(store.group(&GroupId::from("g-office")).await.unwrap(), None);
    let left = store.devices(None).await.unwrap();
    assert_eq!(
        sorted_ids(&left, |d| d.id.clone()),
        [DeviceId::from("d3")],
        "only its devices went"
    );
}

async fn device_updates(store: &dyn Store) {
    let d1 = DeviceId::from("d1");
    let before = store.device(&d1).await.unwrap().unwrap();
    let renamed = store
        .update_device(
            &d1,
            Box::new(|d| {
                d.name = "updated".into();
                true
            }),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(renamed.changed);
    assert_eq!(renamed.device.name, "updated");
    assert_eq!(store.device(&d1).await.unwrap(), Some(renamed.device));
    // A change that says it changed nothing is not written.
    let untouched = store
        .update_device(
            &d1,
            Box::new(|d| {
                d.name = "not kept".into();
                false
            }),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!untouched.changed);
    assert_eq!(store.device(&d1).await.unwrap().unwrap().name, "updated");
    store.put_device(&before).await.unwrap();
    // A device that is not there is not created.
    let gone = DeviceId::from("d-gone");
    let update = store
        .update_device(&gone, Box::new(|_| true))
        .await
        .unwrap();
    assert_eq!(update, None);
    assert_eq!(store.device(&gone).await.unwrap(), None);
}

const KEY_OFFICE_1: &str = "0101";
const KEY_OFFICE_2: &str = "0202";
const KEY_LAB: &str = "0303";

async fn enrolment_keys(store: &dyn Store) {
    let (office, lab) = (GroupId::from("g-office"), GroupId::from("g-lab"));
    assert_eq!(store.group_enrolment_key(&office).await.unwrap(), None);
    assert_eq!(store.enrolment_key(KEY_OFFICE_1).await.unwrap(), None);
    // The first key made on need stays: a racing second one gets the first back.
    let made = store
        .set_group_enrolment_key(&office, KEY_OFFICE_1, false)
        .await
        .unwrap();
    assert_eq!(made, KEY_OFFICE_1);
    let kept = store
        .set_group_enrolment_key(&office, KEY_OFFICE_2, false)
        .await
        .unwrap();
    assert_eq!(kept, KEY_OFFICE_1);
    assert_eq!(store.enrolment_key(KEY_OFFICE_2).await.unwrap(), None);
    let office_key = EnrolmentKeyRecord {
        group: office.clone(),
        invite: None,
    };
    assert_eq!(
        store.enrolment_key(KEY_OFFICE_1).await.unwrap(),
        Some(office_key.clone())
    );
    // A rotation replaces it: the old key admits nothing any more.
    let rotated = store
        .set_group_enrolment_key(&office, KEY_OFFICE_2, true)
        .await
        .unwrap();
    assert_eq!(rotated, KEY_OFFICE_2);
    assert_eq!(store.enrolment_key(KEY_OFFICE_1).await.unwrap(), None);
    assert_eq!(
        store.enrolment_key(KEY_OFFICE_2).await.unwrap(),
        Some(office_key)
    );
    assert_eq!(
        store.group_enrolment_key(&office).await.unwrap().as_deref(),
        Some(KEY_OFFICE_2)
    );
    // One key, one group.
    assert!(matches!(
        store
            .set_group_enrolment_key(&lab, KEY_OFFICE_2, true)
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .set_group_enrolment_key(&lab, KEY_LAB, false)
        .await
        .unwrap();
}

fn invite(id: &str, group: &str, key: &str, expires: i64) -> InviteRecord {
    InviteRecord {
        id: id.to_owned(),
        group: GroupId::from(group),
        created_by: UserId::from("bob"),
        created: 1_700_000_000,
        expires,
        enrolment_key: key.to_owned(),
        enrolled: 0,
        max_devices: Some(2),
        revoked: None,
        revoked_by: None,
    }
}

async fn invites(store: &dyn Store) {
    const NOW: i64 = 1_700_000_100;
    let live = invite("i-live", "g-office", "0a0a", NOW + 3600);
    let old = invite("i-old", "g-office", "0b0b", NOW - 10);
    let lab = invite("i-lab", "g-lab", "0c0c", NOW + 3600);
    for invite in [&live, &old, &lab] {
        store.create_invite(invite).await.unwrap();
    }
    assert!(matches!(
        store.create_invite(&live).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        matches!(
            store
                .create_invite(&invite("i-other", "g-lab", KEY_LAB, NOW + 60))
                .await,
            Err(StoreError::Conflict(_))
        ),
        "an invite cannot take a group's key"
    );
    assert_eq!(store.invite("i-live").await.unwrap(), Some(live.clone()));
    assert_eq!(
        store.enrolment_key("0a0a").await.unwrap(),
        Some(EnrolmentKeyRecord {
            group: GroupId::from("g-office"),
            invite: Some("i-live".into()),
        })
    );
    let office = store
        .invites(Some(&GroupId::from("g-office")))
        .await
        .unwrap();
    assert_eq!(sorted_ids(&office, |i| i.id.clone()), ["i-live", "i-old"]);
    assert_eq!(store.invites(None).await.unwrap().len(), 3);

    // Counting enrolments stops at the limit, and never counts on an unusable invite.
    assert!(store.count_invite_enrolment("i-live", NOW).await.unwrap());
    assert!(store.count_invite_enrolment("i-live", NOW).await.unwrap());
    assert!(!store.count_invite_enrolment("i-live", NOW).await.unwrap());
    assert_eq!(store.invite("i-live").await.unwrap().unwrap().enrolled, 2);
    assert!(!store.count_invite_enrolment("i-old", NOW).await.unwrap());
    assert!(!store.count_invite_enrolment("i-none", NOW).await.unwrap());

    let bob = UserId::from("bob");
    let revoked = store
        .revoke_invite("i-lab", &bob, NOW)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (revoked.revoked, revoked.revoked_by),
        (Some(NOW), Some(bob.clone()))
    );
    let again = store
        .revoke_invite("i-lab", &UserId::from("alice"), NOW + 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.revoked, Some(NOW), "the first revocation counts");
    assert!(!store.count_invite_enrolment("i-lab", NOW).await.unwrap());
    assert_eq!(
        store.revoke_invite("i-none", &bob, NOW).await.unwrap(),
        None
    );

    // Pruning removes long-expired invites and their keys only.
    assert_eq!(store.prune_invites(NOW).await.unwrap(), 1);
    assert_eq!(store.invite("i-old").await.unwrap(), None);
    assert_eq!(store.enrolment_key("0b0b").await.unwrap(), None);
    assert_eq!(store.prune_invites(NOW).await.unwrap(), 0);
    assert!(store.invite("i-live").await.unwrap().is_some());
}

fn block(device: &str, group: &str) -> BlockedDeviceRecord {
    BlockedDeviceRecord {
        device: DeviceId::from(device),
        group: GroupId::from(group),
        name: format!("pc-{device}"),
        blocked_by: UserId::from("alice"),
        time: 1_700_000_003,
    }
}

/// Unix seconds the link tests treat as now.
const SHARE_NOW: i64 = 1_700_000_100;

fn share(id: &str, device: &str, single_use: bool) -> ShareRecord {
    ShareRecord {
        id: id.to_owned(),
        secret_sha256: "ab".repeat(32),
        device: DeviceId::from(device),
        kind: ShareKind::Terminal,
        label: "Bob".to_owned(),
        creator: UserId::from_name("alice"),
        created_ms: SHARE_NOW * 1000,
        expires_ms: (SHARE_NOW + 3600) * 1000,
        single_use,
        uses: 0,
        revoked_ms: None,
        revoked_by: None,
    }
}

/// Links: counted uses (a single-use link admits one), revocation, pruning by age and by device.
async fn shares(store: &dyn Store) {
    let now_ms = SHARE_NOW * 1000;
    let (many, once, orphan) = (
        share("s-many", "d1", false),
        share("s-once", "d1", true),
        share("s-gone", "d-none", false),
    );
    for s in [&many, &once, &orphan] {
        store.create_share(s).await.unwrap();
    }
    assert!(matches!(
        store.create_share(&many).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.share("s-many").await.unwrap(), Some(many.clone()));
    assert_eq!(store.shares().await.unwrap().len(), 3);
    for expected_uses in 1..=2 {
        match store.use_share("s-many", now_ms).await.unwrap() {
            ShareUse::Admitted(s) => assert_eq!(s.uses, expected_uses),
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(
        store.use_share("s-once", now_ms).await.unwrap(),
        ShareUse::Admitted(_)
    ));
    assert_eq!(
        store.use_share("s-once", now_ms).await.unwrap(),
        ShareUse::Refused(ShareStatus::Used)
    );
    assert_eq!(
        store.use_share("s-many", many.expires_ms).await.unwrap(),
        ShareUse::Refused(ShareStatus::Expired)
    );
    assert_eq!(
        store.use_share("s-none", now_ms).await.unwrap(),
        ShareUse::Unknown
    );
    let alice = UserId::from_name("alice");
    let revoked = store
        .revoke_share("s-many", &alice, now_ms + 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((revoked.revoked_ms, revoked.uses), (Some(now_ms + 5), 2));
    let again = store
        .revoke_share("s-many", &alice, now_ms + 9)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.revoked_ms,
        Some(now_ms + 5),
        "the first revocation stays"
    );
    assert!(!again.live_at(now_ms));
    assert_eq!(
        store.use_share("s-many", now_ms).await.unwrap(),
        ShareUse::Refused(ShareStatus::Revoked)
    );
    assert_eq!(
        store.revoke_share("s-none", &alice, now_ms).await.unwrap(),
        None
    );
    // The link to a device that is not there goes; the others stay until they are old.
    assert_eq!(store.prune_shares(now_ms).await.unwrap(), 1);
    assert_eq!(store.share("s-gone").await.unwrap(), None);
    assert_eq!(store.prune_shares(once.expires_ms + 1).await.unwrap(), 2);
    assert!(store.shares().await.unwrap().is_empty());
}

async fn blocked_devices(store: &dyn Store) {
    let (office_block, lab_block) = (block("b1", "g-office"), block("b2", "g-lab"));
    store.block_device(&office_block).await.unwrap();
    store.block_device(&lab_block).await.unwrap();
    store.block_device(&block("b3", "g-lab")).await.unwrap();
    assert_eq!(
        store.blocked_device(&DeviceId::from("b1")).await.unwrap(),
        Some(office_block.clone())
    );
    assert_eq!(
        store.blocked_device(&DeviceId::from("d1")).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .blocked_devices(Some(&GroupId::from("g-office")))
            .await
            .unwrap(),
        [office_block]
    );
    assert_eq!(store.blocked_devices(None).await.unwrap().len(), 3);
    assert!(store.unblock_device(&DeviceId::from("b3")).await.unwrap());
    assert!(!store.unblock_device(&DeviceId::from("b3")).await.unwrap());
    assert_eq!(
        store
            .blocked_devices(Some(&GroupId::from("g-lab")))
            .await
            .unwrap(),
        [lab_block]
    );
}

/// After `group_deletion` removed g-office: its keys, invites and blocks are gone, g-lab's stay.
async fn enrolment_goes_with_its_group(store: &dyn Store) {
    let (office, lab) = (GroupId::from("g-office"), GroupId::from("g-lab"));
    assert_eq!(store.group_enrolment_key(&office).await.unwrap(), None);
    assert_eq!(store.enrolment_key(KEY_OFFICE_2).await.unwrap(), None);
    assert_eq!(store.enrolment_key("0a0a").await.unwrap(), None);
    assert!(store.invites(Some(&office)).await.unwrap().is_empty());
    assert!(
        store
            .blocked_devices(Some(&office))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.group_enrolment_key(&lab).await.unwrap().as_deref(),
        Some(KEY_LAB)
    );
    assert_eq!(store.invites(Some(&lab)).await.unwrap().len(), 1);
    assert_eq!(store.blocked_devices(Some(&lab)).await.unwrap().len(), 1);
    assert!(store.enrolment_key("0c0c").await.unwrap().is_some());
}

async fn events(store: &dyn Store) {
    let before = now_ms();
    let mut ids = Vec::new();
    for new in [
        event("login", Some("alice"), None, None),
        event("group_created", Some("alice"), Some("g-lab"), None),
        event("device_online", None, Some("g-lab"), Some("d3")),
        event("login", Some("carol"), None, None),
        event("device_offline", None, Some("g-lab"), Some("d3")),
    ] {
        let record = store.append_event(new.clone()).await.unwrap();
        assert_eq!(
            (record.kind.as_str(), &record.user, &record.message),
            (new.kind.as_str(), &new.user, &new.message)
        );
        assert!(
            record.time >= before && record.time <= now_ms() + 1,
            "time 0 means now: {}",
            record.time
        );
        ids.push(record.id);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow: {ids:?}");

    let all = store.events(&EventFilter::default()).await.unwrap();
    let newest_first: Vec<u64> = ids.iter().rev().copied().collect();
    assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), newest_first);
    let two = store
        .events(&EventFilter {
            limit: 2,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        two.iter().map(|e| e.id).collect::<Vec<_>>(),
        newest_first[..2]
    );

    let by_group = EventFilter {
        group: Some(GroupId::from("g-lab")),
        ..EventFilter::default()
    };
    assert_eq!(store.events(&by_group).await.unwrap().len(), 3);
    let by_device = EventFilter {
        device: Some(DeviceId::from("d3")),
        limit: 1,
        ..EventFilter::default()
    };
    let last_device = store.events(&by_device).await.unwrap();
    assert_eq!(
        last_device
            .iter()
            .map(|e| e.kind.as_str())
            .collect::<Vec<_>>(),
        ["device_offline"]
    );
    let by_user = EventFilter {
        user: Some(UserId::from("alice")),
        ..EventFilter::default()
    };
    assert_eq!(
        store
            .events(&by_user)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect::<Vec<_>>(),
        [ids[1], ids[0]]
    );
    let both = EventFilter {
        user: Some(UserId::from("alice")),
        group: Some(GroupId::from("g-lab")),
        ..EventFilter::default()
    };
    assert_eq!(
        store.events(&both).await.unwrap().len(),
        1,
        "filters combine"
    );
    // What a member of g-lab may read: its events and those about carol's own account, not
    // alice's login (about another account).
    let readable = EventFilter {
        readable_by: Some(Readable {
            groups: [GroupId::from("g-lab")].into(),
            user: UserId::from("carol"),
        }),
        ..EventFilter::default()
    };
    assert_eq!(
        store
            .events(&readable)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect::<Vec<_>>(),
        [ids[4], ids[3], ids[2], ids[1]]
    );

    // Kind, text (any case), time and paging, combined with the rest.
    let ids_of = |records: Vec<tether_common::control::EventRecord>| {
        records.iter().map(|e| e.id).collect::<Vec<_>>()
    };
    let logins = EventFilter {
        kind: Some("login".into()),
        ..EventFilter::default()
    };
    assert_eq!(
        ids_of(store.events(&logins).await.unwrap()),
        [ids[3], ids[0]]
    );
    let text = EventFilter {
        text: Some("DEVICE_ON".into()),
        ..EventFilter::default()
    };
    assert_eq!(ids_of(store.events(&text).await.unwrap()), [ids[2]]);
    let page = EventFilter {
        before_id: Some(ids[3]),
        limit: 2,
        ..EventFilter::default()
    };
    assert_eq!(ids_of(store.events(&page).await.unwrap()), [ids[2], ids[1]]);
    let later = EventFilter {
        since_ms: Some(now_ms() + 60_000),
        ..EventFilter::default()
    };
    assert!(store.events(&later).await.unwrap().is_empty());
    let earlier = EventFilter {
        until_ms: Some(now_ms() + 60_000),
        kind: Some("login".into()),
        user: Some(UserId::from("carol")),
        ..EventFilter::default()
    };
    assert_eq!(ids_of(store.events(&earlier).await.unwrap()), [ids[3]]);

    let old = NewEvent {
        time: 1_000,
        ..event("ancient", None, None, None)
    };
    let ancient = store.append_event(old).await.unwrap();
    assert_eq!(ancient.time, 1_000, "a given time is kept");
    assert_eq!(store.prune_events(before).await.unwrap(), 1);
    assert_eq!(
        store.events(&EventFilter::default()).await.unwrap().len(),
        5
    );
    assert_eq!(store.prune_events(now_ms() + 60_000).await.unwrap(), 5);
    assert!(
        store
            .events(&EventFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    let next = store
        .append_event(event("after_prune", None, None, None))
        .await
        .unwrap();
    assert!(
        next.id > ancient.id,
        "ids are never reused, even after pruning everything"
    );
}

async fn settings(store: &dyn Store) {
    store.put_setting("greeting", "hello").await.unwrap();
    assert_eq!(
        store.setting("greeting").await.unwrap().as_deref(),
        Some("hello")
    );
    store.put_setting("greeting", "").await.unwrap();
    assert_eq!(
        store.setting("greeting").await.unwrap().as_deref(),
        Some("")
    );
    // The first claim stores; later ones get what is stored and change nothing.
    assert_eq!(store.claim_setting("key", "first").await.unwrap(), "first");
    assert_eq!(store.claim_setting("key", "second").await.unwrap(), "first");
    assert_eq!(
        store.setting("key").await.unwrap().as_deref(),
        Some("first")
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
