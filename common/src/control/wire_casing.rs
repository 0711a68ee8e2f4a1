//! Every field name on `/control` is camelCase: an example of every request, result, event and
//! reply is serialized and each object key checked, so a snake_case field cannot come back.

use serde::Serialize;
use serde_json::{Value, json};

use super::*;
use crate::agent_proto::NetInterface;
use crate::install::InviteStatus;
use crate::relay::{DirectPath, IceServer, SessionKind};
use crate::rights::Rights;

fn is_camel_case(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase()) && chars.all(|c| c.is_ascii_alphanumeric())
}

/// Every object key in `value`, at any depth, with its path for the failure message.
fn keys(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                out.push((format!("{path}.{key}"), key.clone()));
                keys(inner, &format!("{path}.{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                keys(inner, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn user() -> UserInfo {
    UserInfo {
        id: "alice".into(),
        name: "Alice".into(),
        email: Some("alice@example.org".into()),
        site_admin: true,
        created: 1,
        second_factor: true,
        passkeys: vec!["laptop".into()],
    }
}

fn group() -> GroupInfo {
    GroupInfo {
        id: "g".into(),
        name: "Office".into(),
        description: "first floor".into(),
        members: vec![GroupMember {
            user: "alice".into(),
            rights: Rights::FULL,
        }],
        created: 1,
        direct_connections: true,
        record_sessions: true,
        chat_transcripts: true,
        microphone: false,
        consent: crate::relay::consent::ConsentPolicy {
            prompt_secs: 30,
            when_nobody: crate::relay::consent::WhenNobody::Refuse,
            ..Default::default()
        },
    }
}

fn device() -> DeviceInfo {
    DeviceInfo {
        id: "d".into(),
        name: "pc".into(),
        group: "g".into(),
        online: true,
        os: "Debian".into(),
        hostname: "pc".into(),
        lastseen: 1,
        agent: Some(AgentDetails {
            protocol: 1,
            hostname: "pc".into(),
            os_name: "Debian GNU/Linux".into(),
            os_version: "12".into(),
            arch: "x86_64".into(),
            agent_version: "0.1".into(),
            interfaces: vec![NetInterface {
                name: "eth0".into(),
                mac: "aa:bb:cc:dd:ee:ff".into(),
                addresses: vec!["192.168.1.7/24".into()],
            }],
            users: vec!["alice".into()],
            uptime_secs: 5,
            system_uuid: "a57ea10f-6166-656b-2d61-6d7400010203".into(),
        }),
        amt_uuid: Some("a57ea10f-6166-656b-2d61-6d7400010203".into()),
    }
}

fn record() -> EventRecord {
    EventRecord {
        id: 1,
        time: 2,
        kind: "login".into(),
        user: Some("alice".into()),
        group: Some("g".into()),
        device: Some("d".into()),
        message: "alice logged in".into(),
    }
}

/// One request per action, every optional argument given.
fn requests() -> Vec<RequestBody> {
    vec![
        GetServerInfo {}.into(),
        GetWhoAmI {}.into(),
        ListGroups {}.into(),
        CreateGroup {
            name: "n".into(),
            description: "d".into(),
        }
        .into(),
        EditGroup {
            group: "g".into(),
            name: Some("n".into()),
            description: Some("d".into()),
            direct_connections: Some(false),
            record_sessions: Some(true),
            chat_transcripts: Some(true),
            microphone: Some(false),
            consent: None,
        }
        .into(),
        DeleteGroup { group: "g".into() }.into(),
        ListDevices {
            group: Some("g".into()),
        }
        .into(),
        RenameDevice {
            device: "d".into(),
            name: "n".into(),
        }
        .into(),
        DeleteDevice {
            device: "d".into(),
            block: true,
        }
        .into(),
        ListUsers {}.into(),
        AddUser {
            name: "n".into(),
            password: "p".into(),
            email: Some("e".into()),
            site_admin: true,
        }
        .into(),
        RemoveUser { user: "u".into() }.into(),
        ResetPassword {
            user: "u".into(),
            password: "p".into(),
        }
        .into(),
        EditUser {
            user: "u".into(),
            email: Some("e".into()),
            site_admin: Some(true),
        }
        .into(),
        ChangePassword {
            old_password: "o".into(),
            new_password: "n".into(),
        }
        .into(),
        BeginTotp {}.into(),
        ListRecordings { device: None }.into(),
        CreateShare {
            device: "d".into(),
            kind: crate::share::ShareKind::DesktopView,
            minutes: 60,
            single_use: true,
            label: "Bob".into(),
        }
        .into(),
        ListShares { device: None }.into(),
        UninstallAgent { device: "d".into() }.into(),
        ImportEnrolmentKey {
            group: "g".into(),
            mesh_id: "0x00".into(),
        }
        .into(),
        RevokeShare { share: "s".into() }.into(),
        BeginPasskey {
            name: "laptop".into(),
        }
        .into(),
        FinishPasskey {
            name: "laptop".into(),
            credential: serde_json::json!({ "rawId": "x" }),
        }
        .into(),
        RemovePasskey {
            name: "laptop".into(),
        }
        .into(),
        ConfirmTotp { code: "1".into() }.into(),
        DisableTotp { code: "1".into() }.into(),
        NewBackupCodes { code: "1".into() }.into(),
        ResetSecondFactor { user: "u".into() }.into(),
        SetGroupRights {
            group: "g".into(),
            user: "u".into(),
            rights: Rights::VIEW,
        }
        .into(),
        ListEvents {
            limit: Some(5),
            group: Some("g".into()),
            device: Some("d".into()),
            ..Default::default()
        }
        .into(),
        CreateSession {
            device: "d".into(),
            kind: SessionKind::Terminal,
        }
        .into(),
        GetAgentConfig { group: "g".into() }.into(),
        CreateInvite {
            group: "g".into(),
            expires_minutes: Some(5),
            max_devices: Some(2),
        }
        .into(),
        RotateEnrolmentKey { group: "g".into() }.into(),
        CreateCiraLogin { group: "g".into() }.into(),
        SetAmtAdmin {
            device: "d".into(),
            user: "admin".into(),
            password: "p".into(),
        }
        .into(),
        AmtPower {
            device: "d".into(),
            power: AmtPowerAction::Cycle,
        }
        .into(),
        OpenAmtWeb { device: "d".into() }.into(),
        ListInvites { group: "g".into() }.into(),
        RevokeInvite { invite: "i".into() }.into(),
        ListBlockedDevices { group: "g".into() }.into(),
        UnblockDevice { device: "d".into() }.into(),
        GetAgentUpdates {}.into(),
        StartAgentUpdate {
            group: Some("g".into()),
            waves: vec![10, 100],
            wave_timeout_secs: 60,
            max_failures: 1,
        }
        .into(),
        PauseAgentUpdate {}.into(),
        ResumeAgentUpdate {}.into(),
        CancelAgentUpdate {}.into(),
        RollbackAgent { device: "d".into() }.into(),
        ListChatPeers {}.into(),
        InviteChat { user: "bob".into() }.into(),
        DeclineChat {
            invitation: "i".into(),
        }
        .into(),
    ]
}

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

/// An example of every result type and every event, and both kinds of reply.
fn results_and_events() -> Vec<Value> {
    let results = vec![
        to_json(&ServerInfo {
            name: "t".into(),
            version: "1".into(),
            protocol: PROTOCOL_VERSION,
            agent_cert_hash: "aa".into(),
            web_cert_hash: "bb".into(),
            https_port: 443,
            stun_port: Some(443),
            mps_port: Some(4433),
        }),
        to_json(&WhoAmI {
            user: user(),
            second_factor_needed: true,
        }),
        to_json(&TotpSetup {
            secret: "S".into(),
            uri: "otpauth://totp/x".into(),
            qr_svg: "<svg/>".into(),
        }),
        to_json(&crate::share::ShareLink {
            share: crate::share::ShareInfo {
                id: "s".into(),
                device: "d".into(),
                device_name: "pc".into(),
                kind: crate::share::ShareKind::DesktopControl,
                label: "Bob".into(),
                creator: "alice".into(),
                created_ms: 1,
                expires_ms: 2,
                single_use: true,
                uses: 0,
                status: crate::share::ShareStatus::Active,
            },
            url: "https://x/share#s.t".into(),
        }),
        to_json(&RecordingInfo {
            id: "s".into(),
            device: "d".into(),
            device_name: "pc".into(),
            user: "alice".into(),
            kind: crate::relay::SessionKind::Terminal,
            started_ms: 1,
            duration_ms: 2,
            bytes: 3,
        }),
        to_json(&PasskeyOptions {
            options: serde_json::json!({ "publicKey": {} }),
        }),
        to_json(&BackupCodes {
            codes: vec!["a".into()],
        }),
        to_json(&vec![group()]),
        to_json(&vec![device()]),
        to_json(&vec![user()]),
        to_json(&vec![record()]),
        to_json(&Deleted {
            deleted: GroupId::from("g"),
        }),
        to_json(&PasswordChanged {}),
        to_json(&AmtPowerState::of(8)),
        to_json(&AmtWebLink {
            path: "/amt-web/t/".into(),
            expires_ms: 1,
        }),
        to_json(&CiraLogin {
            user: "t0123456789abcde".into(),
            password: "p".into(),
            mps_host: "tether.example".into(),
            mps_port: 4433,
            root_cert_sha256: "AB".into(),
            root_cert_pem: "-----BEGIN CERTIFICATE-----".into(),
        }),
        to_json(&ChatPeer {
            id: "bob".into(),
            name: "Bob".into(),
            email: None,
        }),
        to_json(&ChatDeclined {
            invitation: "i".into(),
        }),
        to_json(&Unblocked {
            unblocked: "d".into(),
        }),
        to_json(&SessionTicket {
            url: "/meshrelay.ashx?id=t".into(),
            device: "d".into(),
            kind: SessionKind::Desktop,
            rights: Rights::FULL,
            expires_ms: 1,
            direct: Some(DirectPath {
                ice_servers: vec![IceServer {
                    urls: vec!["stun:example.org:443".into()],
                    username: Some("1700000000:alice".into()),
                    credential: Some("c".into()),
                }],
                relay_only: true,
            }),
            consent: crate::relay::consent::ConsentMode::Prompt,
            chat: Some(crate::relay::chat::ChatWindow {
                user: "bob".into(),
                display: ":0".into(),
            }),
        }),
        to_json(&AgentConfig {
            group: "g".into(),
            msh: "MeshName=x".into(),
        }),
        to_json(&Invite {
            id: "i".into(),
            group: "g".into(),
            token: "t".into(),
            expires: 1,
            msh_url: "u".into(),
            agent_url: "u".into(),
            install_url: "u".into(),
            root_cert_url: "u".into(),
            root_cert_sha256: "h".into(),
            install_command: "c".into(),
        }),
        to_json(&vec![InviteInfo {
            id: "i".into(),
            group: "g".into(),
            created_by: "alice".into(),
            created: 1,
            expires: 2,
            enrolled: 0,
            max_devices: Some(3),
            status: InviteStatus::UsedUp,
            revoked: Some(2),
            revoked_by: Some("alice".into()),
        }]),
        to_json(&vec![BlockedDevice {
            device: "d".into(),
            group: "g".into(),
            name: "pc".into(),
            blocked_by: "alice".into(),
            time: 1,
        }]),
        to_json(&crate::agent_update::AgentUpdates {
            release: Some(crate::agent_update::AgentRelease {
                version: "0.2.0".into(),
                platform: "linux-x86_64".into(),
                size: 1,
                sha384: "00".into(),
            }),
            problem: String::new(),
            campaign: Some(campaign()),
        }),
        to_json(&Reply::ok("serverInfo", 1, json!({}))),
        to_json(&Reply::error(
            Some("x"),
            Some(1),
            ErrorCode::RateLimited,
            "slow down",
        )),
    ];
    let events = [
        Event::GroupCreated { group: group() },
        Event::GroupChanged { group: group() },
        Event::GroupDeleted { group: "g".into() },
        Event::DeviceAdded { device: device() },
        Event::DeviceChanged { device: device() },
        Event::DeviceRemoved {
            device: "d".into(),
            group: "g".into(),
        },
        Event::DeviceOnline {
            device: "d".into(),
            group: "g".into(),
        },
        Event::DeviceOffline {
            device: "d".into(),
            group: "g".into(),
        },
        Event::UserAdded { user: user() },
        Event::UserChanged { user: user() },
        Event::UserRemoved {
            user: "alice".into(),
        },
        Event::Logged { record: record() },
        Event::AgentUpdate {
            campaign: campaign(),
        },
        Event::ChatInvitation {
            invitation: "i".into(),
            from: "alice".into(),
            from_name: "Alice".into(),
            url: "/meshrelay.ashx?id=t".into(),
            expires_ms: 1,
        },
        Event::ChatDeclined {
            invitation: "i".into(),
            by_name: "Bob".into(),
        },
    ];
    results
        .into_iter()
        .chain(events.into_iter().map(|e| to_json(&EventFrame::new(e))))
        .collect()
}

fn campaign() -> crate::agent_update::CampaignInfo {
    use crate::agent_update::*;
    CampaignInfo {
        id: "c".into(),
        version: "0.2.0".into(),
        group: None,
        waves: vec![1, 100],
        wave: 1,
        state: CampaignState::Paused,
        why: "2 of 2 failed".into(),
        wave_timeout_secs: 600,
        max_failures: 0,
        started_by: "alice".into(),
        started_at: 1,
        finished_at: Some(2),
        total: 2,
        counts: CampaignCounts {
            rolled_back: 2,
            ..CampaignCounts::default()
        },
        problems: vec![CampaignProblem {
            device: "d".into(),
            name: "pc".into(),
            state: DeviceUpdateState::RolledBack,
            why: "trial failed".into(),
        }],
    }
}

#[test]
fn the_examples_cover_every_action() {
    let mut named: Vec<&str> = requests().iter().map(RequestBody::action).collect();
    named.sort_unstable();
    let mut all = ACTIONS.to_vec();
    all.sort_unstable();
    assert_eq!(named, all);
}

#[test]
fn every_field_name_on_the_wire_is_camel_case() {
    let requests = requests()
        .into_iter()
        .map(|body| to_json(&Request { id: 1, body }));
    let mut found = Vec::new();
    for value in requests.chain(results_and_events()) {
        keys(&value, "", &mut found);
    }
    // The check itself must see the multi-word fields it is about.
    assert!(found.iter().any(|(_, key)| key == "siteAdmin"));
    assert!(found.iter().any(|(_, key)| key == "expiresMs"));
    let bad: Vec<&String> = found
        .iter()
        .filter(|(_, key)| !is_camel_case(key))
        .map(|(path, _)| path)
        .collect();
    assert!(bad.is_empty(), "not camelCase: {bad:?}");
}

#[test]
fn the_casing_check_catches_snake_case() {
    assert!(is_camel_case("agentCertHash"));
    assert!(is_camel_case("id"));
    assert!(!is_camel_case("site_admin"));
    assert!(!is_camel_case("Name"));
    assert!(!is_camel_case(""));
}
