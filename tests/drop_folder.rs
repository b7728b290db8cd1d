//! The drop-folder producer (`rfpq::watch`) end to end through real Redis, a real in-process
//! worker and the real embedded models: files dropped into an inbox come back as filled and
//! review workbooks (or an `.error.txt`) in an outbox; half-written files are left alone.

mod common;

use rfpq::queue::RfpQueue;
use rfpq::watch::{WatchError, WatchOptions, WatchReport, watch};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

const SETTLE: Duration = Duration::from_millis(500);
const POLL: Duration = Duration::from_millis(100);

struct Watching {
    handle: JoinHandle<Result<WatchReport, WatchError>>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl Watching {
    fn start(queue: RfpQueue, opts: WatchOptions) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            watch(&queue, &opts, async {
                let _ = stopped.await;
            })
            .await
        });
        Watching { handle, stop }
    }

    async fn stop(self) -> WatchReport {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("the watch stops promptly")
            .unwrap()
            .expect("the watch ran")
    }
}

fn options(tmp: &Path, kb: Option<&Path>) -> WatchOptions {
    let inbox = tmp.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let mut opts = WatchOptions::new(inbox, tmp.join("outbox"));
    opts.kb = kb.map(|k| k.display().to_string());
    opts.poll = POLL;
    opts.settle = SETTLE;
    opts
}

