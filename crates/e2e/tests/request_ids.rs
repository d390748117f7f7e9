//! Request ids stay unique across restarts: requests that arrive while a restarted member is
//! still replaying the previous run's entries get their own results, never a replayed entry's.

use cairn_client::Client;
use cairn_e2e::{Member, connect_retrying, put_concurrently};
use std::time::Duration;

const OLD_WRITERS: usize = 16;
const OLD_PUTS_EACH: usize = 250;
const NEW_PUTS: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_during_replay_get_their_own_results() {
    let dir = tempfile::tempdir().unwrap();
    // A snapshot count this high keeps the backend's durable consistent index at the start of the
    // first run, so a SIGKILL leaves every entry of that run to be replayed.
    let mut m = Member::start(&dir.path().join("m1"), &["--snapshot-count", "1000000"]);
    let c = Client::connect(&[m.endpoint()], Duration::from_secs(2))
        .await
        .unwrap();
    put_concurrently(&c, "old", OLD_WRITERS, OLD_PUTS_EACH).await;
    drop(c);

    // Restart with the apply held back, so that the new requests below are waiting while the
    // previous run's entries (which carry that run's request ids) are replayed.
    m.env
        .push(("CAIRN_FAILPOINT_APPLY_HOLD_MS".into(), "2000".into()));
    m.restart_unready();
    let c = connect_retrying(&m.endpoint()).await;
    let mut puts = Vec::new();
    for j in 0..NEW_PUTS {
        let c = c.clone();
        puts.push(tokio::spawn(async move {
            let key = format!("new/{j}");
            let r = c.put(key.clone(), format!("v{j}")).await.unwrap();
            (key, r.header.unwrap().revision)
        }));
    }
    let mut answered = Vec::new();
    for p in puts {
        answered.push(
            tokio::time::timeout(Duration::from_secs(60), p)
                .await
                .expect("new put hung")
                .unwrap(),
        );
    }

    let old_count = c.get_prefix("old/").await.unwrap().count as usize;
    assert_eq!(
        old_count,
        OLD_WRITERS * OLD_PUTS_EACH,
        "replayed writes lost"
    );
    let first_new_revision = (OLD_WRITERS * OLD_PUTS_EACH + 1) as i64;
    let mut revisions = Vec::new();
    for (j, (key, revision)) in answered.iter().enumerate() {
        // Each answer is the one for this put: the revision at which its own key was written.
        let kv = c.get(key.clone()).await.unwrap().kvs.remove(0);
        assert_eq!(
            kv.mod_revision, *revision,
            "{key} was answered with revision {revision}, but was written at {}",
            kv.mod_revision
        );
        assert_eq!(kv.value.as_ref(), format!("v{j}").as_bytes());
        assert!(*revision > first_new_revision, "{key}: {revision}");
        revisions.push(*revision);
    }
    revisions.sort_unstable();
    revisions.dedup();
    assert_eq!(
        revisions.len(),
        NEW_PUTS,
        "two puts answered with one revision"
    );
}
