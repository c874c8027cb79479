//! The applier, the checkpointer and sled's I/O threads run at a lower
//! priority than the threads a reply waits for.
//!
//! A test binary of its own: sled's I/O threads are shared by every store
//! in a process and may be started by whichever thread needs one, so other
//! tests' stores (opened and dropped on test threads) would be seen here.
#![cfg(target_os = "linux")]

use gridline_caselog::{SledStore, Store, WriteBatch, BACKGROUND_NICE};

/// The store's threads now running, with their nice values.
fn look() -> Vec<(String, i32)> {
    let mut seen = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let task = task.unwrap().path();
        let Ok(name) = std::fs::read_to_string(task.join("comm")) else { continue };
        let name = name.trim().to_string();
        if name == "gridline-apply" || name == "gridline-ckpt" || name.starts_with("sled-io") {
            let tid: libc::id_t = task.file_name().unwrap().to_str().unwrap().parse().unwrap();
            // SAFETY: reads a thread's nice value; the thread may be gone (then -1 and errno).
            let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) };
            // A thread that ended as we looked: not a finding.
            if nice == -1 && !task.exists() {
                continue;
            }
            seen.push((name, nice));
        }
    }
    seen
}

/// The calling thread's nice value.
fn own_nice() -> i32 {
    // SAFETY: reads the calling thread's nice value; no memory is shared.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
}

#[test]
fn the_store_threads_run_at_background_priority() {
    // Threads inherit their creator's nice value, and an unprivileged one
    // cannot be raised back: run at BACKGROUND_NICE or below it already
    // (`nice -n 10 cargo test`), the store's threads would be found there
    // whether they lowered themselves or not. Nothing to see then.
    let caller = own_nice();
    if caller >= BACKGROUND_NICE {
        eprintln!(
            "the_store_threads_run_at_background_priority: NOT CHECKED: this test runs at nice {caller}, \
             not below the store threads' {BACKGROUND_NICE}, so they would look lowered whatever they do; \
             run it without nice to check"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path()).unwrap();
    let mut b = WriteBatch::default();
    b.put(b"a".to_vec(), b"1".to_vec());
    s.apply(b).unwrap();
    s.sync().unwrap();
    // A thread has its name a moment before it lowers itself: look again,
    // for a while, until every one is there and lowered.
    let whole = |seen: &[(String, i32)]| {
        ["gridline-apply", "gridline-ckpt", "sled-io"]
            .iter()
            .all(|n| seen.iter().any(|(s, _)| s.starts_with(n)))
            && seen.iter().all(|(_, nice)| *nice == BACKGROUND_NICE)
    };
    let mut seen = look();
    for _ in 0..500 {
        if whole(&seen) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        seen = look();
    }
    assert!(whole(&seen), "{seen:?}");
    // Below the threads a reply waits for, such as this one.
    assert!(seen.iter().all(|(_, nice)| *nice > caller), "caller at nice {caller}: {seen:?}");
    drop(s);
}
