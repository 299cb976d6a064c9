//! Files read again when their content changes: the API key file and the TLS certificate
//! and key.
//!
//! Changes are found by content, not by modification time: Kubernetes updates a mounted
//! secret by swapping a symlink to a new directory, which leaves the old file's time as it
//! was, and a copy can keep a file's time. The content is compared as a SHA-256 digest, so
//! no copy of a secret file is kept between checks.

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// How often watched files are checked.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// A set of files read together, and the digest of what they held when last read.
#[derive(Debug)]
pub struct WatchedFiles {
    paths: Vec<PathBuf>,
    max_len: u64,
    last: Option<[u8; 32]>,
}

impl WatchedFiles {
    /// Files of at most `max_len` bytes each, not read yet.
    pub fn new(paths: Vec<PathBuf>, max_len: u64) -> Self {
        WatchedFiles {
            paths,
            max_len,
            last: None,
        }
    }

    /// The files.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Reads every file; returns their contents when any differs from the last read, `None`
    /// when none does. The contents are wiped when dropped. A failure is reported once, not
    /// again until the files change or read differently.
    ///
    /// # Errors
    /// The first file that cannot be read, or is larger than the limit
    /// (`InvalidData`).
    pub fn changed(&mut self) -> std::io::Result<Option<Vec<Zeroizing<Vec<u8>>>>> {
        match self.read() {
            Ok((digest, _)) if self.last == Some(digest) => Ok(None),
            Ok((digest, contents)) => {
                self.last = Some(digest);
                Ok(Some(contents))
            }
            Err(e) => {
                let mark: [u8; 32] = Sha256::digest(format!("error {:?}", e.kind())).into();
                if self.last == Some(mark) {
                    return Ok(None);
                }
                self.last = Some(mark);
                Err(e)
            }
        }
    }

    #[expect(
        clippy::type_complexity,
        reason = "a digest and the contents it covers"
    )]
    fn read(&self) -> std::io::Result<([u8; 32], Vec<Zeroizing<Vec<u8>>>)> {
        let mut contents = Vec::with_capacity(self.paths.len());
        let mut digest = Sha256::new();
        for path in &self.paths {
            let file = std::fs::File::open(path)?;
            let mut content = Zeroizing::new(Vec::new());
            file.take(self.max_len + 1).read_to_end(&mut content)?;
            if content.len() as u64 > self.max_len {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the file is too large",
                ));
            }
            digest.update((content.len() as u64).to_be_bytes());
            digest.update(&content[..]);
            contents.push(content);
        }
        Ok((digest.finalize().into(), contents))
    }
}
