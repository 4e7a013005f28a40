//! TLS, authentication and roles end to end: a real `wfl up` with TLS, a client CA and a tokens
//! file written by `wfl token add`, called over real TLS by every role.
//!
//! - every guarded method × every role × a foreign org: denied unless the role sees every org
//!   (the count is printed), and the right role with its own org allowed;
//! - no token, a wrong token, a certificate no tokens file names: UNAUTHENTICATED;
//! - mTLS identities map to principals; a certificate from another CA fails the handshake;
//! - the tokens file holds hashes only; `/metrics` over HTTPS wants an auditor or admin;
//! - a server exposed without TLS or tokens refuses to start, in one line.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tonic::{Code, Status};
use wfl_auth::{Conn, Credentials, Role};
use wfl_proto::pb;
use wfl_testkit::scenario;

const OWN: &str = "acme";
const FOREIGN: &str = "orgb";

fn tls_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/tls")
}

fn tls_file(name: &str) -> String {
    tls_dir().join(name).display().to_string()
}

struct Fixture {
    _dir: tempfile::TempDir,
    node: common::Proc,
    tokens_file: PathBuf,
    /// Token per role (writer and analyst act for OWN only).
    tokens: Vec<(Role, String)>,
    /// An event of the foreign org, recorded by the admin.
    foreign_event: String,
}

impl Fixture {
    async fn start() -> Fixture {
        let dir = wfl_testkit::temp_dir();
        let tokens_file = dir.path().join("tokens.toml");
        let mut tokens = Vec::new();
        for role in Role::ALL {
            let orgs: &[&str] = if role.sees_every_org() { &[] } else { &[OWN] };
            let name = format!("{OWN}-{role}");
            tokens.push((
                role,
                common::token_add(&tokens_file, &name, role.as_str(), orgs),
            ));
        }
        // An mTLS identity: the DNS name in tests/data/tls/acme-analyst.pem.
        let mut text = std::fs::read_to_string(&tokens_file).expect("tokens file");
        text.push_str(
            "\n[[principal]]\nname = \"acme-hr-cert\"\nrole = \"analyst\"\norgs = [\"acme\"]\ncert_name = \"acme-analyst.clients.wfl\"\n",
        );
        std::fs::write(&tokens_file, text).expect("write tokens file");
        let node = common::up(
            dir.path(),
            &[
                "--tls-cert",
                &tls_file("server.pem"),
                "--tls-key",
                &tls_file("server.key"),
                "--tls-client-ca",
                &tls_file("ca.pem"),
                "--tokens-file",
                &tokens_file.display().to_string(),
            ],
        );
        let mut f = Fixture {
            _dir: dir,
            node,
            tokens_file,
            tokens,
            foreign_event: String::new(),
        };
        // History for every reader: events of both orgs, recorded by the admin.
        let admin = f.conn(Some(Role::Admin)).await;
        let mut ingest = pb::ingest_client::IngestClient::new(admin);
        let events: Vec<pb::Event> = [
            scenario::hire(OWN, "w-1"),
            scenario::hire(FOREIGN, "w-2"),
            scenario::hire(OWN, "w-3"),
        ]
        .iter()
        .map(common::wire)
        .collect();
        f.foreign_event = events[1].event_id.clone();
        let r = ingest
            .record_batch(pb::RecordBatchRequest {
                events,
                ack: pb::AckLevel::Committed as i32,
                include_proof: false,
            })
            .await
            .expect("the admin records both orgs")
            .into_inner();
        assert_eq!(r.committed, 3, "{r:?}");
        f
    }

    fn addr(&self) -> String {
        self.node.grpc.replace("http://", "")
    }

    fn token(&self, role: Role) -> String {
        self.tokens
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, t)| t.clone())
            .expect("token per role")
    }

    fn credentials(&self, token: Option<String>, identity: Option<&str>) -> Credentials {
        let cert = identity.map(|n| {
            (
                tls_dir().join(format!("{n}.pem")),
                tls_dir().join(format!("{n}.key")),
            )
        });
        Credentials {
            tls: Some(
                wfl_auth::tls::client(
                    Some(&tls_dir().join("ca.pem")),
                    cert.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
                    Some("localhost"),
                )
                .expect("client TLS"),
            ),
            token,
            partition: None,
        }
    }

    async fn conn(&self, role: Option<Role>) -> Conn {
        self.credentials(role.map(|r| self.token(r)), None)
            .connect(&self.addr())
            .await
            .expect("TLS connect")
    }
}

