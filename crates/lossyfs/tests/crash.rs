//! The lossy file system keeps what was synced and loses what was not.

use cairn_lossyfs::{LossyFs, SplitMix};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;

fn mounted() -> (tempfile::TempDir, LossyFs, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("backing");
    let mnt = dir.path().join("mnt");
    fs::create_dir_all(&backing).unwrap();
    fs::create_dir_all(&mnt).unwrap();
    let fs = LossyFs::mount(&backing, &mnt).expect("mount lossyfs (needs root and /dev/fuse)");
    (dir, fs, mnt)
}

#[test]
fn synced_data_survives_a_crash_and_unsynced_data_does_not() {
    let (_dir, lossy, mnt) = mounted();
    fs::create_dir_all(mnt.join("sub")).unwrap();
    let path = mnt.join("sub/f");
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    f.write_all(b"synced").unwrap();
    f.sync_data().unwrap();
    f.write_all(b" and not").unwrap();
    // Readers through the mount see everything written.
    assert_eq!(fs::read(&path).unwrap(), b"synced and not");
    drop(f);
    let report = lossy.crash(&mut SplitMix::new(1), 0).unwrap();
    assert_eq!(report.dropped_pages, 1);
    assert_eq!(fs::read(&path).unwrap(), b"synced");
    assert_eq!(fs::read(lossy.backing().join("sub/f")).unwrap(), b"synced");
}

#[test]
fn preallocated_overwrites_and_out_of_order_landing() {
    let (_dir, lossy, mnt) = mounted();
    let path = mnt.join("seg");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    f.set_len(64 << 10).unwrap();
    f.sync_all().unwrap();
    // Eight pages written, none synced; half of them (by seed) land at the crash.
    for page in 0..8u64 {
        f.write_all_at(&[page as u8 + 1; 4096], page * 4096)
            .unwrap();
    }
    drop(f);
    let report = lossy.crash(&mut SplitMix::new(7), 50).unwrap();
    assert_eq!(report.landed_pages + report.dropped_pages, 8);
    assert!(
        report.landed_pages > 0 && report.dropped_pages > 0,
        "{report:?}"
    );
    let data = fs::read(&path).unwrap();
    assert_eq!(data.len(), 64 << 10, "the synced size stands");
    let landed = (0..8).filter(|p| data[p * 4096] == *p as u8 + 1).count() as u64;
    let zero = (0..8).filter(|p| data[p * 4096] == 0).count() as u64;
    assert_eq!((landed, zero), (report.landed_pages, report.dropped_pages));
}
