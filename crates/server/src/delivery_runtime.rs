//! The threads delivery runs on, apart from the ones that answer HTTP requests.
//!
//! Ingest and delivery compete for the same cores. An SDK waits on its acknowledgement and
//! retries (or drops events) when it is slow; delivery works from the durable queue and loses
//! nothing by running a little later. So delivery workers, their pipelines and their reads of
//! the store run on a runtime of their own whose threads have a lower CPU priority (a higher
//! nice value): when the cores are busy, acknowledging wins; when they are not, delivery takes
//! all the time it wants. A mapping that is costly per event therefore cannot slow down the
//! acknowledgement of other requests either.

use std::future::Future;
use std::sync::Arc;

use tokio::runtime::{Builder, Runtime};
use tokio::task::JoinHandle;

/// How much lower than ingest delivery threads run, in nice steps: 19 steps, the lowest
/// priority there is, leave delivery about 1.5% of a core next to a busy ingest thread and all of
/// an idle one. Under a burst on two cores, +5 (a third of a core) still took enough from the
/// serial writer that every acknowledgement waits on to cost about a sixth of ingest's rate
/// (141,555 against 166,837 events/s in the ingest benchmark).
const NICENESS: i32 = 19;

/// A handle on the delivery runtime; the runtime stops (without waiting) when the last handle
/// is dropped.
#[derive(Clone)]
pub(crate) struct DeliveryRuntime(Arc<Owned>);

struct Owned(Option<Runtime>);

impl DeliveryRuntime {
    /// Starts the runtime's threads, below the priority of the calling thread.
    pub(crate) fn start() -> std::io::Result<DeliveryRuntime> {
        let priority = delivery_priority();
        let runtime = Builder::new_multi_thread()
            .thread_name("ferry-delivery")
            .enable_all()
            .on_thread_start(move || set_priority(priority))
            .build()?;
        Ok(DeliveryRuntime(Arc::new(Owned(Some(runtime)))))
    }

    /// Runs `task` on the delivery threads; tasks it spawns stay there.
    pub(crate) fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0
            .0
            .as_ref()
            .expect("the runtime lives as long as its handles")
            .spawn(task)
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // Dropping a runtime blocks on its threads, which an async context must not do. Stopping
        // it in the background is safe anywhere, even on one of its own threads: the last handle
        // may be a delivery task's.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The nice value of delivery threads: `NICENESS` above the calling thread's (at most 19, the
/// lowest priority). An absolute value, since a thread starts with the nice value of the thread
/// that created it: the runtime's blocking threads are created by its own, already lowered,
/// worker threads.
fn delivery_priority() -> i32 {
    #[cfg(target_os = "linux")]
    {
        let ingest = rustix::process::getpriority_process(None).unwrap_or(0);
        (ingest + NICENESS).min(19)
    }
    #[cfg(not(target_os = "linux"))]
    {
        NICENESS
    }
}

/// Sets the calling thread's nice value (on Linux the value is per thread). Lowering one's own
/// priority needs no privilege; if the system refuses anyway, delivery runs at ingest's
/// priority, which is only slower under load.
fn set_priority(priority: i32) {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::process::setpriority_process(None, priority) {
        tracing::debug!("cannot lower the priority of a delivery thread: {error}");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = priority;
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::{DeliveryRuntime, NICENESS};

    #[test]
    fn delivery_runs_below_the_priority_of_the_caller() {
        let ours = rustix::process::getpriority_process(None).expect("our nice value");
        let runtime = DeliveryRuntime::start().expect("the delivery threads");
        let (theirs, blocking) = wait_for(runtime.spawn(async {
            let worker = rustix::process::getpriority_process(None).expect("a nice value");
            let blocking = tokio::task::spawn_blocking(|| {
                rustix::process::getpriority_process(None).expect("a nice value")
            })
            .await
            .expect("the blocking task");
            (worker, blocking)
        }));
        // At most 19: a caller already near it sees the capped value.
        let expected = (ours + NICENESS).min(19);
        assert_eq!(theirs, expected, "a delivery worker thread");
        assert_eq!(blocking, expected, "a delivery thread reading the store");
        assert_eq!(
            rustix::process::getpriority_process(None).expect("our nice value"),
            ours,
            "the caller's own priority is unchanged"
        );
    }

    #[test]
    fn the_last_handle_may_be_dropped_by_a_delivery_task() {
        let runtime = DeliveryRuntime::start().expect("the delivery threads");
        let last = runtime.clone();
        let (handed_over, ours_dropped) = tokio::sync::oneshot::channel::<()>();
        let (done, finished) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            let _ = ours_dropped.await;
            // The caller's handle is gone: this is the last one, dropped on a delivery thread.
            drop(last);
            let _ = done.send(());
        });
        drop(runtime);
        let _ = handed_over.send(());
        finished
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the task that dropped the last handle ran to its end");
    }

    /// Waits for a task of the delivery runtime from outside any runtime.
    fn wait_for<T: Send + 'static>(task: tokio::task::JoinHandle<T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime to wait on")
            .block_on(task)
            .expect("the task finishes")
    }
}
