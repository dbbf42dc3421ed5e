//! Post-response work. On Lambda, work left running after the handler returns is frozen, so
//! the cache never spawns refreshes itself: it hands them to a [`TaskRunner`] supplied by the
//! caller. The Lambda glue drains a [`DeferredTasks`] after the response while an internal
//! extension holds the environment open; a long-running server uses [`SpawnTasks`].

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

pub(crate) type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

pub trait TaskRunner: Send + Sync + 'static {
    fn submit(&self, task: Task);
}

/// Runs each task at once on the tokio runtime (servers that keep running between requests).
#[derive(Debug, Default, Clone, Copy)]
pub struct SpawnTasks;

impl TaskRunner for SpawnTasks {
    fn submit(&self, task: Task) {
        tokio::spawn(task);
    }
}

/// Queues tasks until [`run_all`](DeferredTasks::run_all) is awaited.
#[derive(Default)]
pub struct DeferredTasks {
    queue: Mutex<Vec<Task>>,
}

impl std::fmt::Debug for DeferredTasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferredTasks").field("pending", &self.pending()).finish()
    }
}

impl DeferredTasks {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn pending(&self) -> usize {
        self.queue.lock().map(|q| q.len()).unwrap_or(0)
    }

    /// Runs every queued task concurrently, including tasks queued while running, and returns
    /// how many ran.
    pub async fn run_all(&self) -> usize {
        let (started, finished) = (AtomicUsize::new(0), AtomicUsize::new(0));
        self.drain(&started, &finished).await;
        finished.into_inner()
    }

    /// Like [`run_all`](Self::run_all), but only until `deadline`: what has not finished then
    /// is dropped (each task is safe to drop: a refresh or prefetch not done is a later miss;
    /// a view retry not done counts itself unconfirmed). On Lambda the function's timeout
    /// covers this phase: work past it would end the invocation in an error.
    pub async fn run_until(&self, deadline: std::time::Instant) -> Drained {
        let (started, finished) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let _ = tokio::time::timeout_at(deadline.into(), self.drain(&started, &finished)).await;
        let not_started = self.queue.lock().map(|mut q| std::mem::take(&mut *q).len()).unwrap_or(0);
        let (started, ran) = (started.into_inner(), finished.into_inner());
        Drained { ran, abandoned: started - ran + not_started }
    }

    /// Runs batch after batch of the queued tasks until none is left, counting them.
    async fn drain(&self, started: &AtomicUsize, finished: &AtomicUsize) {
        loop {
            let batch: Vec<Task> = match self.queue.lock() {
                Ok(mut q) => std::mem::take(&mut *q),
                Err(_) => return,
            };
            if batch.is_empty() {
                return;
            }
            started.fetch_add(batch.len(), Ordering::Relaxed);
            futures::future::join_all(batch.into_iter().map(|task| async {
                task.await;
                finished.fetch_add(1, Ordering::Relaxed);
            }))
            .await;
        }
    }
}

/// What [`DeferredTasks::run_until`] did: the tasks that finished, and those given up (still
/// running or not started when the deadline came).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    pub ran: usize,
    pub abandoned: usize,
}

impl TaskRunner for DeferredTasks {
    fn submit(&self, task: Task) {
        if let Ok(mut q) = self.queue.lock() {
            q.push(task);
        }
    }
}

impl<T: TaskRunner> TaskRunner for std::sync::Arc<T> {
    fn submit(&self, task: Task) {
        (**self).submit(task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn work_past_the_deadline_is_given_up_and_counted() {
        let tasks = DeferredTasks::new();
        tasks.submit(Box::pin(async {}));
        tasks.submit(Box::pin(tokio::task::yield_now()));
        tasks.submit(Box::pin(futures::future::pending::<()>()));
        let deadline = Instant::now() + Duration::from_millis(50);
        let drained = tasks.run_until(deadline).await;
        assert_eq!(drained, Drained { ran: 2, abandoned: 1 });
        assert!(Instant::now() >= deadline);
        assert_eq!(tasks.pending(), 0);
    }
}
