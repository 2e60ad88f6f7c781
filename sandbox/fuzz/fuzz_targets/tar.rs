//! Tar indexer: never panics, and every accepted image answers every lookup
//! with paths that stay inside it and data that lie inside the archive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandbox::tar::{EntryKind, TarImage};

fuzz_target!(|data: &[u8]| {
    let Ok(image) = TarImage::new(data) else {
        return;
    };
    let mut buf = [0u8; 256];
    for (path, entry) in image.entries() {
        assert!(!path.starts_with('/'));
        assert!(path.split('/').all(|c| c != ".." && c != "."));
        if !path.is_empty() {
            let parent = path.rfind('/').map_or("", |i| &path[..i]);
            assert!(image.get(parent).is_some_and(|p| p.is_dir()));
        }
        match &entry.kind {
            EntryKind::File => {
                assert!(entry.offset + entry.size <= data.len() as u64);
                assert_eq!(image.contents(entry).len() as u64, entry.size);
            }
            EntryKind::Symlink(target) => assert!(!target.starts_with('/')),
            EntryKind::Directory => {
                let _ = image.list_dir(path);
            }
        }
        let _ = image.stat(path);
        let _ = image.read_at(path, 1, &mut buf);
        let _ = image.resolve(&format!("{path}/../{path}/.."), true);
    }
});
