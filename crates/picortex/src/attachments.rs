//! Files a chat's agent produced, read for sending as attachments: the path must stay beneath
//! the chat's home once symlinks are resolved, the file itself must not be a symlink, it must be
//! a regular file within Linq's size limit, and its type must be one Linq accepts.

use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// Linq's limit for pre-uploaded attachments.
pub const MAX_BYTES: u64 = 100 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    #[error("{0}: not beneath the chat's home")]
    Escapes(PathBuf),
    #[error("{0}: not a regular file")]
    NotAFile(PathBuf),
    #[error("{path}: {size} bytes is over the {MAX_BYTES}-byte limit")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{0}: this file type cannot be sent as an attachment")]
    UnsupportedType(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A file ready to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

/// Reads `path` (inside `home`) for sending.
pub fn read_beneath(home: &Path, path: &Path) -> Result<Attachment, AttachmentError> {
    let io = |source| AttachmentError::Io {
        path: path.to_owned(),
        source,
    };
    let filename = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| AttachmentError::NotAFile(path.to_owned()))?
        .to_owned();
    let content_type =
        content_type(&filename).ok_or_else(|| AttachmentError::UnsupportedType(path.to_owned()))?;
    let (mut file, size) = open_beneath(home, path)?;
    if size > MAX_BYTES {
        return Err(AttachmentError::TooLarge {
            path: path.to_owned(),
            size,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.by_ref()
        .take(MAX_BYTES)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    Ok(Attachment {
        filename,
        content_type,
        bytes,
    })
}

/// Opens the regular file `path` for reading if it is beneath `home` once its directories'
/// symlinks are resolved and is not a symlink itself; returns it with its size.
pub fn open_beneath(home: &Path, path: &Path) -> Result<(std::fs::File, u64), AttachmentError> {
    let io = |source| AttachmentError::Io {
        path: path.to_owned(),
        source,
    };
    let home = home.canonicalize().map_err(io)?;
    let parent = path
        .parent()
        .ok_or_else(|| AttachmentError::Escapes(path.to_owned()))?
        .canonicalize()
        .map_err(io)?;
    if !parent.starts_with(&home) {
        return Err(AttachmentError::Escapes(path.to_owned()));
    }
    let filename = path
        .file_name()
        .ok_or_else(|| AttachmentError::NotAFile(path.to_owned()))?;
    // O_NOFOLLOW: a symlink as the last component fails instead of being followed.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(parent.join(filename))
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(AttachmentError::NotAFile(path.to_owned()));
    }
    Ok((file, meta.len()))
}

/// The Linq-supported content type for a file name, by extension.
pub fn content_type(filename: &str) -> Option<&'static str> {
    let ext = filename.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "tif" | "tiff" => "image/tiff",
        "bmp" => "image/bmp",
        "svg" => "image/svg+xml",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "mp4" => "video/mp4",
        "mov" => "video/quicktime",
        "mpeg" | "mpg" => "video/mpeg",
        "m4v" => "video/x-m4v",
        "avi" => "video/x-msvideo",
        "3gp" => "video/3gpp",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/x-m4a",
        "caf" => "audio/x-caf",
        "wav" => "audio/x-wav",
        "aiff" | "aif" => "audio/aiff",
        "aac" => "audio/aac",
        "mid" | "midi" => "audio/midi",
        "amr" => "audio/amr",
        "pdf" => "application/pdf",
        "txt" | "log" => "text/plain",
        "md" | "markdown" => "text/markdown",
        "vcf" => "text/vcard",
        "rtf" => "text/rtf",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "ics" => "text/calendar",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "ppt" => "application/vnd.ms-powerpoint",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "pages" => "application/x-iwork-pages-sffpages",
        "numbers" => "application/x-iwork-numbers-sffnumbers",
        "key" => "application/x-iwork-keynote-sffkey",
        "epub" => "application/epub+zip",
        "xml" => "text/xml",
        "json" => "application/json",
        "zip" => "application/zip",
        "gz" => "application/x-gzip",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_beneath_home_only() {
        let home = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let sent = home.path().join("outbox/sent");
        std::fs::create_dir_all(&sent).unwrap();
        std::fs::write(sent.join("1-chart.png"), b"\x89PNG").unwrap();
        let a = read_beneath(home.path(), &sent.join("1-chart.png")).unwrap();
        assert_eq!(
            (a.filename.as_str(), a.content_type),
            ("1-chart.png", "image/png")
        );

        std::fs::write(outside.path().join("secret.txt"), b"secret").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), sent.join("2-link.txt"))
            .unwrap();
        assert!(matches!(
            read_beneath(home.path(), &sent.join("2-link.txt")),
            Err(AttachmentError::Io { .. })
        ));
        std::os::unix::fs::symlink(outside.path(), home.path().join("outbox/evil")).unwrap();
        assert!(matches!(
            read_beneath(home.path(), &home.path().join("outbox/evil/secret.txt")),
            Err(AttachmentError::Escapes(_))
        ));
        assert!(matches!(
            read_beneath(home.path(), &home.path().join("../x.txt")),
            Err(AttachmentError::Escapes(_)) | Err(AttachmentError::Io { .. })
        ));
        std::fs::write(sent.join("3-run.exe"), b"MZ").unwrap();
        assert!(matches!(
            read_beneath(home.path(), &sent.join("3-run.exe")),
            Err(AttachmentError::UnsupportedType(_))
        ));
    }
}
