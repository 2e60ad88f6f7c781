//! Content-type guesses from object names, for PUTs without a Content-Type and
//! for X-Detect-Content-Type.

pub fn guess(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "txt" | "text" | "log" | "conf" => "text/plain",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "csv" => "text/csv",
        "js" => "text/javascript",
        "json" => "application/json",
        "xml" => "application/xml",
        "py" => "text/x-python",
        "sh" => "application/x-sh",
        "md" => "text/markdown",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "tar" => "application/x-tar",
        "gz" | "tgz" => "application/gzip",
        "wasm" => "application/wasm",
        "mp3" => "audio/mpeg",
        "wav" => "audio/x-wav",
        "ogg" => "audio/ogg",
        "webm" => "video/webm",
        "bmp" => "image/bmp",
        "ico" => "image/vnd.microsoft.icon",
        "tif" | "tiff" => "image/tiff",
        "webp" => "image/webp",
        "bz2" => "application/x-bzip2",
        "xz" => "application/x-xz",
        "doc" => "application/msword",
        "rtf" => "application/rtf",
        "yaml" | "yml" => "application/yaml",
        "mp4" => "video/mp4",
        _ => return None,
    })
}
