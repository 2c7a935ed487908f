//! Recording storage behind `object_store`: local files by default, or S3 (and S3-compatible
//! services) selected by a URL.
//!
//! The recorder always writes local files as the call runs (a crash loses at most the last
//! flush). With the local backend those files ARE the store. With S3 they live in a spool
//! folder and are uploaded when the call ends ([`Recordings::upload_spooled`]); until then the
//! spool file is served in place of the object, so a recording that a call points at can
//! always be served.

use crate::StoreError;
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::prefix::PrefixStore;
use object_store::{GetOptions, GetRange, ObjectStore, RetryConfig};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Uploads up to this size are one PUT; larger ones a multipart upload with parts of this size.
pub const UPLOAD_PART: usize = 8 * 1024 * 1024;

/// The setting's name in errors.
const SETTING: &str = "--recordings-url / SWITCHBOARD_RECORDINGS_URL";
const ALLOWED: &str = "allowed: s3://BUCKET[/PREFIX] (credentials, region and endpoint from \
     AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, AWS_ALLOW_HTTP), \
     file:///ABSOLUTE/PATH, or unset for <data-dir>/recordings";

/// Extra object store options (`aws_endpoint`, `aws_access_key_id`, …) that override the
/// `AWS_*` environment. For tests and embedding; the values never show in `Debug`.
#[derive(Clone, Default)]
pub struct StoreOptions(pub Vec<(String, String)>);

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| format!("{k}=<redacted>")))
            .finish()
    }
}

#[derive(Clone)]
pub struct Recordings {
    store: Arc<dyn ObjectStore>,
    /// Set for the local backend: where the files are, so the recorder can write in place.
    local_root: Option<PathBuf>,
    /// Set for remote backends: where the recorder writes until the upload at call end.
    spool: Option<PathBuf>,
    /// What the store is, without secrets: `local:/path` or `s3://bucket/prefix`.
    describe: String,
}

impl std::fmt::Debug for Recordings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recordings")
            .field("store", &self.describe)
            .field("local_root", &self.local_root)
            .field("spool", &self.spool)
            .finish()
    }
}

impl std::fmt::Display for Recordings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

fn config_err(msg: impl std::fmt::Display) -> StoreError {
    StoreError::Config(format!("{SETTING}: {msg}"))
}