async fn wait_for_files(paths: &[PathBuf], limit: Duration) {
    let started = Instant::now();
    while !paths.iter().all(|p| p.exists()) {
        let missing: Vec<_> = paths.iter().filter(|p| !p.exists()).collect();
        assert!(
            started.elapsed() < limit,
            "still missing after {limit:?}: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every question row of a filled workbook holds a legal value, or is empty and flagged in the
/// review workbook (an abstention).
fn assert_answered(filled: &Path, review: &Path, questions: usize) {
    let range = common::sheet_cells(&std::fs::read(filled).unwrap(), "Security");
    let review_sheet = common::sheet_cells(&std::fs::read(review).unwrap(), "Review");
    assert_eq!(review_sheet.height(), questions + 1, "{}", review.display());
    let what = filled.display().to_string();
    common::assert_answered_or_flagged(&range, &review_sheet, questions as u32, &what);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_workbooks_are_answered_and_half_written_ones_wait() {
    let tmp = tempfile::tempdir().unwrap();
    let router = common::embedded_router();
    let kb = common::small_kb(&router, tmp.path()).await;
    let prefix = common::prefix("drop");
    let (cfg, queue) = common::queue(&prefix).await;
    let worker = common::start_worker(cfg, router).await;
    let opts = options(tmp.path(), Some(&kb));
    let (inbox, outbox) = (opts.inbox.clone(), opts.outbox.clone());
    let started = Instant::now();
    let watching = Watching::start(queue, opts);

    let good = common::questionnaire(&[
        "Is customer data encrypted at rest?",
        "Is multi-factor authentication enforced for administrators?",
    ]);
    std::fs::write(inbox.join("good.xlsx"), &good).unwrap();

    // A copy in progress: half the bytes, then a pause longer than the settle time.
    let late = common::questionnaire(&[
        "Is multi-factor authentication enforced for administrators?",
        "Are backups tested?",
    ]);
    let half = late.len() / 2;
    let late_path = inbox.join("late.xlsx");
    std::fs::write(&late_path, &late[..half]).unwrap();
    tokio::time::sleep(SETTLE * 3 / 2).await;
    assert!(late_path.exists(), "a half-written file was taken");
    assert!(!outbox.join("late.error.txt").exists());
    assert!(!outbox.join("late.job").exists());
    assert!(!inbox.join(".done/late.xlsx").exists());

    std::fs::OpenOptions::new()
        .append(true)
        .open(&late_path)
        .unwrap()
        .write_all(&late[half..])
        .unwrap();

    let expected = ["good", "late"].map(|s| {
        [
            outbox.join(format!("{s}.filled.xlsx")),
            outbox.join(format!("{s}.review.xlsx")),
        ]
    });
    wait_for_files(&expected.concat(), Duration::from_secs(300)).await;
    let elapsed = started.elapsed();
    let report = watching.stop().await;

    // Exactly the outputs: no .job left, no temp file, no error.
    assert_eq!(
        names_in(&outbox),
        [
            "good.filled.xlsx",
            "good.review.xlsx",
            "late.filled.xlsx",
            "late.review.xlsx"
        ]
    );
    assert_eq!(names_in(&inbox), [".done"]);
    assert_eq!(names_in(&inbox.join(".done")), ["good.xlsx", "late.xlsx"]);
    assert_eq!(
        std::fs::read(inbox.join(".done/late.xlsx")).unwrap(),
        late,
        "the original is kept whole"
    );
    for [filled, review] in &expected {
        assert_answered(filled, review, 2);
    }
    assert_eq!(
        report,
        WatchReport {
            taken: 2,
            refused: 0,
            completed: 2,
            failed: 0,
            in_flight: vec![],
        }
    );
    eprintln!("two drops answered in {elapsed:?}");
    worker.shutdown().await.unwrap();
    common::cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_files_get_an_error_and_the_watch_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = common::prefix("drop-bad");
    let (cfg, queue) = common::queue(&prefix).await;
    let worker = common::start_worker(cfg, common::embedded_router()).await;
    let opts = options(tmp.path(), None);
    let (inbox, outbox) = (opts.inbox.clone(), opts.outbox.clone());
    let watching = Watching::start(queue, opts);

    std::fs::write(
        inbox.join("garbage.xlsx"),
        b"This is not a spreadsheet, just some text.\n",
    )
    .unwrap();
    std::fs::write(inbox.join("notes.txt"), b"remember the questionnaire\n").unwrap();
    // Ignored: temp and lock files, hidden files, folders, empty files.
    std::fs::write(inbox.join("~$good.xlsx"), b"owner").unwrap();
    std::fs::write(inbox.join("upload.xlsx.part"), b"partial").unwrap();
    std::fs::write(inbox.join(".hidden.xlsx"), b"hidden").unwrap();
    std::fs::write(inbox.join("empty.xlsx"), b"").unwrap();
    std::fs::create_dir(inbox.join("folder.xlsx")).unwrap();

    let garbage_err = outbox.join("garbage.error.txt");
    let notes_err = outbox.join("notes.error.txt");
    wait_for_files(
        &[garbage_err.clone(), notes_err.clone()],
        Duration::from_secs(30),
    )
    .await;
    let garbage = std::fs::read_to_string(&garbage_err).unwrap();
    let lines: Vec<&str> = garbage.lines().collect();
    assert!(
        lines[0].contains("garbage.xlsx") && lines[0].contains("not a workbook"),
        "{garbage}"
    );
    assert!(
        lines[1].contains("drop it into the inbox again"),
        "{garbage}"
    );
    assert!(lines[2].contains(".done"), "{garbage}");
    let notes = std::fs::read_to_string(&notes_err).unwrap();
    assert!(
        notes.contains("notes.txt") && notes.contains(".xlsx, .xlsm, .xls, .ods"),
        "{notes}"
    );
    // Moved out of the way, so they are not reported again.
    assert!(inbox.join(".done/garbage.xlsx").exists());
    assert!(inbox.join(".done/notes.txt").exists());

    // A second file of the same name gets its own error and its own place in .done.
    std::fs::write(inbox.join("garbage.xlsx"), b"more text").unwrap();
    wait_for_files(
        &[outbox.join("garbage-2.error.txt")],
        Duration::from_secs(30),
    )
    .await;
    assert!(inbox.join(".done/garbage-2.xlsx").exists());
    assert_eq!(std::fs::read_to_string(&garbage_err).unwrap(), garbage);

    assert!(!watching.handle.is_finished(), "the watch keeps running");
    let questions = ["Is data encrypted in transit?", "Are backups tested?"];
    std::fs::write(inbox.join("good.xlsx"), common::questionnaire(&questions)).unwrap();
    let filled = outbox.join("good.filled.xlsx");
    let review = outbox.join("good.review.xlsx");
    // good.xlsx is "open in an editor" while its ~$ owner file is there.
    tokio::time::sleep(SETTLE * 2).await;
    assert!(inbox.join("good.xlsx").exists(), "taken while still open");
    std::fs::remove_file(inbox.join("~$good.xlsx")).unwrap();
    wait_for_files(&[filled.clone(), review.clone()], Duration::from_secs(300)).await;
    assert_answered(&filled, &review, questions.len());
    let report = watching.stop().await;

    assert_eq!(
        names_in(&inbox),
        [
            ".done",
            ".hidden.xlsx",
            "empty.xlsx",
            "folder.xlsx",
            "upload.xlsx.part"
        ]
    );
    assert_eq!(
        names_in(&outbox),
        [
            "garbage-2.error.txt",
            "garbage.error.txt",
            "good.filled.xlsx",
            "good.review.xlsx",
            "notes.error.txt"
        ]
    );
    assert_eq!(
        report,
        WatchReport {
            taken: 1,
            refused: 3,
            completed: 1,
            failed: 0,
            in_flight: vec![],
        }
    );
    worker.shutdown().await.unwrap();
    common::cleanup(&prefix).await;
}
