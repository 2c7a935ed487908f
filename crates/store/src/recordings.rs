//! Recording storage behind `object_store`: local files by default, so S3, GCS or Azure are a
//! matter of configuration rather than code.

use crate::StoreError;
use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{GetOptions, GetRange, ObjectStore};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

#[derive(Clone)]
pub struct Recordings {
    store: Arc<dyn ObjectStore>,
    /// Set for the local backend: where the files are, so the recorder can write in place.
    local_root: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Recordings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recordings")
            .field("local_root", &self.local_root)
            .finish()
    }
}

impl Recordings {
    pub fn local(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Config(format!("cannot create {}: {e}", dir.display())))?;
        let store = LocalFileSystem::new_with_prefix(dir)?;
        Ok(Self {
            store: Arc::new(store),
            local_root: Some(dir.to_path_buf()),
        })
    }

    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    /// Size of an object, or `None` if it does not exist.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self.store.head(&ObjPath::from(key)).await {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        let opts = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..Default::default()
        };
        Ok(self
            .store
            .get_opts(&ObjPath::from(key), opts)
            .await?
            .bytes()
            .await?)
    }

    pub async fn put(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        self.store.put(&ObjPath::from(key), data.into()).await?;
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.store.delete(&ObjPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
