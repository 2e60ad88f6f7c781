//! The bytes a [`super::TarImage`] indexes: a memory map or owned bytes.

use std::fmt;

use memmap2::Mmap;

/// The bytes of a mounted image: a read-only memory map of the channel's
/// host file (nothing copied; pages come from the page cache on first
/// touch), or bytes read into memory (in-memory buffers, streams, files that
/// cannot be mapped). Made by [`crate::channel::OpenChannel::read_image`].
pub struct ImageBytes(Storage);

enum Storage {
    /// The first `len` bytes of a mapping (less than the file when the
    /// channel's read quota cut it).
    Mapped {
        map: Mmap,
        len: usize,
    },
    Owned(Vec<u8>),
}

impl ImageBytes {
    /// The first `len` bytes (at most the whole map) of a mapping.
    pub fn mapped(map: Mmap, len: usize) -> ImageBytes {
        let len = len.min(map.len());
        ImageBytes(Storage::Mapped { map, len })
    }

    /// Bytes held in memory.
    pub fn owned(bytes: Vec<u8>) -> ImageBytes {
        ImageBytes(Storage::Owned(bytes))
    }

    /// Whether the bytes are a memory map (not a copy).
    pub fn is_mapped(&self) -> bool {
        matches!(self.0, Storage::Mapped { .. })
    }
}

impl AsRef<[u8]> for ImageBytes {
    fn as_ref(&self) -> &[u8] {
        match &self.0 {
            Storage::Mapped { map, len } => map.get(..*len).unwrap_or(&[]),
            Storage::Owned(bytes) => bytes,
        }
    }
}

impl From<Vec<u8>> for ImageBytes {
    fn from(bytes: Vec<u8>) -> Self {
        ImageBytes::owned(bytes)
    }
}

impl fmt::Debug for ImageBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageBytes")
            .field("mapped", &self.is_mapped())
            .field("len", &self.as_ref().len())
            .finish()
    }
}
