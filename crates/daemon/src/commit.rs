//! Group commit: one thread that runs the store writes of many concurrent
//! WebAuthn ceremonies in one write transaction, with one durable commit
//! (one fsync with SQLite's `synchronous = FULL`) for all of them.
//!
//! Why: every successful assertion must store the credential's new
//! signature counter durably before the browser (and then the PAM module)
//! hears "approved", or a power cut could roll the counter back and let a
//! cloned key's older counter pass again. With one transaction per
//! ceremony the fsync, not the signature check, was the limit (about 420
//! verifications/s, `scripts/bench`). The checks (JSON, signature,
//! challenge) need no store and run in parallel on the callers' threads;
//! only the counter step is handed to the committer.
//!
//! How: a caller submits a [`Work`] closure and blocks on its own answer
//! channel. The committer takes the first waiting job, then everything
//! else already queued (at most [`MAX_BATCH`]), opens the store (or
//! keeps the last batch's, below), starts one
//! [`p2fa_core::store::Backend::write`] transaction, runs every job's
//! closure in submission order inside it, commits once, and only then
//! answers each caller. So:
//!
//! - nobody is answered before their write is committed: an answer
//!   `Ok` is sent only after [`p2fa_core::store::Tx::commit`] returned
//!   `Ok`;
//! - a job sees the writes of the jobs before it in the same batch (one
//!   transaction), so two assertions of one credential in one batch are
//!   ordered exactly as if committed one after the other, and the second
//!   one's counter is checked against the first one's;
//! - a store error in any job, or a failed commit, rolls the whole batch
//!   back and answers every job in it with that error: nothing in a
//!   failed batch is reported as success (fail closed).
//!
//! No waiting for a batch to fill: a lone ceremony is committed at once.
//! Batches form by themselves under load, from the jobs that arrive while
//! the previous batch's commit (its fsync) is under way.
//!
//! The store is not kept open while the committer waits: a batch that
//! finds the queue empty before it (the usual case, and every case
//! without load) opens the store afresh. [`Store::open_existing`] is where
//! the SQLite backend checkpoints its write-ahead log (it turns SQLite's
//! own auto-checkpoint off) and checks the files' owners, and a store
//! replaced on disk (a restore) is picked up then. Only under load, when
//! the next batch is already waiting as one commits, does that batch run
//! on the same open store, at most [`MAX_REUSE`] batches in a row and
//! never after a failed one: opening (connecting, the owner checks,
//! reading the schema) was a third of the committer's CPU and ≈9 % of a
//! verification's under 16 concurrent clients (`perf`, the webauthn_verify
//! example). Writes by others (2fa-enroll, the PAM module) are seen as
//! before, through SQLite's locking; a store replaced on disk during
//! such a run is picked up at most [`MAX_REUSE`] batches late (each of
//! them a few milliseconds). Only the trait API is used, so
//! any backend behind [`Store`] gets group commit: 2fad's opener is
//! [`crate::pool::open`], the configured store (SQLite, or in fleet mode
//! the PostgreSQL database: a connection per run of batches, taken from
//! and handed back to 2fad's idle connections, `daemon.store_pool`).
//!
//! A plain thread and std channels rather than a tokio task: the callers
//! are synchronous (the web server runs ceremony code on tokio's blocking
//! threads, tests and the benchmark call it directly), and the committer
//! itself does nothing but blocking store I/O.

use p2fa_core::store::{Store, StoreError, TxOps};
use std::sync::Arc;
#[cfg(test)]
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TryRecvError, channel, sync_channel};

/// Most jobs in one transaction; more wait for the next batch.
pub const MAX_BATCH: usize = 256;

/// Most batches in a row on one open store (see the module comment).
pub const MAX_REUSE: u32 = 32;

/// One ceremony's store step, run inside the batch's write transaction.
/// An `Err` fails the whole batch.
pub type Work<T> = Box<dyn FnOnce(&dyn TxOps) -> Result<T, StoreError> + Send>;

/// Opens the store for one batch.
pub type Opener = Box<dyn Fn() -> Result<Store, String> + Send>;

struct Job<T> {
    work: Work<T>,
    answer: SyncSender<Result<T, String>>,
}

/// Counts, for the benchmark and the tests.
#[derive(Default)]
pub struct Stats {
    /// Jobs handed to the committer.
    pub submitted: AtomicU64,
    /// Transactions committed (successful batches).
    pub batches: AtomicU64,
    /// Jobs in committed batches.
    pub committed: AtomicU64,
    /// Jobs answered with an error because their batch failed.
    pub failed: AtomicU64,
    /// The largest batch so far.
    pub largest: AtomicU64,
    /// Times the store was opened (at most once per batch).
    pub opens: AtomicU64,
    /// Times the committer found the queue empty, let go of the store
    /// and waited.
    pub idle: AtomicU64,
}

