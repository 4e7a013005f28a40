//! Model-based test: random operation sequences run against a real `Log`
//! and against a deliberately naive `Vec` model; every observable result
//! must agree after every operation.
//!
//! The model recomputes hashes with `sha2` directly (not the crate's
//! `chain_hash`) and filters by linear scan, so it shares no logic with the
//! code under test.

use std::collections::HashMap;

use proptest::prelude::*;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use wfl_store::{
    Decision, Error, Filter, Hash, Log, MemLog, NewRecord, RefusalCode, Rejection, SledLog,
    StoredRecord,
};

const ORGS: [&str; 5] = ["a", "b", "c", "ab", ""];
const TYPES: [&str; 3] = ["X", "Y", "Z"];

#[derive(Debug, Clone)]
enum IdChoice {
    Fresh,
    /// Reuse a previously generated id (index modulo how many exist).
    Reuse(usize),
}

#[derive(Debug, Clone)]
struct RecordSpec {
    org: usize,
    event_type: usize,
    id: IdChoice,
    bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: Vec<RecordSpec>,
        rejections: Vec<(IdChoice, RefusalCode)>,
        /// Added to every sequence: non-zero makes the batch non-contiguous.
        skew: i8,
    },
    Read {
        from: u64,
        to: Option<u64>,
        orgs: Vec<usize>,
        types: Vec<usize>,
        limit: usize,
    },
    Get(u64),
    Reopen,
}

fn id_choice() -> impl Strategy<Value = IdChoice> {
    prop_oneof![
        30 => Just(IdChoice::Fresh),
        1 => any::<usize>().prop_map(IdChoice::Reuse),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let record = (
        0..ORGS.len(),
        0..TYPES.len(),
        id_choice(),
        prop_oneof![3 => prop::collection::vec(any::<u8>(), 0..24), 1 => prop::collection::vec(any::<u8>(), 200..900)],
    )
        .prop_map(|(org, event_type, id, bytes)| RecordSpec {
            org,
            event_type,
            id,
            bytes,
        });
    let append = (
        prop::collection::vec(record, 0..20),
        prop::collection::vec(
            (id_choice(), prop::sample::select(RefusalCode::ALL.to_vec())),
            0..3,
        ),
        prop_oneof![20 => Just(0i8), 1 => -1i8..=1],
    )
        .prop_map(|(records, rejections, skew)| Op::Append {
            records,
            rejections,
            skew,
        });
    let read = (
        0..300u64,
        prop::option::of(0..300u64),
        prop::collection::vec(0..ORGS.len(), 0..3),
        prop::collection::vec(0..TYPES.len(), 0..3),
        0..40usize,
    )
        .prop_map(|(from, to, orgs, types, limit)| Op::Read {
            from,
            to,
            orgs,
            types,
            limit,
        });
    prop_oneof![
        6 => append,
        4 => read,
        1 => (0..300u64).prop_map(Op::Get),
        1 => Just(Op::Reopen),
    ]
}

struct ModelRecord {
    stored: StoredRecord,
    org: String,
    event_type: String,
}

#[derive(Default)]
struct Model {
    records: Vec<ModelRecord>,
    decisions: HashMap<Uuid, Decision>,
    /// Every id ever generated, for `IdChoice::Reuse`.
    ids: Vec<Uuid>,
    next_id: u128,
}

impl Model {
    fn head(&self) -> (u64, Hash) {
        self.records
            .last()
            .map_or((0, [0; 32]), |r| (r.stored.sequence, r.stored.hash))
    }

    fn pick(&mut self, choice: &IdChoice) -> Uuid {
        match choice {
            IdChoice::Reuse(i) if !self.ids.is_empty() => self.ids[i % self.ids.len()],
            _ => {
                self.next_id += 1;
                // Three id prefixes, so ids share decision groups.
                let id = Uuid::from_u128((self.next_id % 3) << 80 | self.next_id);
                self.ids.push(id);
                id
            }
        }
    }

    /// `None` means the append must be refused with a conflict.
    fn append(
        &mut self,
        records: &[NewRecord],
        rejections: &[Rejection],
    ) -> Option<Vec<(u64, Hash)>> {
        let (head, mut prev) = self.head();
        let contiguous = records
            .iter()
            .enumerate()
            .all(|(i, r)| r.sequence == head + 1 + i as u64);
        let ids: Vec<Uuid> = records
            .iter()
            .map(|r| r.event_id)
            .chain(rejections.iter().map(|r| r.event_id))
            .collect();
        let unique = ids.iter().enumerate().all(|(i, id)| !ids[..i].contains(id));
        let fresh = ids.iter().all(|id| !self.decisions.contains_key(id));
        if !(contiguous && unique && fresh) {
            return None;
        }
        let mut links = Vec::new();
        for r in records {
            let hash: Hash = Sha256::new()
                .chain_update(prev)
                .chain_update(&r.bytes)
                .finalize()
                .into();
            self.records.push(ModelRecord {
                stored: StoredRecord {
                    sequence: r.sequence,
                    event_id: r.event_id,
                    prev_hash: prev,
                    hash,
                    bytes: r.bytes.clone(),
                },
                org: r.org_id.clone(),
                event_type: r.event_type.clone(),
            });
            self.decisions.insert(
                r.event_id,
                Decision::Committed {
                    sequence: r.sequence,
                    hash,
                    submission: None,
                },
            );
            links.push((r.sequence, hash));
            prev = hash;
        }
        for r in rejections {
            self.decisions.insert(
                r.event_id,
                Decision::Rejected {
                    code: r.code,
                    message: r.message.clone(),
                    content: None,
                },
            );
        }
        Some(links)
    }

    fn read(&self, from: u64, to: Option<u64>, filter: &Filter, limit: usize) -> Vec<StoredRecord> {
        self.records
            .iter()
            .filter(|r| (from..=to.unwrap_or(u64::MAX)).contains(&r.stored.sequence))
            .filter(|r| filter.org_ids.is_empty() || filter.org_ids.contains(&r.org))
            .filter(|r| filter.event_types.is_empty() || filter.event_types.contains(&r.event_type))
            .take(limit)
            .map(|r| r.stored.clone())
            .collect()
    }
}

enum Backend {
    Mem(MemLog),
    Sled {
        dir: tempfile::TempDir,
        log: Option<SledLog>,
    },
}

impl Backend {
    fn sled() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let log = SledLog::open(dir.path()).unwrap();
        Backend::Sled {
            dir,
            log: Some(log),
        }
    }

    fn log(&self) -> &dyn Log {
        match self {
            Backend::Mem(log) => log,
            Backend::Sled { log, .. } => log.as_ref().unwrap(),
        }
    }

    fn reopen(&mut self) {
        if let Backend::Sled { dir, log } = self {
            // Close first: sled holds an exclusive lock on the directory.
            *log = None;
            *log = Some(SledLog::open(dir.path()).unwrap());
        }
    }
}

