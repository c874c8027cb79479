//! A nearly full disk: the store refuses writes before sled meets a full
//! disk (whose error sled keeps until it is opened again), and takes them
//! again once there is room, without being opened again.

use gridline_caselog::{SledStore, Store, StoreError, WriteBatch};

fn one(key: &[u8]) -> WriteBatch {
    let mut b = WriteBatch::default();
    b.put(key.to_vec(), b"value".to_vec());
    b
}

#[test]
fn writes_are_refused_while_the_disk_is_short_of_the_room_kept_and_resume_after() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    store.apply(one(b"before")).unwrap();
    store.sync().unwrap();
    // More room kept than any disk has: as a disk with too little left.
    store.keep_free(u64::MAX);
    assert_eq!(store.admit(), Err(StoreError::Full));
    // Reads are served meanwhile.
    assert_eq!(store.get(b"before").unwrap().as_deref(), Some(&b"value"[..]));
    // An undo batch, which does not ask, still goes through.
    store.apply(one(b"undo")).unwrap();
    store.sync().unwrap();
    assert_eq!(store.get(b"undo").unwrap().as_deref(), Some(&b"value"[..]));
    // Room again (as after files were removed): writes resume.
    store.keep_free(0);
    store.admit().unwrap();
    store.apply(one(b"after")).unwrap();
    store.sync().unwrap();
    assert_eq!(store.get(b"after").unwrap().as_deref(), Some(&b"value"[..]));
}