/// The handle callers submit to; the committer thread ends when it is
/// dropped (after answering what was queued).
pub struct Committer<T> {
    tx: Sender<Job<T>>,
    pub stats: Arc<Stats>,
    /// Tests hold this to keep the committer from starting a batch, so
    /// that the jobs they submit meanwhile form one batch.
    #[cfg(test)]
    pub gate: Arc<Mutex<()>>,
}

impl<T: Send + 'static> Committer<T> {
    pub fn start(open: Opener) -> Result<Committer<T>, String> {
        let (tx, rx) = channel::<Job<T>>();
        let stats = Arc::new(Stats::default());
        #[cfg(test)]
        let gate = Arc::new(Mutex::new(()));
        let worker = Worker {
            rx,
            open,
            stats: stats.clone(),
            #[cfg(test)]
            gate: gate.clone(),
        };
        // The thread starts with every signal blocked, so that none meant
        // for the process (SIGHUP, taken by 2fad's own sigwait thread,
        // see `web`; SIGTERM) is delivered to it: this thread may be
        // started before 2fad blocks SIGHUP in its main thread.
        use nix::sys::signal::{SigSet, SigmaskHow};
        let old = SigSet::all()
            .thread_swap_mask(SigmaskHow::SIG_BLOCK)
            .map_err(|e| format!("blocking signals for the store committer: {e}"))?;
        let spawned = std::thread::Builder::new()
            .name("2fad-commit".into())
            .spawn(move || worker.run());
        old.thread_set_mask()
            .map_err(|e| format!("restoring the signal mask: {e}"))?;
        spawned.map_err(|e| format!("store committer thread: {e}"))?;
        Ok(Committer {
            tx,
            stats,
            #[cfg(test)]
            gate,
        })
    }

    /// Runs `work` in the next batch and waits until that batch is
    /// committed (its result) or has failed (the batch's error).
    pub fn submit(&self, work: Work<T>) -> Result<T, String> {
        let (answer, wait) = sync_channel(1);
        self.tx
            .send(Job { work, answer })
            .map_err(|_| "the store committer has stopped".to_string())?;
        self.stats.submitted.fetch_add(1, Ordering::Relaxed);
        // A committer that died without answering dropped the sender:
        // that is a failure, never a success.
        wait.recv()
            .unwrap_or_else(|_| Err("the store committer has stopped".into()))
    }
}

struct Worker<T> {
    rx: Receiver<Job<T>>,
    open: Opener,
    stats: Arc<Stats>,
    #[cfg(test)]
    gate: Arc<Mutex<()>>,
}

