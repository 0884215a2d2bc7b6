//! The simulator's runtime seam: under `--cfg madsim`, a seed fully decides a run — virtual
//! time, timer order and random draws — and a different seed gives a different run.
#![cfg(madsim)]

use std::time::Duration;

use ccr_sim::run_seeded;

/// Three tasks sleep random virtual durations and log when they woke; returns the log.
async fn sleepers() -> Vec<(u32, u128)> {
    use madsim::rand::Rng;
    let start = tokio::time::Instant::now();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for task in 0..3u32 {
        let log = log.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..5 {
                let ms = madsim::rand::thread_rng().gen_range(1..1_000u64);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                log.lock()
                    .unwrap()
                    .push((task, start.elapsed().as_millis()));
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let log = log.lock().unwrap().clone();
    log
}

#[test]
fn a_seed_decides_the_whole_run() {
    let a = run_seeded(42, sleepers);
    let b = run_seeded(42, sleepers);
    let c = run_seeded(43, sleepers);
    assert_eq!(a, b);
    assert_ne!(a, c);
    // Virtual time: up to 5 s of sleeping per task passes in no real time at all.
    assert!(a.iter().any(|&(_, ms)| ms > 1_000));
}