fn view(org: &str) -> pb::ViewRequest {
    pb::ViewRequest {
        org_id: org.to_owned(),
        ..Default::default()
    }
}

/// Calls one guarded method, naming `org` wherever the request has an org.
async fn call(method: &str, conn: Conn, org: &str, foreign_event: &str) -> Result<(), Status> {
    let mut ingest = pb::ingest_client::IngestClient::new(conn.clone());
    let mut ledger = pb::ledger_client::LedgerClient::new(conn.clone());
    let mut views = pb::views_client::ViewsClient::new(conn);
    let event = common::wire(&scenario::hire(org, &format!("w-{}", uuid::Uuid::now_v7())));
    let orgs = vec![org.to_owned()];
    match method {
        "/wfl.v1.Ingest/Record" => ingest
            .record(pb::RecordRequest {
                event: Some(event),
                ack: pb::AckLevel::Committed as i32,
                include_proof: false,
            })
            .await
            .map(drop),
        "/wfl.v1.Ingest/RecordBatch" => ingest
            .record_batch(pb::RecordBatchRequest {
                events: vec![event],
                ack: pb::AckLevel::Committed as i32,
                include_proof: false,
            })
            .await
            .map(drop),
        "/wfl.v1.Ledger/Read" => {
            let mut s = ledger
                .read(pb::ReadRequest {
                    org_ids: orgs,
                    ..Default::default()
                })
                .await?
                .into_inner();
            while s.message().await?.is_some() {}
            Ok(())
        }
        "/wfl.v1.Ledger/ReadBatches" => {
            let mut s = ledger
                .read_batches(pb::ReadRequest {
                    org_ids: orgs,
                    ..Default::default()
                })
                .await?
                .into_inner();
            while s.message().await?.is_some() {}
            Ok(())
        }
        "/wfl.v1.Ledger/Subscribe" => {
            let mut s = ledger
                .subscribe(pb::SubscribeRequest {
                    org_ids: orgs,
                    heartbeat_ms: 100,
                    ..Default::default()
                })
                .await?
                .into_inner();
            s.message().await.map(drop)
        }
        "/wfl.v1.Ledger/Head" => ledger.head(pb::HeadRequest {}).await.map(drop),
        "/wfl.v1.Ledger/GetPublicKey" => ledger
            .get_public_key(pb::PublicKeyRequest {})
            .await
            .map(drop),
        "/wfl.v1.Ledger/GetCheckpoint" => {
            match ledger
                .get_checkpoint(pb::GetCheckpointRequest { tree_size: 0 })
                .await
            {
                // No checkpoint cut yet is an answer, not a refusal.
                Err(s) if s.code() == Code::NotFound => Ok(()),
                r => r.map(drop),
            }
        }
        "/wfl.v1.Ledger/ListCheckpoints" => {
            let mut s = ledger
                .list_checkpoints(pb::ListCheckpointsRequest { from_size: 0 })
                .await?
                .into_inner();
            while s.message().await?.is_some() {}
            Ok(())
        }
        "/wfl.v1.Ledger/GetInclusionProof" => ledger
            .get_inclusion_proof(pb::InclusionProofRequest {
                sequence: 1,
                tree_size: 0,
            })
            .await
            .map(drop),
        "/wfl.v1.Ledger/GetConsistencyProof" => ledger
            .get_consistency_proof(pb::ConsistencyProofRequest {
                old_size: 1,
                new_size: 0,
            })
            .await
            .map(drop),
        "/wfl.v1.Views/Separations" => views.separations(view(org)).await.map(drop),
        "/wfl.v1.Views/Headcount" => views.headcount(view(org)).await.map(drop),
        "/wfl.v1.Views/CohortExposure" => views.cohort_exposure(view(org)).await.map(drop),
        "/wfl.v1.Views/HiringSignals" => views.hiring_signals(view(org)).await.map(drop),
        "/wfl.v1.Views/AiAdoption" => views.ai_adoption(view(org)).await.map(drop),
        "/wfl.v1.Views/ThresholdWatch" => views
            .threshold_watch(pb::ThresholdRequest {
                org_id: org.to_owned(),
                ..Default::default()
            })
            .await
            .map(drop),
        "/wfl.v1.Views/Explain" => {
            // By figure (the org is in the figure's request) and, for a foreign org, by the id
            // of one of its events: both must be refused.
            views
                .explain(pb::ExplainRequest {
                    figure: Some(pb::Figure {
                        view: "headcount".into(),
                        path: "/".into(),
                        request: Some(view(org)),
                        thresholds: None,
                    }),
                    ..Default::default()
                })
                .await
                .map(drop)
                .or_else(|s| {
                    // A headcount with no figure at "/" is the caller's mistake, not a refusal.
                    if s.code() == Code::InvalidArgument {
                        Ok(())
                    } else {
                        Err(s)
                    }
                })?;
            if org == FOREIGN {
                views
                    .explain(pb::ExplainRequest {
                        event_ids: vec![foreign_event.to_owned()],
                        ..Default::default()
                    })
                    .await
                    .map(drop)
            } else {
                Ok(())
            }
        }
        other => panic!("no call for {other}: add it to tests/auth.rs"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_role_and_foreign_org_is_checked() {
    let f = Fixture::start().await;
    let mut denied = 0usize;
    let mut allowed = 0usize;
    for (method, access) in wfl_auth::access::METHODS {
        for role in Role::ALL {
            let by_role = wfl_auth::access::allows(role, *access);
            // The right role with its own org: allowed.
            let own = call(method, f.conn(Some(role)).await, OWN, &f.foreign_event).await;
            if by_role {
                if let Err(s) = &own {
                    panic!("{role} on {method} with its own org: {s:?}");
                }
                allowed += 1;
            } else {
                let s = own.expect_err(&format!("{role} may not call {method}"));
                assert_eq!(s.code(), Code::PermissionDenied, "{role} {method}: {s:?}");
                denied += 1;
            }
            // A foreign org: denied unless the role sees every org.
            let foreign = call(method, f.conn(Some(role)).await, FOREIGN, &f.foreign_event).await;
            let org_scoped = !matches!(access, wfl_auth::Access::Meta | wfl_auth::Access::Proofs);
            if by_role && (role.sees_every_org() || !org_scoped) {
                if let Err(s) = &foreign {
                    panic!("{role} on {method} for {FOREIGN}: {s:?}");
                }
                allowed += 1;
            } else {
                let s = foreign.expect_err(&format!("{role} on {method} for {FOREIGN}"));
                assert_eq!(s.code(), Code::PermissionDenied, "{role} {method}: {s:?}");
                if by_role {
                    assert!(s.message().contains(FOREIGN), "names the org: {s:?}");
                }
                denied += 1;
            }
        }
    }
    println!(
        "auth matrix: {} methods x {} roles x own/foreign org: {denied} denied, {allowed} allowed",
        wfl_auth::access::METHODS.len(),
        Role::ALL.len()
    );
    assert_eq!(denied + allowed, wfl_auth::access::METHODS.len() * 4 * 2);
    // Every restricted role's foreign-org call was denied: writer and analyst, every method.
    assert!(denied >= wfl_auth::access::METHODS.len() * 2);

    // An empty filter means "my orgs": an analyst reading everything sees only its org, and
    // ReadBatches gives a caller restricted to one org exactly what Read gives it.
    let mut analyst = pb::ledger_client::LedgerClient::new(f.conn(Some(Role::Analyst)).await);
    let mut read = analyst
        .read(pb::ReadRequest::default())
        .await
        .expect("Read")
        .into_inner();
    let mut orgs = BTreeSet::new();
    let mut everything = Vec::new();
    while let Some(c) = read.message().await.expect("Read stream") {
        orgs.insert(c.event.clone().expect("body").org_id);
        everything.push(c);
    }
    assert_eq!(orgs, BTreeSet::from([OWN.to_owned()]));
    assert!(everything.len() >= 2, "{everything:?}");
    for request in [
        pb::ReadRequest::default(),
        pb::ReadRequest {
            org_ids: vec![OWN.to_owned()],
            max_batch: 1,
            ..Default::default()
        },
        pb::ReadRequest {
            from_sequence: everything[1].sequence,
            limit: 1,
            max_batch: 2,
            ..Default::default()
        },
    ] {
        let mut batches = analyst
            .read_batches(request.clone())
            .await
            .expect("ReadBatches")
            .into_inner();
        let mut got = Vec::new();
        while let Some(b) = batches.message().await.expect("ReadBatches stream") {
            got.extend(b.events);
        }
        let mut read = analyst
            .read(request.clone())
            .await
            .expect("Read")
            .into_inner();
        let mut want = Vec::new();
        while let Some(c) = read.message().await.expect("Read stream") {
            want.push(c);
        }
        assert_eq!(got, want, "{request:?}");
    }
    let s = analyst
        .read_batches(pb::ReadRequest {
            org_ids: vec![OWN.to_owned(), FOREIGN.to_owned()],
            ..Default::default()
        })
        .await
        .expect_err("a foreign org among its own");
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");

    // A batch with one foreign event is refused whole, naming the org; nothing is recorded.
    let before = head(&f).await;
    let s = pb::ingest_client::IngestClient::new(f.conn(Some(Role::Writer)).await)
        .record_batch(pb::RecordBatchRequest {
            events: vec![
                common::wire(&scenario::hire(OWN, "w-9")),
                common::wire(&scenario::hire(FOREIGN, "w-10")),
            ],
            ack: pb::AckLevel::Committed as i32,
            include_proof: false,
        })
        .await
        .expect_err("a foreign event in the batch");
    assert_eq!(s.code(), Code::PermissionDenied);
    assert!(s.message().contains(FOREIGN), "{s:?}");
    assert_eq!(head(&f).await, before);

    // Every denial is logged with principal, method and org.
    let log = f.node.log_text();
    let line = log
        .lines()
        .find(|l| {
            l.contains("permission denied")
                && l.contains("org=\"orgb\"")
                && l.contains("acme-writer")
                && l.contains("RecordBatch")
        })
        .unwrap_or_else(|| panic!("no denial line in the log:\n{log}"));
    assert!(line.contains("principal="), "{line}");
}

async fn head(f: &Fixture) -> u64 {
    pb::ledger_client::LedgerClient::new(f.conn(Some(Role::Auditor)).await)
        .head(pb::HeadRequest {})
        .await
        .expect("Head")
        .into_inner()
        .sequence
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_unknown_credentials_are_unauthenticated_and_tokens_are_stored_hashed() {
    let f = Fixture::start().await;
    let mut count = 0;
    for (method, _) in wfl_auth::access::METHODS {
        for token in [None, Some("wfl_not-a-token".to_owned())] {
            let conn = f
                .credentials(token.clone(), None)
                .connect(&f.addr())
                .await
                .expect("TLS connect");
            let s = call(method, conn, OWN, &f.foreign_event)
                .await
                .expect_err("no valid credentials");
            assert_eq!(s.code(), Code::Unauthenticated, "{method} {token:?}: {s:?}");
            count += 1;
        }
    }
    // A certificate signed by the CA but named in no tokens file.
    let stranger = f
        .credentials(None, Some("stranger"))
        .connect(&f.addr())
        .await
        .expect("mTLS connect");
    let s = pb::ledger_client::LedgerClient::new(stranger)
        .head(pb::HeadRequest {})
        .await
        .expect_err("unlisted certificate");
    assert_eq!(s.code(), Code::Unauthenticated);
    assert!(s.message().contains("stranger.clients.wfl"), "{s:?}");
    println!("unauthenticated: {count} calls without a valid token, 1 unlisted certificate");

    // The tokens file holds each token's SHA-256, never the token.
    let text = std::fs::read_to_string(&f.tokens_file).expect("tokens file");
    for (role, token) in &f.tokens {
        assert!(
            !text.contains(token.as_str()),
            "{role}'s token is in the file"
        );
        assert!(
            text.contains(&hex::encode(wfl_auth::tokens::hash(token))),
            "{role}'s hash is not in the file"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&f.tokens_file)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "tokens file readable by others: {mode:o}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_mtls_round_trip() {
    let f = Fixture::start().await;
    // mTLS: the client certificate is the credential (no token).
    let hr = f
        .credentials(None, Some("acme-analyst"))
        .connect(&f.addr())
        .await
        .expect("mTLS connect");
    call("/wfl.v1.Ledger/Read", hr.clone(), OWN, &f.foreign_event)
        .await
        .expect("the certificate's principal reads its org");
    let s = call("/wfl.v1.Ledger/Read", hr.clone(), FOREIGN, &f.foreign_event)
        .await
        .expect_err("foreign org");
    assert_eq!(s.code(), Code::PermissionDenied);
    let s = call("/wfl.v1.Ingest/Record", hr, OWN, &f.foreign_event)
        .await
        .expect_err("an analyst records nothing");
    assert_eq!(s.code(), Code::PermissionDenied);

    // A client certificate from another CA fails the handshake.
    let rogue = f.credentials(None, Some("rogue"));
    let answer = match rogue.connect(&f.addr()).await {
        Err(e) => Err(format!("connect: {e}")),
        Ok(conn) => pb::ledger_client::LedgerClient::new(conn)
            .head(pb::HeadRequest {})
            .await
            .map(|_| ())
            .map_err(|s| format!("{s:?}")),
    };
    // TLS 1.3 reports the refused client certificate after the handshake: the first call fails
    // at the transport, with a code that depends on when the alert arrives; never an answer, and
    // never an authentication decision (the certificate must not get that far).
    eprintln!("rogue certificate: {answer:?}");
    let refused = match &answer {
        Ok(()) => false,
        Err(e) => !e.contains("Unauthenticated") && !e.contains("PermissionDenied"),
    };
    assert!(
        refused,
        "a certificate from another CA was accepted: {answer:?}"
    );

    // Plain HTTP/2 to the TLS port gets no answer.
    let plain = Credentials {
        tls: None,
        token: Some(f.token(Role::Admin)),
        partition: None,
    };
    let plain_ok = match plain.connect(&f.addr()).await {
        Err(_) => false,
        Ok(conn) => pb::ledger_client::LedgerClient::new(conn)
            .head(pb::HeadRequest {})
            .await
            .is_ok(),
    };
    assert!(!plain_ok, "plain TCP answered on the TLS port");

    // The `wfl` client commands: --ca and --token (or WFL_TOKEN).
    let replay = |token: Option<String>| {
        let mut c = Command::new(common::bin("wfl"));
        c.args([
            "replay",
            "--addr",
            &f.addr(),
            "--ca",
            &tls_file("ca.pem"),
            "--tls-domain",
            "localhost",
        ])
        .env_remove("WFL_TOKEN");
        if let Some(t) = token {
            c.env("WFL_TOKEN", t);
        }
        c.output().expect("wfl replay runs")
    };
    let out = replay(Some(f.token(Role::Auditor)));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    let out = replay(None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Unauthenticated"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // HTTPS: /healthz open, /metrics for auditors and admins only.
    let http = f
        .node
        .http
        .clone()
        .expect("http address")
        .replace("http://", "");
    assert!(https_get(&http, "/healthz", None)
        .await
        .starts_with("HTTP/1.1 200"));
    assert!(https_get(&http, "/metrics", None)
        .await
        .starts_with("HTTP/1.1 401"));
    assert!(https_get(&http, "/metrics", Some(&f.token(Role::Analyst)))
        .await
        .starts_with("HTTP/1.1 403"));
    let metrics = https_get(&http, "/metrics", Some(&f.token(Role::Auditor))).await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("wfl_ledger_head_sequence"), "{metrics}");
}

/// One HTTP/1.1 GET over TLS (verifying the server with the test CA); the raw response.
async fn https_get(host: &str, path: &str, token: Option<&str>) -> String {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;
    let pem = std::fs::read(tls_dir().join("ca.pem")).expect("ca");
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(c.expect("pem")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(host).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let auth = token.map_or_else(String::new, |t| format!("authorization: Bearer {t}\r\n"));
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n{auth}connection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .expect("send");
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn exposed_servers_without_tls_or_tokens_refuse_to_start() {
    let dir = wfl_testkit::temp_dir();
    let data = dir.path().display().to_string();
    let run = |bin: &str, args: &[&str]| {
        let out = Command::new(common::bin(bin))
            .args(args)
            .env_remove("WFL_INSECURE")
            .env_remove("WFL_NO_AUTH")
            .env_remove("WFL_TOKENS_FILE")
            .env_remove("WFL_TLS_CERT")
            .output()
            .expect("runs");
        assert!(!out.status.success(), "{bin} {args:?} started");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let up = [
        "up",
        "--data-dir",
        &data,
        "--grpc-addr",
        "0.0.0.0:0",
        "--http-addr",
        "127.0.0.1:0",
    ];
    let e = run("wfl", &up);
    assert!(e.contains("--tls-cert") && e.contains("--insecure"), "{e}");
    let e = run("wfl", &[&up[..], &["--insecure"]].concat());
    assert!(
        e.contains("--tokens-file") && e.contains("--no-auth"),
        "{e}"
    );
    // The service binaries never default to plain, even on loopback.
    let e = run(
        "wfl-ledger",
        &["--data-dir", &data, "--grpc-addr", "127.0.0.1:0"],
    );
    assert!(e.contains("plain TCP") && e.contains("--insecure"), "{e}");
    let e = run(
        "wfl-gateway",
        &[
            "--grpc-addr",
            "127.0.0.1:0",
            "--tls-cert",
            &tls_file("server.pem"),
            "--tls-key",
            &tls_file("server.key"),
        ],
    );
    assert!(e.contains("--tokens-file"), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
}

/// Tokens rotate without a restart: a rewritten tokens file (a new token added, an old one
/// revoked) is in force within a few seconds; SIGHUP reloads at once; a file that no longer
/// parses is not applied (one ERROR) and the tokens in force stay so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_tokens_file_is_in_force_without_a_restart() {
    let f = Fixture::start().await;
    let auditor = f.token(Role::Auditor);
    assert!(head_with(&f, &auditor).await.is_ok());

    // Rotate: a new auditor token is added, the old one revoked.
    let text = std::fs::read_to_string(&f.tokens_file).expect("tokens file");
    let old_hash = hex::encode(wfl_auth::tokens::hash(&auditor));
    let kept: String = text
        .split("[[principal]]")
        .filter(|block| !block.contains(&old_hash))
        .collect::<Vec<_>>()
        .join("[[principal]]");
    std::fs::write(&f.tokens_file, kept).expect("revoke");
    let rotated = common::token_add(&f.tokens_file, "acme-auditor-2", "auditor", &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let old = head_with(&f, &auditor).await;
        let new = head_with(&f, &rotated).await;
        if matches!(&old, Err(s) if s.code() == Code::Unauthenticated) && new.is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rotation not in force after 15 s: old {old:?}, new {new:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(f.node.log_text().contains("tokens file reloaded"));

    // A broken file is not applied: the rotated token keeps working, one ERROR says why.
    std::fs::write(&f.tokens_file, "[[principal]\nname = ").expect("break the file");
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &f.node.child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !f.node.log_text().contains("tokens file not reloaded") {
        assert!(
            std::time::Instant::now() < deadline,
            "no ERROR for a broken tokens file:\n{}",
            f.node.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        head_with(&f, &rotated).await.is_ok(),
        "the tokens in force stay"
    );
    assert_eq!(
        head_with(&f, &auditor)
            .await
            .expect_err("still revoked")
            .code(),
        Code::Unauthenticated
    );
    println!("token rotation: revoked and added without a restart; a broken file was not applied");
}

async fn head_with(f: &Fixture, token: &str) -> Result<u64, Status> {
    let conn = f
        .credentials(Some(token.to_owned()), None)
        .connect(&f.addr())
        .await
        .expect("TLS connect");
    pb::ledger_client::LedgerClient::new(conn)
        .head(pb::HeadRequest {})
        .await
        .map(|r| r.into_inner().sequence)
}