impl<T> Worker<T> {
    fn run(self) {
        // The store the last batch committed on, and how many batches
        // have run on it; only while the next batch is already waiting.
        let mut kept: Option<(Store, u32)> = None;
        loop {
            let first = match self.rx.try_recv() {
                Ok(j) => j,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    kept = None;
                    self.stats.idle.fetch_add(1, Ordering::Relaxed);
                    match self.rx.recv() {
                        Ok(j) => j,
                        Err(_) => break,
                    }
                }
            };
            #[cfg(test)]
            let _gate = self.gate.lock().unwrap_or_else(|e| e.into_inner());
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            self.commit(batch, &mut kept);
        }
    }

    /// One transaction for the whole batch; answers every job.
    fn commit(&self, batch: Vec<Job<T>>, kept: &mut Option<(Store, u32)>) {
        let n = batch.len() as u64;
        let (works, answers): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|j| (j.work, j.answer)).unzip();
        match self.run_batch(works, kept) {
            Ok(results) => {
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                self.stats.committed.fetch_add(n, Ordering::Relaxed);
                self.stats.largest.fetch_max(n, Ordering::Relaxed);
                for (a, r) in answers.into_iter().zip(results) {
                    let _ = a.send(Ok(r));
                }
            }
            Err(e) => {
                self.stats.failed.fetch_add(n, Ordering::Relaxed);
                for a in answers {
                    let _ = a.send(Err(e.clone()));
                }
            }
        }
    }

    /// Runs the batch on the kept store if it may be reused, else on a
    /// freshly opened one, which is kept for the next batch only if this
    /// one committed.
    fn run_batch(
        &self,
        works: Vec<Work<T>>,
        kept: &mut Option<(Store, u32)>,
    ) -> Result<Vec<T>, String> {
        let (mut store, runs) = match kept.take() {
            Some((store, runs)) if runs < MAX_REUSE => (store, runs),
            _ => {
                self.stats.opens.fetch_add(1, Ordering::Relaxed);
                ((self.open)()?, 0)
            }
        };
        let results = Self::in_tx(&mut store, works)?;
        *kept = Some((store, runs + 1));
        Ok(results)
    }

    fn in_tx(store: &mut Store, works: Vec<Work<T>>) -> Result<Vec<T>, String> {
        let tx = store.write().map_err(|e| e.to_string())?;
        let mut results = Vec::with_capacity(works.len());
        for w in works {
            // On an error `tx` is dropped uncommitted: all rolled back.
            results.push(w(&*tx).map_err(|e| e.to_string())?);
        }
        tx.commit().map_err(|e| e.to_string())?;
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2fa_core::secure_fs::Trust;
    use std::time::Duration;

    fn committer(db: &std::path::Path) -> Committer<usize> {
        Store::open_or_create(db, 1000, Trust::test_runner()).unwrap();
        let db = db.to_path_buf();
        Committer::start(Box::new(move || {
            Store::open_existing(&db, 1000, Trust::test_runner()).map_err(|e| e.to_string())
        }))
        .unwrap()
    }

    /// Submits `n` jobs from `n` threads while the committer is held, so
    /// that they form one batch; job `i` writes meta `k{i}`, and job
    /// `fail` (if any) fails.
    fn one_batch(
        c: &Committer<usize>,
        n: usize,
        fail: Option<usize>,
    ) -> Vec<Result<usize, String>> {
        let before = c.stats.submitted.load(Ordering::SeqCst);
        let gate = c.gate.lock().unwrap();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..n)
                .map(|i| {
                    s.spawn(move || {
                        c.submit(Box::new(move |tx: &dyn TxOps| {
                            if fail == Some(i) {
                                return Err(StoreError::Other("injected".into()));
                            }
                            tx.set_meta(&format!("k{i}"), b"v")?;
                            Ok(i)
                        }))
                    })
                })
                .collect();
            let deadline = p2fa_core::clock::Deadline::after(Duration::from_secs(30));
            while c.stats.submitted.load(Ordering::SeqCst) < before + n as u64 {
                assert!(!deadline.passed(), "jobs never arrived");
                p2fa_core::clock::sleep(Duration::from_millis(2));
            }
            drop(gate);
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn one_batch_one_transaction_each_its_own_answer() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state/state.db");
        let c = committer(&db);
        let r = one_batch(&c, 8, None);
        assert_eq!(r, (0..8).map(Ok).collect::<Vec<_>>());
        assert_eq!(c.stats.batches.load(Ordering::SeqCst), 1);
        assert_eq!(c.stats.largest.load(Ordering::SeqCst), 8);
        let store = Store::open_existing(&db, 1000, Trust::test_runner()).unwrap();
        for i in 0..8 {
            assert_eq!(store.meta(&format!("k{i}")).unwrap(), Some(b"v".to_vec()));
        }
    }

    /// One job's store error fails every job of its batch, and nothing of
    /// the batch is kept (the jobs before it wrote already).
    #[test]
    fn a_failing_job_fails_and_rolls_back_its_whole_batch() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state/state.db");
        let c = committer(&db);
        let r = one_batch(&c, 8, Some(5));
        assert_eq!(r.len(), 8);
        for x in &r {
            assert_eq!(x, &Err("store error: injected".to_string()));
        }
        assert_eq!(c.stats.failed.load(Ordering::SeqCst), 8);
        assert_eq!(c.stats.batches.load(Ordering::SeqCst), 0);
        let store = Store::open_existing(&db, 1000, Trust::test_runner()).unwrap();
        for i in 0..8 {
            assert_eq!(store.meta(&format!("k{i}")).unwrap(), None, "k{i} kept");
        }
        // The committer goes on: the next batch commits.
        assert_eq!(one_batch(&c, 2, None), vec![Ok(0), Ok(1)]);
    }

    /// Back to back (the next batch already waiting as one commits) the
    /// store stays open; once the committer has waited, the next batch
    /// opens it again (so a store replaced on disk is picked up).
    #[test]
    fn the_store_is_kept_open_only_while_batches_wait() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state/state.db");
        let c = committer(&db);
        let idle = |k: u64| {
            let deadline = p2fa_core::clock::Deadline::after(Duration::from_secs(30));
            while c.stats.idle.load(Ordering::SeqCst) < k {
                assert!(!deadline.passed(), "the committer never went idle");
                p2fa_core::clock::sleep(Duration::from_millis(2));
            }
        };
        // Nothing queued yet: it waits once before the first batch.
        idle(1);
        let n = MAX_BATCH + 44;
        let r = one_batch(&c, n, None);
        assert_eq!(r, (0..n).map(Ok).collect::<Vec<_>>());
        assert_eq!(c.stats.batches.load(Ordering::SeqCst), 2);
        assert_eq!(c.stats.largest.load(Ordering::SeqCst), MAX_BATCH as u64);
        assert_eq!(c.stats.opens.load(Ordering::SeqCst), 1);
        idle(2);
        assert_eq!(one_batch(&c, 1, None), vec![Ok(0)]);
        assert_eq!(c.stats.opens.load(Ordering::SeqCst), 2);
    }

    /// A store that cannot be opened fails the batch, never answers Ok.
    #[test]
    fn an_unopenable_store_fails_every_job() {
        let c: Committer<usize> =
            Committer::start(Box::new(|| Err("store missing".into()))).unwrap();
        let r = c.submit(Box::new(|_: &dyn TxOps| Ok(1)));
        assert_eq!(r, Err("store missing".into()));
    }
}
