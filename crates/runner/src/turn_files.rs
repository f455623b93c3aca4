//! Durable turn results under `~/.picortex/turns/`: written to a temporary file, fsynced,
//! renamed into place and the directory fsynced, so a result that was acknowledged survives a
//! crash of the runner or the machine, and a half-written file is never read as a result.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::protocol::TurnResult;

#[derive(Debug, thiserror::Error)]
pub enum TurnFileError {
    #[error("turn file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("turn file {path} is not a valid result: {source}")]
    Invalid {
        path: PathBuf,
        source: serde_json::Error,
    },
}

#[derive(Debug, Clone)]
pub struct TurnFiles {
    dir: PathBuf,
}

impl TurnFiles {
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, TurnFileError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| TurnFileError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir })
    }

    fn path(&self, turn_id: i64) -> PathBuf {
        self.dir.join(format!("{turn_id}.json"))
    }

    /// The stored result of `turn_id`, if the turn finished.
    pub fn load(&self, turn_id: i64) -> Result<Option<TurnResult>, TurnFileError> {
        let path = self.path(turn_id);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| TurnFileError::Invalid { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(TurnFileError::Io { path, source }),
        }
    }

    /// Writes `result` durably; returns only once it is on disk.
    pub fn store(&self, result: &TurnResult) -> Result<(), TurnFileError> {
        let path = self.path(result.turn_id);
        let tmp = self.dir.join(format!(".{}.json.tmp", result.turn_id));
        let io = |p: &Path| {
            let p = p.to_owned();
            move |source| TurnFileError::Io { path: p, source }
        };
        let bytes = serde_json::to_vec_pretty(result).map_err(|source| TurnFileError::Invalid {
            path: path.clone(),
            source,
        })?;
        let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(&bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_then_load() {
        let dir = tempfile::tempdir().unwrap();
        let files = TurnFiles::new(dir.path().join("turns")).unwrap();
        assert!(files.load(3).unwrap().is_none());
        let mut r = TurnResult::failed(3, "x", false);
        r.ok = true;
        r.text = "hello".into();
        files.store(&r).unwrap();
        assert_eq!(files.load(3).unwrap(), Some(r));
        std::fs::write(dir.path().join("turns/4.json"), b"{half").unwrap();
        assert!(matches!(files.load(4), Err(TurnFileError::Invalid { .. })));
    }
}
