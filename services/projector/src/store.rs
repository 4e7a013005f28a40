//! The projector's own sled database: the serialised [`Projection`] and its checkpoint, written
//! together in one atomic batch and flushed, so the stored state always matches its checkpoint.

use std::path::Path;

use wfl_projections::views::Projection;

use crate::Error;

const STATE: &[u8] = b"state";
const CHECKPOINT: &[u8] = b"checkpoint";

pub(crate) struct ViewStore {
    db: sled::Db,
}

impl ViewStore {
    pub(crate) fn open(path: &Path) -> Result<Self, Error> {
        let db = sled::open(path)
            .map_err(|e| Error::Store(format!("cannot open {}: {e}", path.display())))?;
        Ok(Self { db })
    }

    /// The stored state, or an empty one.
    pub(crate) fn load(&self) -> Result<Projection, Error> {
        let state = self
            .db
            .get(STATE)
            .map_err(|e| Error::Store(e.to_string()))?;
        let checkpoint = self
            .db
            .get(CHECKPOINT)
            .map_err(|e| Error::Store(e.to_string()))?;
        let Some(state) = state else {
            return Ok(Projection::new());
        };
        let projection: Projection = serde_json::from_slice(&state).map_err(|e| {
            Error::Store(format!(
                "stored view state does not decode ({e}); restart with --rebuild-views"
            ))
        })?;
        let recorded = checkpoint
            .as_deref()
            .and_then(|c| <[u8; 8]>::try_from(c).ok())
            .map(u64::from_be_bytes);
        if recorded != Some(projection.last_sequence()) {
            return Err(Error::Store(format!(
                "checkpoint {recorded:?} does not match the stored state ({}); restart with --rebuild-views",
                projection.last_sequence()
            )));
        }
        Ok(projection)
    }

    /// Writes state and checkpoint atomically and durably.
    pub(crate) fn save(&self, projection: &Projection) -> Result<(), Error> {
        let bytes = serde_json::to_vec(projection).map_err(|e| Error::Internal(e.to_string()))?;
        let mut batch = sled::Batch::default();
        batch.insert(STATE, bytes);
        batch.insert(CHECKPOINT, &projection.last_sequence().to_be_bytes());
        self.db
            .apply_batch(batch)
            .map_err(|e| Error::Store(e.to_string()))?;
        self.db.flush().map_err(|e| Error::Store(e.to_string()))?;
        Ok(())
    }
}