impl Recordings {
    pub fn local(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Config(format!("cannot create {}: {e}", dir.display())))?;
        let store = LocalFileSystem::new_with_prefix(dir)?;
        Ok(Self {
            store: Arc::new(store),
            local_root: Some(dir.to_path_buf()),
            spool: None,
            describe: format!("local:{}", dir.display()),
        })
    }

    /// The recordings store a `--recordings-url` selects: unset → `<data_dir>/recordings`;
    /// `file:///path` → that folder; `s3://bucket[/prefix]` → S3 with the `AWS_*` environment
    /// (then overridden by `options`), spooling to `<data_dir>/recordings-spool`. Errors name
    /// the setting and what is allowed, and never contain credentials.
    pub fn from_url(
        url: Option<&str>,
        data_dir: &Path,
        options: &StoreOptions,
    ) -> Result<Self, StoreError> {
        let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
            return Self::local(&data_dir.join("recordings"));
        };
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(config_err(format!("{url:?} is not a URL; {ALLOWED}")));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                let path = Path::new(rest);
                if !path.is_absolute() {
                    return Err(config_err(format!(
                        "file URL needs an absolute path (file:///var/lib/switchboard/recordings); {ALLOWED}"
                    )));
                }
                Self::local(path)
            }
            "s3" => {
                if rest.contains(['?', '#']) {
                    return Err(config_err(format!(
                        "query and fragment are not supported in the URL; set options through the AWS_* environment; {ALLOWED}"
                    )));
                }
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.contains('@') {
                    // Never echo it: the part before '@' would be a secret.
                    return Err(config_err(format!(
                        "credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; {ALLOWED}"
                    )));
                }
                if bucket.is_empty() {
                    return Err(config_err(format!("{url:?} names no bucket; {ALLOWED}")));
                }
                let prefix = prefix.trim_matches('/');
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(RetryConfig {
                        max_retries: 3,
                        retry_timeout: Duration::from_secs(30),
                        ..Default::default()
                    });
                for (k, v) in &options.0 {
                    let key = k
                        .parse()
                        .map_err(|_| config_err(format!("unknown S3 option {k:?}")))?;
                    builder = builder.with_config(key, v);
                }
                // The builder's messages name missing or malformed settings, not their values.
                let s3 = builder
                    .build()
                    .map_err(|e| config_err(format!("S3 for bucket {bucket:?}: {e}")))?;
                let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    let p = ObjPath::parse(prefix)
                        .map_err(|_| config_err(format!("{prefix:?} is not a valid key prefix")))?;
                    Arc::new(PrefixStore::new(s3, p))
                };
                let spool = data_dir.join("recordings-spool");
                std::fs::create_dir_all(&spool).map_err(|e| {
                    StoreError::Config(format!("cannot create {}: {e}", spool.display()))
                })?;
                Ok(Self {
                    store,
                    local_root: None,
                    spool: Some(spool),
                    describe: if prefix.is_empty() {
                        format!("s3://{bucket}")
                    } else {
                        format!("s3://{bucket}/{prefix}")
                    },
                })
            }
            other => Err(config_err(format!(
                "unsupported scheme {other:?}; {ALLOWED}"
            ))),
        }
    }

    /// Whether the store answers: a listing of its root (bounded to 10 s). For the start-up
    /// log; recording does not depend on it (the spool keeps files until uploads succeed).
    pub async fn check(&self) -> Result<(), StoreError> {
        match tokio::time::timeout(
            Duration::from_secs(10),
            self.store.list_with_delimiter(None),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(StoreError::Config(format!(
                "{} did not answer within 10 s",
                self.describe
            ))),
        }
    }

    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    /// The spool folder of a remote store (`None` for the local backend).
    pub fn spool_dir(&self) -> Option<&Path> {
        self.spool.as_deref()
    }

    /// Where the recorder writes `<org>/<call>.mp3` as a call runs: the local root, or the
    /// spool folder of a remote store.
    pub fn write_root(&self) -> &Path {
        self.local_root
            .as_deref()
            .or(self.spool.as_deref())
            .expect("a store is local or has a spool")
    }

    /// The spool file of a key, for remote stores. Keys are ours (`<org>/<call>.mp3`), but
    /// anything that is not a plain relative object path is refused all the same.
    fn spool_file(&self, key: &str) -> Option<PathBuf> {
        let spool = self.spool.as_ref()?;
        let p = ObjPath::parse(key).ok()?;
        if p.as_ref().is_empty() {
            return None;
        }
        Some(
            p.parts()
                .fold(spool.clone(), |acc, part| acc.join(part.as_ref())),
        )
    }

    /// Size of an object, or `None` if it does not exist. A recording still waiting in the
    /// spool for its upload counts as existing.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        if let Some(f) = self.spool_file(key) {
            if let Ok(m) = tokio::fs::metadata(&f).await {
                return Ok(Some(m.len()));
            }
        }
        match self.store.head(&ObjPath::from(key)).await {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        if let Some(f) = self.spool_file(key) {
            match read_range(&f, range.clone()).await {
                Ok(b) => return Ok(b),
                // Uploaded (and removed from the spool) meanwhile: the object has it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(file_err("cannot read", &f, e)),
            }
        }
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

    /// Deletes the object and, for remote stores, a spool file still waiting for upload.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        if let Some(f) = self.spool_file(key) {
            match tokio::fs::remove_file(&f).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(file_err("cannot delete", &f, e)),
            }
        }
        match self.store.delete(&ObjPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Uploads the spool files of `<rel>.mp3` and `<rel>.stereo.mp3` (rel = `<org>/<call>`)
    /// to their keys, removing each spool file once its object is stored. A failure leaves
    /// the spool file in place (the caller retries). Returns the keys uploaded; a no-op for
    /// the local backend, where the spool is the store.
    pub async fn upload_spooled(&self, rel: &str) -> Result<Vec<String>, StoreError> {
        let mut done = Vec::new();
        if self.spool.is_none() {
            return Ok(done);
        }
        for key in [format!("{rel}.mp3"), format!("{rel}.stereo.mp3")] {
            let Some(f) = self.spool_file(&key) else {
                continue;
            };
            let file = match tokio::fs::File::open(&f).await {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(file_err("cannot open", &f, e)),
            };
            self.upload_file(file, &f, &key).await?;
            if let Err(e) = tokio::fs::remove_file(&f).await {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(file = %f.display(), error = %e, "uploaded recording left in the spool");
                }
            }
            done.push(key);
        }
        if let Some(dir) = self
            .spool_file(rel)
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            // Empty organization folders go too; a non-empty one stays (the error is expected).
            let _ = tokio::fs::remove_dir(&dir).await;
        }
        Ok(done)
    }

    /// Streams a local file to `key`: one PUT up to [`UPLOAD_PART`] bytes, a multipart upload
    /// above that (aborted again if a part fails), so memory stays bounded for long calls.
    async fn upload_file(
        &self,
        mut file: tokio::fs::File,
        f: &Path,
        key: &str,
    ) -> Result<(), StoreError> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut w = BufWriter::with_capacity(self.store.clone(), ObjPath::from(key), UPLOAD_PART);
        let copied: Result<(), StoreError> = async {
            loop {
                let mut buf = vec![0u8; 1 << 20];
                let n = file
                    .read(&mut buf)
                    .await
                    .map_err(|e| file_err("cannot read", f, e))?;
                if n == 0 {
                    return Ok(());
                }
                buf.truncate(n);
                w.put(Bytes::from(buf)).await?;
            }
        }
        .await;
        if let Err(e) = copied {
            let _ = w.abort().await;
            return Err(e);
        }
        w.shutdown()
            .await
            .map_err(|e| StoreError::File(format!("uploading {} to {key}: {e}", f.display())))
    }

    /// The recordings waiting in the spool, as `<org>/<call>` (each once), for remote stores.
    pub async fn spooled(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let Some(spool) = &self.spool else {
            return Ok(out);
        };
        let io = |e: std::io::Error| file_err("cannot list", spool, e);
        let mut orgs = match tokio::fs::read_dir(spool).await {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(e)),
        };
        while let Some(org) = orgs.next_entry().await.map_err(io)? {
            if !org.file_type().await.map_err(io)?.is_dir() {
                continue;
            }
            let org_name = org.file_name().to_string_lossy().into_owned();
            let mut files = tokio::fs::read_dir(org.path()).await.map_err(io)?;
            while let Some(f) = files.next_entry().await.map_err(io)? {
                let name = f.file_name().to_string_lossy().into_owned();
                let call = name
                    .strip_suffix(".stereo.mp3")
                    .or_else(|| name.strip_suffix(".mp3"));
                if let Some(call) = call {
                    let rel = format!("{org_name}/{call}");
                    if !out.contains(&rel) {
                        out.push(rel);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

fn file_err(what: &str, f: &Path, e: std::io::Error) -> StoreError {
    StoreError::File(format!("{what} {}: {e}", f.display()))
}

async fn read_range(f: &Path, range: Range<u64>) -> std::io::Result<Bytes> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::open(f).await?;
    file.seek(std::io::SeekFrom::Start(range.start)).await?;
    let mut buf = vec![0u8; (range.end - range.start) as usize];
    file.read_exact(&mut buf).await?;
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(url: &str) -> String {
        let dir = std::env::temp_dir().join(format!("sb-rec-{}", uuid::Uuid::new_v4()));
        let e = Recordings::from_url(Some(url), &dir, &StoreOptions::default())
            .expect_err("refused")
            .to_string();
        let _ = std::fs::remove_dir_all(&dir);
        e
    }

    #[test]
    fn bad_urls_name_the_setting_and_what_is_allowed() {
        for url in [
            "gs://bucket/x",
            "recordings",
            "file://relative/path",
            "s3:///nobucket",
        ] {
            let e = err(url);
            assert!(e.contains("SWITCHBOARD_RECORDINGS_URL"), "{e}");
            assert!(e.contains("s3://BUCKET"), "{e}");
        }
        let e = err("s3://AKIDEXAMPLE:hunter2secret@bucket/x");
        assert!(
            !e.contains("hunter2secret") && !e.contains("AKIDEXAMPLE"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn s3_config_never_shows_secrets_and_spools_locally() {
        let dir = tempdir();
        let opts = StoreOptions(vec![
            ("aws_access_key_id".into(), "AKIDSECRETID".into()),
            ("aws_secret_access_key".into(), "verysecretvalue".into()),
            ("aws_region".into(), "us-east-1".into()),
            ("aws_endpoint".into(), "http://127.0.0.1:9".into()),
            ("aws_allow_http".into(), "true".into()),
        ]);
        let r = Recordings::from_url(Some("s3://bucket/some/prefix/"), &dir, &opts).unwrap();
        let shown = format!("{r:?} {r} {opts:?}");
        assert!(!shown.contains("verysecretvalue"), "{shown}");
        assert!(!shown.contains("AKIDSECRETID"), "{shown}");
        assert!(shown.contains("s3://bucket/some/prefix"), "{shown}");
        assert_eq!(r.write_root(), dir.join("recordings-spool"));
        assert!(r.local_root().is_none());

        // A spooled file is served (size and range) before any upload, and listed.
        let f = dir.join("recordings-spool/org1/call1.mp3");
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, b"0123456789").unwrap();
        assert_eq!(r.size("org1/call1.mp3").await.unwrap(), Some(10));
        assert_eq!(
            &r.get_range("org1/call1.mp3", 2..5).await.unwrap()[..],
            b"234"
        );
        assert_eq!(r.spooled().await.unwrap(), vec!["org1/call1".to_string()]);
        assert!(r.spool_file("../etc/passwd").is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn local_backend_has_no_spool_and_nothing_to_upload() {
        let dir = tempdir();
        let r = Recordings::from_url(None, &dir, &StoreOptions::default()).unwrap();
        assert_eq!(r.write_root(), dir.join("recordings"));
        std::fs::create_dir_all(dir.join("recordings/o")).unwrap();
        std::fs::write(dir.join("recordings/o/c.mp3"), b"abc").unwrap();
        assert!(r.upload_spooled("o/c").await.unwrap().is_empty());
        assert!(r.spooled().await.unwrap().is_empty());
        assert_eq!(r.size("o/c.mp3").await.unwrap(), Some(3));
        assert!(dir.join("recordings/o/c.mp3").exists());
        let f = Recordings::from_url(
            Some(&format!("file://{}", dir.join("elsewhere").display())),
            &dir,
            &StoreOptions::default(),
        )
        .unwrap();
        assert_eq!(f.write_root(), dir.join("elsewhere"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("sb-rec-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