fn run(mut backend: Backend, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Append {
                records,
                rejections,
                skew,
            } => {
                let head = model.head().0;
                let records: Vec<NewRecord> = records
                    .iter()
                    .enumerate()
                    .map(|(i, spec)| NewRecord {
                        sequence: (head + 1 + i as u64).saturating_add_signed(i64::from(skew)),
                        event_id: model.pick(&spec.id),
                        org_id: ORGS[spec.org].to_owned(),
                        event_type: TYPES[spec.event_type].to_owned(),
                        bytes: spec.bytes.clone(),
                        submission: None,
                    })
                    .collect();
                let rejections: Vec<Rejection> = rejections
                    .iter()
                    .map(|(choice, code)| Rejection {
                        event_id: model.pick(choice),
                        code: *code,
                        message: format!("code {code:?}"),
                        content: None,
                    })
                    .collect();
                let got = backend.log().append(&records, &rejections);
                match model.append(&records, &rejections) {
                    Some(want) => prop_assert_eq!(got, Ok(want)),
                    None => prop_assert!(matches!(got, Err(Error::Conflict(_))), "got {:?}", got),
                }
                for id in records
                    .iter()
                    .map(|r| r.event_id)
                    .chain(rejections.iter().map(|r| r.event_id))
                {
                    prop_assert_eq!(
                        backend.log().decision(&id).unwrap(),
                        model.decisions.get(&id).cloned()
                    );
                }
            }
            Op::Read {
                from,
                to,
                orgs,
                types,
                limit,
            } => {
                let filter = Filter {
                    org_ids: orgs.iter().map(|&i| ORGS[i].to_owned()).collect(),
                    event_types: types.iter().map(|&i| TYPES[i].to_owned()).collect(),
                };
                let got = backend.log().read(from, to, &filter, limit).unwrap();
                prop_assert_eq!(got, model.read(from, to, &filter, limit));
            }
            Op::Get(sequence) => {
                let want = model
                    .records
                    .iter()
                    .find(|r| r.stored.sequence == sequence)
                    .map(|r| r.stored.clone());
                prop_assert_eq!(backend.log().get(sequence).unwrap(), want);
            }
            Op::Reopen => backend.reopen(),
        }
        let (sequence, hash) = model.head();
        let head = backend.log().head().unwrap();
        prop_assert_eq!((head.sequence, head.hash), (sequence, hash));
    }
    let verified = backend.log().verify_chain().unwrap();
    prop_assert_eq!(verified.sequence, model.head().0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mem_log_matches_the_model(ops in prop::collection::vec(op(), 1..40)) {
        run(Backend::Mem(MemLog::new()), ops)?;
    }

    #[test]
    fn sled_log_matches_the_model(ops in prop::collection::vec(op(), 1..40)) {
        run(Backend::sled(), ops)?;
    }
}
